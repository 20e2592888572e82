"""A generated image data set with a known answer: a small pattern on noise decides the class.

Each 1×16×16 image is noise with one 3×3 pattern (plus, cross, ell or tee: five bright pixels
each, so brightness alone never tells them apart) at a random place. The ground-truth mask (the
pattern's 3×3 box) ships in `Split.extras["mask"]`, so attribution methods can be scored on
whether they point at the pattern.
"""
from __future__ import annotations

import numpy as np

from dlx.data.registry import DataBundle, DatasetMeta, register_dataset, split_arrays

SIDE = 16
PER_CLASS = 500
PATTERNS = {
    "plus": [".#.", "###", ".#."],
    "cross": ["#.#", ".#.", "#.#"],
    "ell": ["#..", "#..", "###"],
    "tee": ["###", ".#.", ".#."],
}


def generate(seed: int, per_class: int = PER_CLASS, side: int = SIDE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images (N,1,side,side) in [0,1], labels (N,) and masks (N,side,side) of the pattern's box."""
    rng = np.random.default_rng(seed)
    stamps = np.array([[[c == "#" for c in row] for row in rows] for rows in PATTERNS.values()])
    k = stamps.shape[1]
    n = per_class * len(PATTERNS)
    labels = np.repeat(np.arange(len(PATTERNS)), per_class)
    images = np.clip(rng.normal(0.3, 0.12, size=(n, side, side)), 0.0, 1.0)
    masks = np.zeros((n, side, side), dtype=bool)
    rows, cols = rng.integers(0, side - k + 1, size=(2, n))
    brightness = rng.uniform(0.85, 1.0, size=n)
    for i in range(n):
        window = (slice(rows[i], rows[i] + k), slice(cols[i], cols[i] + k))
        images[i][window] = np.where(stamps[labels[i]], brightness[i], images[i][window])
        masks[i][window] = True
    return images[:, None].astype(np.float32), labels, masks


@register_dataset("patterns", "image",
                  "generated: a 3×3 pattern at a random place on noise decides the class; "
                  "ships its ground-truth mask (1×16×16, 4 classes, 2,000 images)",
                  shape=(1, SIDE, SIDE), classes=len(PATTERNS), rows=PER_CLASS * len(PATTERNS))
def patterns(seed: int, val_fraction: float, test_fraction: float, download: bool = False) -> DataBundle:
    images, labels, masks = generate(seed)
    meta = DatasetMeta("patterns", "image", tuple(PATTERNS), (1, SIDE, SIDE),
                       description="known-answer patterns on noise, with masks")
    return split_arrays(images, labels, meta, seed, val_fraction, test_fraction, extras={"mask": masks})
