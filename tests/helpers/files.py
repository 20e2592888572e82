"""Files users bring: a zip of PNG classes, a table CSV, a text CSV, a folder of PNGs."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image


def png(seed: int, colour: int, side: int = 12) -> bytes:
    """A small PNG: noise around one brightness per class, so classes are learnable."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(rng.normal(colour, 30, (side, side, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def image_zip(path: Path, classes: int = 3, per_class: int = 8, extra: dict[str, bytes] | None = None) -> Path:
    """A zip of `shapes/<class>/<n>.png`, plus any extra entries."""
    with zipfile.ZipFile(path, "w") as handle:
        for c in range(classes):
            for n in range(per_class):
                handle.writestr(f"shapes/class{c}/{n}.png", png(c * 100 + n, 40 + 80 * c))
        for name, data in (extra or {}).items():
            handle.writestr(name, data)
    return path


def table_csv(rows: int = 60) -> bytes:
    """Two informative features (one numeric with gaps, one categorical) and a label."""
    lines = ["size,colour,label"]
    for i in range(rows):
        label = ("small", "large")[i % 2]
        size = "" if i % 10 == 3 else str(1.0 + 5 * (i % 2) + (i % 7) / 10)
        lines.append(f"{size},{('red', 'blue')[i % 2] if i % 5 else 'green'},{label}")
    return ("\n".join(lines) + "\n").encode()


def texts_csv() -> bytes:
    lines = ["review,mood"] + [f'"a {("good", "bad")[i % 2]} film {i}",{("good", "bad")[i % 2]}' for i in range(20)]
    return ("\n".join(lines) + "\n").encode()


def png_folder(root: Path, classes: int, per_class: int, side: int = 8) -> Path:
    """Class folders of small noisy PNGs, one brightness per class."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        folder = root / f"class{c}"
        folder.mkdir(parents=True)
        for n in range(per_class):
            pixels = np.clip(rng.normal(30 + 190 * c / max(1, classes - 1), 25, (side, side)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8), mode="L").save(folder / f"{n}.png")
    return root
