"""Safe extraction of uploaded zip and tar archives, entry by entry, into a temporary folder.

Every entry is checked before a byte is written: no `..`, no absolute path, no link or device;
the entry count, total uncompressed size and compression ratio are capped, and sizes are
counted while writing (an archive's declared sizes can lie). On any refusal the temporary
folder is removed, so a failed upload leaves nothing behind.
"""
from __future__ import annotations

import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO

from dlx.errors import DlxError

CHUNK = 1 << 20
RATIO_FLOOR = 1 << 20  # entries smaller than this are not ratio-checked (a tiny blank image compresses well)


@dataclass(frozen=True)
class Limits:
    """What an upload may hold; each is a setting named in the refusal so the user knows what to raise."""

    max_bytes: int  # DLX_UPLOAD_MAX_BYTES: total uncompressed size
    max_entries: int  # DLX_UPLOAD_MAX_FILES: files and folders in the archive
    max_ratio: int  # DLX_UPLOAD_MAX_RATIO: uncompressed / compressed size, per entry and overall


def upload_limits() -> Limits:
    """Limits from the environment: 2 GB, 200,000 entries and a ratio of 100 unless set."""
    return Limits(_setting("DLX_UPLOAD_MAX_BYTES", 2 * 1024**3), _setting("DLX_UPLOAD_MAX_FILES", 200_000),
                  _setting("DLX_UPLOAD_MAX_RATIO", 100))


def _setting(variable: str, default: int) -> int:
    raw = os.environ.get(variable, "").strip() or str(default)
    if not raw.isdigit() or int(raw) == 0:
        raise DlxError(f"{variable}: expected a whole number above 0, got {raw!r}", field=variable)
    return int(raw)


@dataclass
class _Entry:
    name: str
    is_dir: bool
    size: int  # declared uncompressed size
    compressed: int | None  # None where the format does not say (tar: one stream)
    open: Callable[[], IO[bytes]]  # a file's contents (directories are never opened)


def extract_archive(archive: Path, scratch: Path, limits: Limits | None = None) -> Path:
    """Extract `archive` (zip, tar, tar.gz/bz2/xz) into a new temporary folder under `scratch`.

    Returns that folder; the caller moves it into place once its own checks pass, or removes it.
    Raises DlxError (field "upload") naming the entry and the setting that refused it.
    """
    limits = limits or upload_limits()
    scratch.mkdir(parents=True, exist_ok=True)
    target = Path(tempfile.mkdtemp(prefix="upload-", dir=scratch))
    try:
        _extract_into(archive, target, limits)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return target


def _extract_into(archive: Path, target: Path, limits: Limits) -> None:
    archive_size = max(1, archive.stat().st_size)
    total = 0
    for count, entry in enumerate(_entries(archive), start=1):
        if count > limits.max_entries:
            raise DlxError(f"upload: {archive.name} has more than {limits.max_entries:,} entries; "
                           "the limit is DLX_UPLOAD_MAX_FILES", field="upload")
        relative = _safe_name(entry.name)
        if relative is None:
            continue
        path = target.joinpath(*relative.parts)
        if entry.is_dir:
            path.mkdir(parents=True, exist_ok=True)
            continue
        if total + entry.size > limits.max_bytes:
            raise DlxError(f"upload: {archive.name} unpacks to more than {limits.max_bytes:,} bytes "
                           f"(at {entry.name}); the limit is DLX_UPLOAD_MAX_BYTES", field="upload")
        if (entry.compressed is not None and entry.size > RATIO_FLOOR
                and entry.size > limits.max_ratio * max(1, entry.compressed)):
            raise DlxError(f"upload: {entry.name} in {archive.name} is compressed "
                           f"{entry.size // max(1, entry.compressed):,} to 1, above the limit of "
                           f"{limits.max_ratio} (DLX_UPLOAD_MAX_RATIO); it looks like a zip bomb", field="upload")
        path.parent.mkdir(parents=True, exist_ok=True)
        with entry.open() as source, open(path, "xb") as sink:
            total = _copy_capped(source, sink, total, entry.name, archive.name, limits)
        if total > RATIO_FLOOR and total > limits.max_ratio * archive_size:
            raise DlxError(f"upload: {archive.name} unpacks to {total // archive_size:,} times its own size, "
                           f"above the limit of {limits.max_ratio} (DLX_UPLOAD_MAX_RATIO); it looks like "
                           "an archive bomb", field="upload")


def _copy_capped(source: IO[bytes], sink: BinaryIO, total: int, entry: str, archive: str, limits: Limits) -> int:
    """Copy in chunks, counting real bytes against the total cap whatever the header declared."""
    while chunk := source.read(CHUNK):
        total += len(chunk)
        if total > limits.max_bytes:
            raise DlxError(f"upload: {archive} unpacks to more than {limits.max_bytes:,} bytes "
                           f"(at {entry}); the limit is DLX_UPLOAD_MAX_BYTES", field="upload")
        sink.write(chunk)
    return total


def _safe_name(name: str) -> PurePosixPath | None:
    """The entry's path relative to the target, or a refusal; None for entries worth skipping (macOS forks)."""
    if "\x00" in name or "\\" in name:
        raise DlxError(f"upload: entry {name!r} has a backslash or NUL in its name; refused", field="upload")
    path = PurePosixPath(name)
    if path.is_absolute() or (path.parts and ":" in path.parts[0]):
        raise DlxError(f"upload: entry {name!r} has an absolute path; refused (entries must stay inside "
                       "the archive's folder)", field="upload")
    if ".." in path.parts:
        raise DlxError(f"upload: entry {name!r} climbs out of the archive with '..'; refused", field="upload")
    parts = [part for part in path.parts if part not in ("", ".")]
    if not parts or parts[0] == "__MACOSX" or parts[-1] == ".DS_Store":
        return None
    return PurePosixPath(*parts)


def _entries(archive: Path) -> Iterator[_Entry]:
    if zipfile.is_zipfile(archive):
        yield from _zip_entries(archive)
    elif tarfile.is_tarfile(archive):
        yield from _tar_entries(archive)
    else:
        raise DlxError(f"upload: {archive.name} is neither a zip nor a tar archive", field="upload")


def _zip_entries(archive: Path) -> Iterator[_Entry]:
    try:
        with zipfile.ZipFile(archive) as handle:
            for info in handle.infolist():
                mode = info.external_attr >> 16  # Unix type bits, where the zip was made on Unix
                if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                    what = "a symbolic link" if stat.S_ISLNK(mode) else "a device or special file"
                    raise DlxError(f"upload: entry {info.filename!r} is {what}; refused", field="upload")
                yield _Entry(info.filename, info.is_dir(), info.file_size, info.compress_size,
                             partial(handle.open, info))
    except (zipfile.BadZipFile, EOFError) as err:
        raise DlxError(f"upload: {archive.name} is a damaged zip ({err})", field="upload") from None


def _tar_entries(archive: Path) -> Iterator[_Entry]:
    try:
        with tarfile.open(archive, mode="r:*") as handle:
            for member in handle:  # streamed: an archive of millions of entries stops at the cap
                if member.issym() or member.islnk():
                    raise DlxError(f"upload: entry {member.name!r} is a link; refused", field="upload")
                if not (member.isfile() or member.isdir()):
                    raise DlxError(f"upload: entry {member.name!r} is a device or special file; refused",
                                   field="upload")
                yield _Entry(member.name, member.isdir(), member.size, None,
                             partial(_tar_file, handle, member))
    except (tarfile.TarError, EOFError, OSError) as err:
        raise DlxError(f"upload: {archive.name} is a damaged tar archive ({err})", field="upload") from None


def _tar_file(handle: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    stream = handle.extractfile(member)
    assert stream is not None  # None only for links and directories: links are refused, directories never opened
    return stream
