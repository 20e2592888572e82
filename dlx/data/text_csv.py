"""Text data from a CSV file (a text column and a label column), checked row by row so a bad file
gets a message naming the column or line, never a traceback."""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlx.data import csv_cells
from dlx.data.registry import DataBundle, DatasetMeta, split_texts
from dlx.errors import DlxError


@dataclass(frozen=True)
class TextTable:
    """Sentences (whitespace normalised), label indices and the sorted class names."""

    texts: list[str]
    labels: np.ndarray
    classes: tuple[str, ...]


def read_text_csv(path: str | Path, text_column: str, label_column: str) -> TextTable:
    """Read and check a CSV of labelled sentences; raises DlxError naming the column or line.

    Line numbers are the file's (the header is line 1), as a spreadsheet or editor shows them.
    """
    path = Path(path)
    raw = path.read_bytes()
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        raise DlxError(f"file: {path.name} is not UTF-8 text (byte {err.start}, line {line}); "
                       "save it as UTF-8 CSV", field="file") from None
    reader = csv.DictReader(io.StringIO(content, newline=""))
    # A cell dlx (or a careful spreadsheet) wrote as '=x reads as =x: dlx.data.csv_cells' escape taken off.
    columns = reader.fieldnames = [csv_cells.unescape(c) for c in reader.fieldnames or []]
    for role, column in (("text_column", text_column), ("label_column", label_column)):
        if column not in columns:
            raise DlxError(f"{role}: {path.name} has no column {column!r}; its columns are "
                           f"{', '.join(repr(c) for c in columns) or 'none (the file is empty)'}", field=role)
    texts, names = [], []
    try:
        for row in reader:
            text, name = row.get(text_column), row.get(label_column)
            if text is None or name is None:
                raise DlxError(f"file: line {reader.line_num} of {path.name} has fewer fields than the "
                               "header", field="file")
            text, name = csv_cells.unescape(text), csv_cells.unescape(name)
            text = " ".join(text.split())
            if not text:
                raise DlxError(f"text_column: empty text in column {text_column!r} at line {reader.line_num}"
                               f" of {path.name}", field="text_column")
            if not name.strip():
                raise DlxError(f"label_column: empty label in column {label_column!r} at line "
                               f"{reader.line_num} of {path.name}", field="label_column")
            texts.append(text)
            names.append(name.strip())
    except csv.Error as err:
        raise DlxError(f"file: {path.name} is not valid CSV at line {reader.line_num} ({err})",
                       field="file") from None
    classes = tuple(sorted(set(names)))
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "no rows"
        raise DlxError(f"label_column: column {label_column!r} of {path.name} has {found}; a classifier "
                       "needs at least two classes", field="label_column")
    lookup = {name: i for i, name in enumerate(classes)}
    return TextTable(texts, np.array([lookup[n] for n in names], dtype=np.int64), classes)


def load_text_csv(path: str | Path, text_column: str, label_column: str, seed: int = 0,
                  val_fraction: float = 0.15, test_fraction: float = 0.2, name: str | None = None) -> DataBundle:
    """A CSV of labelled sentences as a seeded, stratified text DataBundle."""
    table = read_text_csv(path, text_column, label_column)
    counts = np.bincount(table.labels)
    if counts.min() < 3:
        rare = table.classes[int(counts.argmin())]
        raise DlxError(f"label_column: class {rare!r} has {counts.min()} row(s); each class needs at "
                       "least 3 to appear in the train, validation and test splits", field="label_column")
    longest = max(len(text.split()) for text in table.texts)
    meta = DatasetMeta(name or Path(path).stem, "text", table.classes, (longest,),
                       description=f"{Path(path).name}: {text_column!r} labelled by {label_column!r}")
    try:
        return split_texts(table.texts, table.labels, meta, seed, val_fraction, test_fraction)
    except ValueError as err:  # scikit-learn: a split would be smaller than the number of classes
        raise DlxError(f"test_fraction: {len(table.texts)} rows in {len(table.classes)} classes cannot be "
                       f"split {val_fraction:g}/{test_fraction:g} for validation/test ({err}); use larger "
                       "fractions or more rows", field="test_fraction") from None
