"""Users' own data sets: checked on the way in, kept as database rows, offered by the registry.

An upload is extracted into a temporary folder under `<home>/tmp` and checked there; only when
every check passed is it moved (one rename) to `<home>/user_datasets/<name>` and its row written.
A folder on the server is checked in place and referenced, never copied or deleted.
"""
from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from dlx import settings
from dlx.data.archives import extract_archive, upload_limits
from dlx.data.image_folders import FolderReport, scan_image_folder
from dlx.data.registry import DATASETS, DataBundle, DatasetEntry, DatasetMeta, load_dataset
from dlx.errors import DlxError

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
DEFAULT_SIDE = 32
AUGMENTATIONS = ("flip", "crop")  # training-only; a set with any of them streams (per-item randomness)
FOLDER = "user_datasets"


@dataclass(frozen=True)
class UserSet:
    """A user data set's row, as pages and loaders read it."""

    name: str
    kind: str
    source: str
    path: Path
    owned: bool
    rows: int
    size_bytes: int
    classes: tuple[str, ...]
    checksum: str
    details: dict[str, Any]
    created_at: Any


def scratch() -> Path:
    """Where uploads are written and extracted before they are checked (same disk as the kept sets)."""
    return settings.home() / "tmp"


def check_name(name: str) -> str:
    """A new data set's name: short, lowercase, not taken by a built-in or another user set."""
    name = name.strip()
    if not NAME.match(name):
        raise DlxError(f"name: {name!r} is not a valid data set name; use lowercase letters, digits, '-' "
                       "and '_' (up to 63), starting with a letter or digit", field="name")
    if name in DATASETS:
        raise DlxError(f"name: a data set called {name!r} exists already; choose another name", field="name")
    return name


def import_image_archive(archive: Path, name: str, side: int = DEFAULT_SIDE, augment: tuple[str, ...] = (),
                         source: str | None = None) -> tuple[UserSet, list[str]]:
    """Check an uploaded zip/tar of class folders and keep it as data set `name`; returns it and notes.

    `side`: the size images are resized to; `augment`: training-only transforms ("flip", "crop").
    """
    name = check_name(name)
    side, augment = _check_side(side), _check_augment(augment)
    extracted = extract_archive(archive, scratch())
    try:
        report = scan_image_folder(extracted)
        target = settings.home() / FOLDER / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            raise DlxError(f"name: {target} exists already; choose another name", field="name")
        report.root.rename(target)  # one rename: the set appears whole or not at all
    finally:
        shutil.rmtree(extracted, ignore_errors=True)
    try:
        user_set = _save_image_set(name, source or archive.name, target, True, report, side, augment)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return user_set, report.notes()


def import_uploaded_images(data: bytes, filename: str, name: str, side: int = DEFAULT_SIDE,
                           augment: tuple[str, ...] = ()) -> tuple[UserSet, list[str]]:
    """An archive's bytes (from the Data page) checked and kept; the uploaded file itself is never kept."""
    limit = upload_limits().max_bytes
    if len(data) > limit:
        raise DlxError(f"upload: {filename} is {len(data):,} bytes, above DLX_UPLOAD_MAX_BYTES ({limit:,})",
                       field="upload")
    holder = Path(tempfile.mkdtemp(prefix="archive-", dir=_mkdir(scratch())))
    try:
        archive = holder / "upload"
        archive.write_bytes(data)
        return import_image_archive(archive, name, side, augment, source=Path(filename).name)
    finally:
        shutil.rmtree(holder, ignore_errors=True)


def import_image_folder(folder: Path | str, name: str, side: int = DEFAULT_SIDE,
                        augment: tuple[str, ...] = ()) -> tuple[UserSet, list[str]]:
    """Check a class-per-sub-folder image folder on the server and register it where it is.

    Only a folder inside one of `settings.data_roots()` may be registered; links inside it that lead
    out are skipped, and its check is capped in files and time (`scan_image_folder`).
    """
    name = check_name(name)
    side, augment = _check_side(side), _check_augment(augment)
    real = allowed_folder(folder)
    if not real.is_dir():
        raise DlxError(f"folder: {folder} is not a folder on the server", field="folder")
    report = scan_image_folder(real, shown=str(folder), field="folder")
    return _save_image_set(name, str(folder), report.root, False, report, side, augment), report.notes()


def allowed_folder(folder: Path | str) -> Path:
    """`folder` resolved (links followed), refused unless it lies inside a data root (`DLX_DATA_ROOTS`).

    Checked before anything in it is looked at, and the refusal is the same whether or not it exists.
    """
    text = str(folder).strip()
    path = Path(text).expanduser()
    if not text or not path.is_absolute():
        raise DlxError(f"folder: {text!r} is not an absolute path; give the folder's full path on the server",
                       field="folder")
    roots = settings.data_roots()
    if not roots:
        why = ("this app is open to the network and DLX_DATA_ROOTS is not set" if settings.exposed()
               else "DLX_DATA_ROOTS names no folder")
        raise DlxError(f"folder: {why}, so no folder on the server may be registered; its owner can allow "
                       "some with DLX_DATA_ROOTS (absolute paths separated by ':')", field="folder")
    real = path.resolve()
    if not any(real.is_relative_to(root) for root in roots):
        raise DlxError(f"folder: {text} is outside the folders dlx may read, DLX_DATA_ROOTS = "
                       f"{':'.join(map(str, roots))} (links followed); choose a folder inside one of them, "
                       "or add its parent to DLX_DATA_ROOTS", field="folder")
    return real


def image_files(user_set: UserSet) -> list[Path]:
    """The set's image files, resolved, each checked to lie inside its folder as registered: a link
    put in the folder after it was registered leads nowhere else."""
    root = user_set.path
    if root.resolve() != root:
        raise DlxError(f"dataset: the folder of {user_set.name!r}, {root}, is now a link elsewhere; dlx reads "
                       "only the folder registered; register it again", field="dataset")
    files = []
    for relative, _ in user_set.details["files"]:
        path = (root / relative).resolve()
        if not path.is_relative_to(root):
            raise DlxError(f"dataset: {relative} in {user_set.name!r} now leads outside its folder {root}; dlx "
                           "reads only files inside it; remove the link or register the folder again",
                           field="dataset")
        files.append(path)
    return files


def _check_side(side: int) -> int:
    if not 8 <= int(side) <= 512:
        raise DlxError(f"image_size: {side} is outside 8..512 pixels", field="image_size")
    return int(side)


def _check_augment(augment: tuple[str, ...]) -> tuple[str, ...]:
    unknown = set(augment) - set(AUGMENTATIONS)
    if unknown:
        raise DlxError(f"augment: unknown augmentation(s) {sorted(unknown)}; choose from {list(AUGMENTATIONS)}",
                       field="augment")
    return tuple(a for a in AUGMENTATIONS if a in augment)


def _save_image_set(name: str, source: str, root: Path, owned: bool, report: FolderReport,
                    side: int, augment: tuple[str, ...]) -> UserSet:
    details = {"files": report.files, "channels": report.channels, "side": side,
               "mean": list(report.mean), "std": list(report.std), "skipped": report.skipped,
               "left_out": report.small_classes, "augment": list(augment)}
    path = str(root.relative_to(settings.home())) if owned else str(root)
    return save_row(name, "image", source, path, owned, len(report.files), report.bytes, report.classes,
                    report.checksum, details)


def save_row(name: str, kind: str, source: str, path: str, owned: bool, rows: int, size_bytes: int,
             classes: tuple[str, ...], checksum: str, details: dict[str, Any]) -> UserSet:
    """Write a checked data set's row; a name taken meanwhile is refused, not overwritten."""
    from dlx.store import default_store
    from db.models import UserDataset

    row = UserDataset(name=name, kind=kind, source=source, path=path, owned=owned, rows=rows,
                      size_bytes=size_bytes, classes=list(classes), checksum=checksum, details=details)
    try:
        with default_store().session() as s, s.begin():
            s.add(row)
    except IntegrityError:
        raise DlxError(f"name: a data set called {name!r} exists already; choose another name",
                       field="name") from None
    return _user_set(row)


def _user_set(row) -> UserSet:
    path = settings.stored_path(row.path) if row.owned else Path(row.path)
    return UserSet(row.name, row.kind, row.source, path, row.owned, row.rows, row.size_bytes,
                   tuple(row.classes), row.checksum, dict(row.details), row.created_at)


def list_user_sets() -> list[UserSet]:
    """Every user data set, newest first; none where the database does not exist yet."""
    if not _database_exists():
        return []
    from dlx.store import default_store
    from db.models import UserDataset

    with default_store().session() as s:
        return [_user_set(row) for row in s.scalars(select(UserDataset).order_by(UserDataset.id.desc()))]


def get_user_set(name: str) -> UserSet | None:
    return next((user_set for user_set in list_user_sets() if user_set.name == name), None)


def runs_using(name: str) -> int:
    """How many runs were launched on data set `name` (deleting it would orphan them)."""
    from dlx.store import default_store
    from db.models import Run

    with default_store().session() as s:
        return s.scalar(select(func.count()).select_from(Run).where(Run.dataset == name)) or 0


def delete_user_set(name: str, confirm: bool = False) -> None:
    """Delete a user data set's row and, where dlx owns them, its files; refuses if runs use it unless confirmed."""
    from dlx.store import default_store
    from db.models import UserDataset

    user_set = get_user_set(name)
    if user_set is None:
        raise DlxError(f"dataset: there is no user data set called {name!r}", field="dataset")
    used = runs_using(name)
    if used and not confirm:
        raise DlxError(f"dataset: {used} run(s) use {name!r}; confirm to delete it anyway (their charts "
                       "stay, but they can no longer be re-run or explained)", field="dataset")
    with default_store().session() as s, s.begin():
        s.execute(delete(UserDataset).where(UserDataset.name == name))
    if user_set.owned:
        # Moved aside first so a half-deleted folder is never taken for the data set.
        trash = Path(tempfile.mkdtemp(prefix="deleted-", dir=_mkdir(scratch())))
        user_set.path.rename(trash / "set")
        shutil.rmtree(trash, ignore_errors=True)
    load_dataset.cache_clear()


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _database_exists() -> bool:
    """False for an SQLite file not yet created: listing data sets must not create the database."""
    url = settings.database_url()
    if not url.startswith("sqlite:///"):
        return True
    return Path(url.removeprefix("sqlite:///")).exists()


def _entries() -> dict[str, DatasetEntry]:
    """The registry's source: one entry per user data set row."""
    try:
        user_sets = list_user_sets()
    except OperationalError:  # a database that cannot be reached: the built-in sets still list
        return {}
    return {u.name: _entry(u) for u in user_sets}


def _entry(user_set: UserSet) -> DatasetEntry:
    if user_set.kind == "table":
        from dlx.data import tables

        return tables.entry(user_set)
    if user_set.kind == "text":
        from dlx.data import user_texts

        return user_texts.entry(user_set)
    details = user_set.details
    shape = (details["channels"], details["side"], details["side"])
    description = (f"your images from {user_set.source}, {'×'.join(map(str, shape))}, "
                   f"{len(user_set.classes)} classes, {user_set.rows:,} images")

    def load(seed: int, val_fraction: float, test_fraction: float, download: bool = False) -> DataBundle:
        from dlx.data.streaming import load_image_set

        return load_image_set(user_set, seed, val_fraction, test_fraction)

    def missing() -> list[Path]:
        return [] if user_set.path.is_dir() else [user_set.path]

    return DatasetEntry(user_set.name, "image", description, load, shape, len(user_set.classes),
                        user_set.rows, missing)


def image_meta(user_set: UserSet) -> DatasetMeta:
    details = user_set.details
    return DatasetMeta(user_set.name, "image", user_set.classes,
                       (details["channels"], details["side"], details["side"]),
                       description=f"your images from {user_set.source}", mean=tuple(details["mean"]))


def labels(user_set: UserSet) -> np.ndarray:
    return np.array([label for _, label in user_set.details["files"]], dtype=np.int64)


DATASETS.sources.append(_entries)
