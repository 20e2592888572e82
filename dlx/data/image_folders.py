"""An image folder (one sub-folder per class) checked image by image before it becomes a data set.

Each file is opened with a pixel cap read from its header before any decoding, so a
decompression bomb is refused without being decoded; files that do not decode are listed and
skipped; the set's per-channel mean and std are computed in the same pass and stored, so
training never has to read the whole folder again to normalise.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

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


def class_root(folder: Path) -> Path:
    """The folder whose sub-folders are the classes: an archive often wraps them in one top folder."""
    while True:
        children = [c for c in folder.iterdir() if not c.name.startswith(".")]
        if len(children) == 1 and children[0].is_dir() and any(
                grandchild.is_dir() for grandchild in children[0].iterdir()):
            folder = children[0]
        else:
            return folder


def scan_image_folder(folder: Path, max_pixels: int = MAX_PIXELS) -> FolderReport:
    """Check every image under `folder`'s class sub-folders; refuse the set if any image is a pixel bomb."""
    root = class_root(folder)
    class_dirs = sorted(c for c in root.iterdir() if c.is_dir() and not c.name.startswith("."))
    if len(class_dirs) < 2:
        raise DlxError(f"upload: {folder.name} needs one sub-folder per class and at least two classes; "
                       f"found {len(class_dirs)}", field="upload")
    report = FolderReport(root, (), [])
    sums, squares, pixels, grey = np.zeros(3), np.zeros(3), 0, 0
    for class_dir in class_dirs:
        label, kept = len(report.classes), []
        for path in sorted(p for p in class_dir.rglob("*") if p.is_file() and not p.name.startswith(".")):
            relative = path.relative_to(root).as_posix()
            try:
                array, mode = _decode(path, max_pixels)
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
    if len(report.classes) < 2:
        raise DlxError(f"upload: {folder.name} has at least {MIN_PER_CLASS} readable images in fewer than "
                       "two classes; " + " ".join(report.notes()), field="upload")
    report.channels = 1 if grey == len(report.files) else 3
    mean = sums / max(pixels, 1)
    std = np.sqrt(np.maximum(squares / max(pixels, 1) - mean ** 2, 1e-12))
    if report.channels == 1:
        mean, std = mean[:1], std[:1]
    report.mean, report.std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    return report


class _Skip(Exception):
    """A file that is not a readable image: skipped and listed, not fatal."""


def _decode(path: Path, max_pixels: int) -> tuple[np.ndarray, str]:
    """The image shrunk for statistics (H, W, 3 uint8) and its mode; refuses pixel bombs before decoding."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise DlxError(f"upload: {path.name} is {width}×{height} pixels, above the limit of "
                                   f"{max_pixels:,}; refused as a decompression bomb", field="upload")
                mode = image.mode
                image.draft("RGB", (STATS_SIDE, STATS_SIDE))  # JPEG decodes at a fraction of its size
                image.thumbnail((STATS_SIDE, STATS_SIDE))
                return np.asarray(image.convert("RGB")), mode
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DlxError(f"upload: {path.name} has too many pixels to open safely (limit {max_pixels:,}); "
                       "refused as a decompression bomb", field="upload") from None
    except UnidentifiedImageError:
        raise _Skip("not an image") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise _Skip(f"does not decode: {err}") from None


def load_image(path: Path, side: int, channels: int, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """One image as float32 (C, side, side) in [0, 1], for training and browsing."""
    with Image.open(path) as image:
        if image.size[0] * image.size[1] > max_pixels:
            raise DlxError(f"dataset: {path.name} has more than {max_pixels:,} pixels", field="dataset")
        image.draft("RGB" if channels == 3 else "L", (side, side))
        image = image.convert("L" if channels == 1 else "RGB").resize((side, side), Image.BILINEAR)
        array = np.asarray(image, dtype=np.float32) / 255.0
    return array[None] if channels == 1 else array.transpose(2, 0, 1)
