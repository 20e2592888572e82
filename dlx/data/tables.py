"""CSV tables with a chosen label column, checked, encoded and kept as a user data set.

Numeric columns keep their values (missing ones take the column's median); text columns are
categorical: one-hot up to `MAX_ONE_HOT` categories, ordinal beyond (missing is a category of
its own). What was done to each column is stored and shown. The encoded table is kept as .npy
arrays read back with `allow_pickle=False`, so nothing is ever unpickled.
"""
from __future__ import annotations

import csv
import hashlib
import io
import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dlx import settings
from dlx.data import csv_cells
from dlx.data.archives import upload_limits
from dlx.data.registry import DataBundle, DatasetEntry, DatasetMeta, split_arrays
from dlx.data.user_intake import FOLDER, check_name, scratch
from dlx.errors import DlxError
from dlx.store import Store
from dlx.store.user_sets import UserSet

MISSING = {"", "na", "n/a", "nan", "null", "none", "?"}
MAX_ONE_HOT = 20
MIN_PER_CLASS = 3  # a class needs a row in each of train, validation and test


@dataclass
class Column:
    """One feature column and what was done to it, in words the Data page shows."""

    name: str
    kind: str  # numeric or categorical
    missing: int = 0
    imputed: str = ""  # what missing values became
    encoding: str = ""  # numeric, one-hot or ordinal
    categories: list[str] = field(default_factory=list)

    def describe(self) -> str:
        text = {"numeric": "numeric", "one-hot": f"categorical, one-hot over {len(self.categories)} values",
                "ordinal": f"categorical, ordinal over {len(self.categories)} values (too many for one-hot)"}
        missing = f"; {self.missing} missing → {self.imputed}" if self.missing else ""
        return f"{self.name}: {text[self.encoding]}{missing}"


@dataclass
class Table:
    x: np.ndarray  # float32 (rows, features)
    y: np.ndarray  # int64 class indices
    classes: tuple[str, ...]
    columns: list[Column]
    feature_names: list[str]


def read_table_csv(data: bytes, label_column: str, name: str = "table.csv") -> Table:
    """Parse and encode a CSV; every refusal names the column or the line (the header is line 1)."""
    if len(data) > upload_limits().max_bytes:
        raise DlxError(f"file: {name} is larger than DLX_UPLOAD_MAX_BYTES", field="file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        raise DlxError(f"file: {name} is not UTF-8 text (byte {err.start}, line {line}); save it as UTF-8 CSV",
                       field="file") from None
    if not text.strip():
        raise DlxError(f"file: {name} is empty", field="file")
    try:
        rows = list(csv_cells.reader(io.StringIO(text, newline="")))  # a cell dlx wrote as '=x reads =x
    except csv.Error as err:
        raise DlxError(f"file: {name} is not valid CSV ({err})", field="file") from None
    header = [h.strip() for h in rows[0]]
    if label_column not in header:
        raise DlxError(f"label_column: {name} has no column {label_column!r}; its columns are "
                       f"{', '.join(repr(h) for h in header)}", field="label_column")
    if len(set(header)) < len(header) or "" in header:
        raise DlxError(f"file: the header of {name} has an empty or repeated column name", field="file")
    body = [(number, row) for number, row in enumerate(rows[1:], start=2) if any(cell.strip() for cell in row)]
    if not body:
        raise DlxError(f"file: {name} has a header and no rows", field="file")
    for number, row in body:
        if len(row) != len(header):
            raise DlxError(f"file: line {number} of {name} has {len(row)} fields; the header has {len(header)}",
                           field="file")
    label_at = header.index(label_column)
    labels = []
    for number, row in body:
        value = row[label_at].strip()
        if value.lower() in MISSING:
            raise DlxError(f"label_column: line {number} of {name} has no value in {label_column!r}",
                           field="label_column")
        labels.append(value)
    classes = tuple(sorted(set(labels)))
    if len(classes) < 2:
        raise DlxError(f"label_column: column {label_column!r} of {name} has only the class {classes[0]!r}; "
                       "a classifier needs at least two", field="label_column")
    counts = {c: labels.count(c) for c in classes}
    rare = [c for c, n in counts.items() if n < MIN_PER_CLASS]
    if rare:
        raise DlxError(f"label_column: class(es) {', '.join(map(repr, rare))} in {label_column!r} have fewer than "
                       f"{MIN_PER_CLASS} rows; each needs a row in the train, validation and test splits",
                       field="label_column")
    lookup = {c: i for i, c in enumerate(classes)}
    blocks, columns, names = [], [], []
    for at, column_name in enumerate(header):
        if at == label_at:
            continue
        block, column, block_names = _encode([(n, r[at].strip()) for n, r in body], column_name, name)
        blocks.append(block)
        columns.append(column)
        names += block_names
    if not blocks:
        raise DlxError(f"file: {name} has no feature columns besides {label_column!r}", field="file")
    x = np.concatenate(blocks, axis=1).astype(np.float32)
    return Table(x, np.array([lookup[v] for v in labels], dtype=np.int64), classes, columns, names)


def _encode(cells: list[tuple[int, str]], column: str, name: str) -> tuple[np.ndarray, Column, list[str]]:
    numbers: list[float | None] = []
    first_text = first_number = None
    for line, cell in cells:
        if cell.lower() in MISSING:
            numbers.append(None)
            continue
        try:
            value = float(cell)
        except ValueError:
            first_text = first_text or (line, cell)
            numbers.append(None)
            continue
        if not math.isfinite(value):
            raise DlxError(f"{column}: line {line} of {name} has {cell!r}, not a finite number", field=column)
        first_number = first_number or (line, cell)
        numbers.append(value)
    missing = sum(cell.lower() in MISSING for _, cell in cells)
    if first_text and first_number:
        # Mixed: name the rarer kind's first line, the likely typo.
        texts = sum(1 for (_, c), v in zip(cells, numbers) if v is None and c.lower() not in MISSING)
        line, cell = first_text if texts <= len(cells) - texts - missing else first_number
        raise DlxError(f"{column}: column {column!r} of {name} mixes numbers and text (line {line}: {cell!r}); "
                       "make it all numbers or all categories", field=column)
    if first_text is None:
        present = [v for v in numbers if v is not None]
        if not present:
            raise DlxError(f"{column}: column {column!r} of {name} has no values", field=column)
        median = float(np.median(present))
        values = np.array([median if v is None else v for v in numbers], dtype=np.float64)[:, None]
        return values, Column(column, "numeric", missing, f"median {median:g}", "numeric"), [column]
    raw = [("(missing)" if cell.lower() in MISSING else cell) for _, cell in cells]
    categories = sorted(set(raw))
    imputed = "category '(missing)'"
    if len(categories) <= MAX_ONE_HOT:
        index = {c: i for i, c in enumerate(categories)}
        block = np.zeros((len(raw), len(categories)))
        block[np.arange(len(raw)), [index[c] for c in raw]] = 1.0
        return (block, Column(column, "categorical", missing, imputed, "one-hot", categories),
                [f"{column}={c}" for c in categories])
    index = {c: i for i, c in enumerate(categories)}
    block = np.array([index[c] for c in raw], dtype=np.float64)[:, None]
    return block, Column(column, "categorical", missing, imputed, "ordinal", categories), [column]


def import_table(store: Store, data: bytes, name: str, label_column: str, source: str = "table.csv"):
    """Check and encode a CSV, keep it under `<home>/user_datasets/<name>` and register it; returns it and notes."""
    name = check_name(name)
    table = read_table_csv(data, label_column, source)
    scratch().mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="table-", dir=scratch()))
    target = settings.home() / FOLDER / name
    try:
        np.save(staging / "x.npy", table.x, allow_pickle=False)
        np.save(staging / "y.npy", table.y, allow_pickle=False)
        (staging / "source.csv").write_bytes(data)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    details: dict[str, Any] = {"label_column": label_column, "features": table.feature_names,
                               "columns": [column.__dict__ for column in table.columns]}
    try:
        user_set = store.user_sets.add(name, "table", source, str(target.relative_to(settings.home())), True,
                                       len(table.y), len(data), table.classes, hashlib.sha256(data).hexdigest(),
                                       details)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return user_set, [Column(**c).describe() for c in details["columns"]]


def entry(user_set: UserSet) -> DatasetEntry:
    """The registry entry of a user table."""
    features = tuple(user_set.details["features"])
    description = (f"your table from {user_set.source}, {len(features)} features, "
                   f"{len(user_set.classes)} classes, {user_set.rows:,} rows")

    def load(seed: int, val_fraction: float, test_fraction: float, download: bool = False) -> DataBundle:
        x = np.load(user_set.path / "x.npy", allow_pickle=False)
        y = np.load(user_set.path / "y.npy", allow_pickle=False)
        meta = DatasetMeta(user_set.name, "table", user_set.classes, (x.shape[1],), features, description)
        return split_arrays(x, y, meta, seed, val_fraction, test_fraction, standardize=True)

    def missing() -> list[Path]:
        return [p for p in (user_set.path / "x.npy", user_set.path / "y.npy") if not p.exists()]

    return DatasetEntry(user_set.name, "table", description, load, (len(features),), len(user_set.classes),
                        user_set.rows, missing)

