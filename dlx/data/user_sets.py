"""Users' own data sets: checked on the way in, kept as database rows, offered by the registry.

An upload is extracted into a temporary folder under `<home>/tmp` and checked there; only when
every check passed is it moved (one rename) to `<home>/user_datasets/<name>` and its row written.
A folder on the server is checked in place and referenced, never copied or deleted. The rows are
`store.user_sets`'; every function here takes the store, and the registry lists the sets of the
store the process's edge names (`list_in_registry`).
"""
from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from dlx import settings
from dlx.data import tables, user_texts
from dlx.data.archives import extract_archive, upload_limits
from dlx.data.image_folders import FolderReport, scan_image_folder
from dlx.data.registry import DATASETS, DataBundle, DatasetEntry, load_dataset
from dlx.data.user_intake import FOLDER, check_name, scratch
from dlx.errors import DlxError
from dlx.store import Store, StoreUnreachable
from dlx.store.user_sets import UserSet

DEFAULT_SIDE = 32
AUGMENTATIONS = ("flip", "crop")  # training-only; a set with any of them streams (per-item randomness)
_registry_stores: list[Callable[[], Store]] = []  # the store whose sets the registry lists (list_in_registry)


def import_image_archive(store: Store, archive: Path, name: str, side: int = DEFAULT_SIDE,
                         augment: tuple[str, ...] = (), source: str | None = None) -> tuple[UserSet, list[str]]:
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
        user_set = _save_image_set(store, name, source or archive.name, target, True, report, side, augment)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return user_set, report.notes()


def import_uploaded_images(store: Store, data: bytes, filename: str, name: str, side: int = DEFAULT_SIDE,
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
        return import_image_archive(store, archive, name, side, augment, source=Path(filename).name)
    finally:
        shutil.rmtree(holder, ignore_errors=True)


def import_image_folder(store: Store, folder: Path | str, name: str, side: int = DEFAULT_SIDE,
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
    return _save_image_set(store, name, str(folder), report.root, False, report, side, augment), report.notes()


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


def _save_image_set(store: Store, name: str, source: str, root: Path, owned: bool, report: FolderReport,
                    side: int, augment: tuple[str, ...]) -> UserSet:
    details = {"files": report.files, "channels": report.channels, "side": side,
               "mean": list(report.mean), "std": list(report.std), "skipped": report.skipped,
               "left_out": report.small_classes, "augment": list(augment)}
    path = str(root.relative_to(settings.home())) if owned else str(root)
    return store.user_sets.add(name, "image", source, path, owned, len(report.files), report.bytes,
                               report.classes, report.checksum, details)


def list_user_sets(store: Store) -> list[UserSet]:
    """Every user data set, newest first."""
    return store.user_sets.all()


def get_user_set(store: Store, name: str) -> UserSet | None:
    return next((user_set for user_set in list_user_sets(store) if user_set.name == name), None)


def delete_user_set(store: Store, name: str, confirm: bool = False) -> None:
    """Delete a user data set's row and, where dlx owns them, its files; refuses if runs use it unless confirmed."""
    user_set = get_user_set(store, name)
    if user_set is None:
        raise DlxError(f"dataset: there is no user data set called {name!r}", field="dataset")
    used = store.user_sets.runs_using(name)
    if used and not confirm:
        raise DlxError(f"dataset: {used} run(s) use {name!r}; confirm to delete it anyway (their charts "
                       "stay, but they can no longer be re-run or explained)", field="dataset")
    store.user_sets.delete(name)
    if user_set.owned:
        # Moved aside first so a half-deleted folder is never taken for the data set.
        trash = Path(tempfile.mkdtemp(prefix="deleted-", dir=_mkdir(scratch())))
        user_set.path.rename(trash / "set")
        shutil.rmtree(trash, ignore_errors=True)
    load_dataset.cache_clear()


def list_in_registry(store: Callable[[], Store]) -> None:
    """Offer the user data sets of `store()` in the registry (DATASETS), as the edges that read it (the
    app, the CLI's launch, the job entry point) name it; asked at each read, once the database exists."""
    _registry_stores[:] = [store]


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _database_exists() -> bool:
    """False for an SQLite file not yet created: listing data sets must not create the database."""
    url = settings.database_url()
    if not url.startswith("sqlite:///"):
        return True
    return Path(url.removeprefix("sqlite:///")).exists()


def registered_set(name: str) -> UserSet | None:
    """The user data set `name` as the registry lists it (None: a built-in set, or none of that name)."""
    return next((user_set for user_set in _registered() if user_set.name == name), None)


def _registered() -> list[UserSet]:
    """The user data sets of the store the edge named; none before the database exists."""
    if not _registry_stores or not _database_exists():
        return []
    return list_user_sets(_registry_stores[0]())


def _entries() -> dict[str, DatasetEntry]:
    """The registry's source: one entry per user data set row of the store the edge named."""
    try:
        user_sets = _registered()
    except StoreUnreachable:  # a database that cannot be reached: the built-in sets still list
        return {}
    return {u.name: _entry(u) for u in user_sets}


def _entry(user_set: UserSet) -> DatasetEntry:
    if user_set.kind == "table":
        return tables.entry(user_set)
    if user_set.kind == "text":
        return user_texts.entry(user_set)
    details = user_set.details
    shape = (details["channels"], details["side"], details["side"])
    description = (f"your images from {user_set.source}, {'×'.join(map(str, shape))}, "
                   f"{len(user_set.classes)} classes, {user_set.rows:,} images")

    def load(seed: int, val_fraction: float, test_fraction: float, download: bool = False) -> DataBundle:
        from dlx.data.streaming import load_image_set  # torch: imported where a set is loaded

        return load_image_set(user_set, seed, val_fraction, test_fraction)

    def missing() -> list[Path]:
        return [] if user_set.path.is_dir() else [user_set.path]

    return DatasetEntry(user_set.name, "image", description, load, shape, len(user_set.classes),
                        user_set.rows, missing)


DATASETS.sources.append(_entries)
