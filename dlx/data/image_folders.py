"""An image folder (one sub-folder per class) checked image by image before it becomes a data set.

Each file is opened with a pixel cap read from its header before any decoding, so a
decompression bomb is refused without being decoded; files that do not decode are listed and
skipped; the set's per-channel mean and std are computed in the same pass and stored, so
training never has to read the whole folder again to normalise. Nothing outside the folder is
read: links that lead out of it are skipped and reported, and the scan is capped in files and
folders (`DLX_UPLOAD_MAX_FILES`) and in time (`DLX_FOLDER_SCAN_SECONDS`).
"""
from __future__ import annotations

import hashlib
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from dlx import settings
from dlx.data.archives import upload_limits
from dlx.errors import DlxError

# Shared with the Explain page's uploads; kept here, on the torch-free data side (issue 18).
MAX_PIXELS = 40_000_000  # refuse decompression bombs before decoding
GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
MIN_PER_CLASS = 5  # fewer samples than this in a class is reported: it cannot be split and learnt well
STATS_SIDE = 32  # images are shrunk to this side for the mean/std pass (statistics, not training)


@dataclass
class FolderReport:
    """What a scan found: the usable files with their class, and what was skipped and why."""

    root: Path
    classes: tuple[str, ...]
    files: list[tuple[str, int]]  # path relative to root, class index
    skipped: list[tuple[str, str]] = field(default_factory=list)  # path, reason
    small_classes: dict[str, int] = field(default_factory=dict)  # class -> count, under MIN_PER_CLASS
    channels: int = 3
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    bytes: int = 0
    checksum: str = ""  # SHA-256 over each kept file's path, class and contents

    def notes(self) -> list[str]:
        """Sentences for the user about what was skipped or is thin."""
        notes = []
        if self.skipped:
            listed = "; ".join(f"{path} ({reason})" for path, reason in self.skipped[:10])
            more = f" and {len(self.skipped) - 10} more" if len(self.skipped) > 10 else ""
            notes.append(f"{len(self.skipped)} file(s) skipped: {listed}{more}")
        if self.small_classes:
            listed = ", ".join(f"{name} ({count})" for name, count in self.small_classes.items())
            notes.append(f"classes left out, with fewer than {MIN_PER_CLASS} readable images: {listed}; "
                         "add more images to them")
        return notes


@dataclass
class ScanLimits:
    """How much of a folder a scan may look at before it refuses it, each limit named by its setting."""

    max_entries: int  # DLX_UPLOAD_MAX_FILES: files and folders looked at
    seconds: float  # DLX_FOLDER_SCAN_SECONDS: wall time for listing, decoding and hashing

    @classmethod
    def from_settings(cls) -> ScanLimits:
        return cls(upload_limits().max_entries, settings.folder_scan_seconds())


class _Budget:
    """Counts what a scan looks at and its time; refuses the folder, by name, once either runs out."""

    def __init__(self, shown: str, field: str, limits: ScanLimits):
        self.shown, self.field, self.limits = shown, field, limits
        self.entries, self.deadline = 0, time.monotonic() + limits.seconds

    def entry(self) -> None:
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise DlxError(f"{self.field}: {self.shown} holds more than {self.limits.max_entries:,} files and "
                           "folders, the most dlx checks (DLX_UPLOAD_MAX_FILES); choose a smaller folder or "
                           "raise the setting", field=self.field)
        self.time()

    def time(self) -> None:
        if time.monotonic() > self.deadline:
            raise DlxError(f"{self.field}: checking {self.shown} took longer than {self.limits.seconds:g} s "
                           "(DLX_FOLDER_SCAN_SECONDS); choose a smaller folder or raise the setting",
                           field=self.field)


def _outside(path: Path, root: Path) -> bool:
    """Whether the link `path` leads outside `root` (a resolved folder), or nowhere."""
    try:
        return not path.resolve(strict=True).is_relative_to(root)
    except (OSError, RuntimeError):  # dangling, a loop, unreadable
        return True


def class_root(folder: Path) -> Path:
    """The folder whose sub-folders are the classes: an archive often wraps them in one top folder.

    Only a real folder is descended into, never a link (one to its own parent would loop).
    """
    while True:
        children = [c for c in folder.iterdir() if not c.name.startswith(".")]
        only = children[0] if len(children) == 1 else None
        if only is not None and only.is_dir() and not only.is_symlink() and any(
                grandchild.is_dir() and not grandchild.is_symlink() for grandchild in only.iterdir()):
            folder = only
        else:
            return folder


def _class_files(class_dir: Path, real: Path, root: Path, seen: set[Path], budget: _Budget,
                 skipped: list[tuple[str, str]]) -> list[Path]:
    """The regular files under one class folder, sorted; links are followed only where they stay
    inside `root`, and no folder is read twice (a link back to a parent would loop)."""
    files, stack = [], [(class_dir, real)]
    while stack:
        folder, real = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as err:
            skipped.append((folder.relative_to(root).as_posix(), f"cannot be read: {err.strerror or 'error'}"))
            continue
        for entry in entries:
            budget.entry()
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            relative = path.relative_to(root).as_posix()
            linked = entry.is_symlink()
            if linked and _outside(path, root):
                skipped.append((relative, "a link leading outside the folder; not followed"))
                continue
            if entry.is_dir():
                inner = path.resolve() if linked else real / entry.name
                if inner in seen:
                    skipped.append((relative, "a folder read already (through a link); not followed again"))
                    continue
                seen.add(inner)
                stack.append((path, inner))
            elif entry.is_file():
                files.append(path)
    return sorted(files)


def scan_image_folder(folder: Path, max_pixels: int = MAX_PIXELS, *, shown: str | None = None,
                      field: str = "upload", limits: ScanLimits | None = None) -> FolderReport:
    """Check every image under `folder`'s class sub-folders; refuse the set if any image is a pixel bomb.

    `folder` is resolved; nothing outside it is read: links leading out are skipped and reported.
    `shown` names the folder in refusals (its path as the user gave it), which never list its
    contents; the scan stops, refused, past `limits` (files and folders looked at, seconds).
    """
    folder = folder.resolve()
    shown = shown or folder.name
    budget = _Budget(shown, field, limits or ScanLimits.from_settings())
    root = class_root(folder)
    report = FolderReport(root, (), [])
    class_dirs = []
    for child in sorted(root.iterdir()):
        budget.entry()
        if child.name.startswith("."):
            continue
        if child.is_symlink() and _outside(child, root):
            report.skipped.append((child.name, "a link leading outside the folder; not followed"))
        elif child.is_dir():
            class_dirs.append(child)
    if len(class_dirs) < 2:
        raise DlxError(f"{field}: {shown} needs one sub-folder per class and at least two classes; "
                       f"found {len(class_dirs)}", field=field)
    seen = {root} | {c.resolve() for c in class_dirs}
    sums, squares, pixels, grey = np.zeros(3), np.zeros(3), 0, 0
    hashes: dict[str, bytes] = {}
    for class_dir in class_dirs:
        label, kept = len(report.classes), []
        for path in _class_files(class_dir, class_dir.resolve(), root, seen, budget, report.skipped):
            budget.time()
            relative = path.relative_to(root).as_posix()
            try:
                array, mode = _decode(path, max_pixels, shown, field)
                hashes[relative] = _file_hash(path, budget)
            except _Skip as skip:
                report.skipped.append((relative, str(skip)))
                continue
            kept.append((relative, label, path.stat().st_size, mode in GREY_MODES,
                         array.reshape(-1, 3).astype(np.float64) / 255.0))
        if len(kept) < MIN_PER_CLASS:  # left out: too few to appear in every split and be learnt
            report.small_classes[class_dir.name] = len(kept)
            continue
        report.classes += (class_dir.name,)
        for relative, label, size, is_grey, values in kept:
            report.files.append((relative, label))
            report.bytes += size
            grey += is_grey
            sums += values.sum(0)
            squares += (values ** 2).sum(0)
            pixels += len(values)
    if len(report.classes) < 2:  # counts only: a refused folder's contents are not listed
        raise DlxError(f"{field}: {shown} has at least {MIN_PER_CLASS} readable images in fewer than two "
                       f"classes ({len(class_dirs)} sub-folders looked at, {len(report.skipped)} entries "
                       "skipped); put each class's images in its own sub-folder", field=field)
    report.channels = 1 if grey == len(report.files) else 3
    mean = sums / max(pixels, 1)
    std = np.sqrt(np.maximum(squares / max(pixels, 1) - mean ** 2, 1e-12))
    if report.channels == 1:
        mean, std = mean[:1], std[:1]
    report.mean, report.std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    digest = hashlib.sha256()
    for relative, label in report.files:
        digest.update(f"{relative}\0{label}\0".encode() + hashes[relative])
    report.checksum = digest.hexdigest()
    return report


def _file_hash(path: Path, budget: _Budget) -> bytes:
    """A file's SHA-256, read in chunks under the scan's time limit."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
                budget.time()
    except OSError as err:
        raise _Skip(f"cannot be read: {err.strerror or 'error'}") from None
    return digest.digest()


class _Skip(Exception):
    """A file that is not a readable image: skipped and listed, not fatal."""


def _decode(path: Path, max_pixels: int, shown: str, field: str) -> tuple[np.ndarray, str]:
    """The image shrunk for statistics (H, W, 3 uint8) and its mode; refuses pixel bombs before decoding
    (naming the folder `shown`, not the file: a refusal does not list the folder's contents)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise DlxError(f"{field}: {shown} holds an image of {width}×{height} pixels, above the "
                                   f"limit of {max_pixels:,}; refused as a decompression bomb", field=field)
                mode = image.mode
                image.draft("RGB", (STATS_SIDE, STATS_SIDE))  # JPEG decodes at a fraction of its size
                image.thumbnail((STATS_SIDE, STATS_SIDE))
                return np.asarray(image.convert("RGB")), mode
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DlxError(f"{field}: {shown} holds an image with too many pixels to open safely (limit "
                       f"{max_pixels:,}); refused as a decompression bomb", field=field) from None
    except UnidentifiedImageError:
        raise _Skip("not an image") from None
    except OSError as err:  # strerror, where there is one: the message alone, without the path
        raise _Skip(f"does not decode: {err.strerror or err}") from None
    except (SyntaxError, ValueError) as err:
        raise _Skip(f"does not decode: {err}") from None


def load_image(path: Path, side: int, channels: int, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """One image as float32 (C, side, side) in [0, 1], for training and browsing.

    A link in the path's last part is not followed: a set's files are resolved once when it loads
    (`streaming.image_files`), so a link put in one's place later is refused, never read through.
    """
    with open(path, "rb", opener=_no_follow) as handle, Image.open(handle) as image:
        if image.size[0] * image.size[1] > max_pixels:
            raise DlxError(f"dataset: {path.name} has more than {max_pixels:,} pixels", field="dataset")
        image.draft("RGB" if channels == 3 else "L", (side, side))
        resized = image.convert("L" if channels == 1 else "RGB").resize((side, side), Image.Resampling.BILINEAR)
        array = np.asarray(resized, dtype=np.float32) / 255.0
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW)
