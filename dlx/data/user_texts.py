"""A CSV of text and label as a user data set, checked by the text loader (dlx.data.text_csv) before it is kept."""
from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

import numpy as np

from dlx import settings
from dlx.data.archives import upload_limits
from dlx.data.registry import DataBundle, DatasetEntry
from dlx.data.text_csv import load_text_csv, read_text_csv
from dlx.data.user_intake import FOLDER, check_name, scratch
from dlx.errors import DlxError
from dlx.store import Store
from dlx.store.user_sets import UserSet

FILE = "texts.csv"


def import_text_csv(store: Store, data: bytes, name: str, text_column: str, label_column: str,
                    source: str = "texts.csv"):
    """Check a CSV of labelled sentences and keep it as data set `name`; returns it and notes."""
    name = check_name(name)
    if len(data) > upload_limits().max_bytes:
        raise DlxError(f"file: {source} is larger than DLX_UPLOAD_MAX_BYTES", field="file")
    scratch().mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="texts-", dir=scratch()))
    target = settings.home() / FOLDER / name
    try:
        (staging / FILE).write_bytes(data)
        table = read_text_csv(staging / FILE, text_column, label_column)
        counts = np.bincount(table.labels)
        if counts.min() < 3:
            rare = table.classes[int(counts.argmin())]
            raise DlxError(f"label_column: class {rare!r} has {counts.min()} row(s); each class needs at least 3 "
                           "to appear in the train, validation and test splits", field="label_column")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    lengths = [len(text.split()) for text in table.texts]
    details = {"text_column": text_column, "label_column": label_column,
               "words": {"min": min(lengths), "median": float(np.median(lengths)), "max": max(lengths)}}
    try:
        user_set = store.user_sets.add(name, "text", source, str(target.relative_to(settings.home())), True,
                                       len(table.texts), len(data), table.classes, hashlib.sha256(data).hexdigest(),
                                       details)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return user_set, [f"{len(table.texts):,} texts of {min(lengths)} to {max(lengths)} words"]


def entry(user_set: UserSet) -> DatasetEntry:
    """The registry entry of a user text set (read with the text loader at each load)."""
    details = user_set.details
    description = (f"your texts from {user_set.source}, {len(user_set.classes)} classes, {user_set.rows:,} texts")

    def load(seed: int, val_fraction: float, test_fraction: float, download: bool = False) -> DataBundle:
        return load_text_csv(user_set.path / FILE, details["text_column"], details["label_column"], seed,
                             val_fraction, test_fraction, name=user_set.name)

    def missing() -> list[Path]:
        return [] if (user_set.path / FILE).exists() else [user_set.path / FILE]

    return DatasetEntry(user_set.name, "text", description, load, None, len(user_set.classes),
                        user_set.rows, missing)
