"""Image folders read as they train: a torch Dataset that decodes and resizes on the fly.

A set whose decoded tensors fit under `DLX_IN_MEMORY_BYTES` (default 1 GB) is decoded once into
tensors and takes the loop's in-memory fast path; a larger one becomes `FolderSplit`s, read through
a DataLoader with worker processes (pinned memory and prefetch on CUDA). Both normalise with the
set's own mean/std, computed once at import and stored in its row.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from dlx.data.image_folders import load_image
from dlx.data.registry import DataBundle, DatasetMeta, Split, split_indices
from dlx.errors import DlxError
from dlx.store.user_sets import UserSet

DEFAULT_IN_MEMORY = 1024**3


def in_memory_limit() -> int:
    """Decoded bytes up to which a set is held whole in memory (`DLX_IN_MEMORY_BYTES`; 0 streams every set)."""
    raw = os.environ.get("DLX_IN_MEMORY_BYTES", "").strip() or str(DEFAULT_IN_MEMORY)
    if not raw.isdigit():
        raise DlxError(f"DLX_IN_MEMORY_BYTES: expected a whole number of bytes, got {raw!r}",
                       field="DLX_IN_MEMORY_BYTES")
    return int(raw)


def loader_workers() -> int:
    """DataLoader worker processes for streamed sets (`DLX_LOADER_WORKERS`, default half the CPUs, 1 to 8)."""
    raw = os.environ.get("DLX_LOADER_WORKERS", "").strip()
    if not raw:
        return max(1, min(8, (os.cpu_count() or 2) // 2))
    if not raw.isdigit():
        raise DlxError(f"DLX_LOADER_WORKERS: expected a whole number, got {raw!r}", field="DLX_LOADER_WORKERS")
    return int(raw)


class ImageFiles(Dataset):
    """Image files with labels, decoded, resized and normalised per item; flip and crop when augmenting."""

    def __init__(self, files: list[Path], labels: np.ndarray, side: int, channels: int,
                 mean: tuple[float, ...], std: tuple[float, ...], augment: tuple[str, ...] = ()):
        self.files, self.labels = files, labels
        self.side, self.channels, self.augment = side, channels, augment
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = torch.from_numpy(load_image(self.files[index], self.side, self.channels))
        x = (x - self.mean) / self.std
        if "flip" in self.augment and torch.rand(()) < 0.5:
            x = x.flip(-1)
        if "crop" in self.augment:  # pad by an eighth and crop back at a random offset
            pad = max(1, self.side // 8)
            x = torch.nn.functional.pad(x, (pad, pad, pad, pad))
            top, left = torch.randint(0, 2 * pad + 1, (2,)).tolist()
            x = x[:, top:top + self.side, left:left + self.side]
        return x, int(self.labels[index])


@dataclass
class FolderSplit:
    """A split of an image folder read from disk as it trains; the loop asks it for a DataLoader."""

    dataset: ImageFiles
    y: torch.Tensor
    augmented: ImageFiles | None = None  # the training split's augmenting twin
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    _loaders: dict[tuple, DataLoader] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.dataset)

    @cached_property
    def x(self) -> torch.Tensor:
        """The split decoded whole, for readers that want tensors (the Explain page's test samples)."""
        return _decoded(self.dataset).x

    def read(self, indices: list[int]) -> torch.Tensor:
        """Only the samples at `indices`, decoded (the Explain page shows a few of a big split)."""
        if "x" in self.__dict__:  # decoded whole already
            return self.x[indices]
        if not indices:
            return torch.zeros(0, self.dataset.channels, self.dataset.side, self.dataset.side)
        return torch.stack([self.dataset[i][0] for i in indices])

    def loader(self, batch_size: int, device: torch.device, shuffle: bool = False,
               generator: torch.Generator | None = None, workers: int | None = None) -> DataLoader:
        """One DataLoader per way of reading, kept, so its worker processes live across epochs."""
        workers = loader_workers() if workers is None else workers
        key = (batch_size, device.type, shuffle, id(generator), workers)
        if key not in self._loaders:
            self._loaders[key] = self._new_loader(batch_size, device, shuffle, generator, workers)
        return self._loaders[key]

    def _new_loader(self, batch_size: int, device: torch.device, shuffle: bool,
                    generator: torch.Generator | None, workers: int) -> DataLoader:
        return DataLoader(self.augmented if shuffle and self.augmented else self.dataset,
                          batch_size=batch_size, shuffle=shuffle, generator=generator,
                          num_workers=workers, persistent_workers=workers > 0,
                          prefetch_factor=4 if workers else None, pin_memory=device.type == "cuda")


def image_meta(user_set: UserSet) -> DatasetMeta:
    details = user_set.details
    return DatasetMeta(user_set.name, "image", user_set.classes,
                       (details["channels"], details["side"], details["side"]),
                       description=f"your images from {user_set.source}", mean=tuple(details["mean"]))


def labels(user_set: UserSet) -> np.ndarray:
    return np.array([label for _, label in user_set.details["files"]], dtype=np.int64)


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


def load_image_set(user_set: UserSet, seed: int, val_fraction: float, test_fraction: float) -> DataBundle:
    """A user image set's seeded splits: tensors when it fits in memory, FolderSplits when not."""
    details = user_set.details
    meta = image_meta(user_set)
    y = labels(user_set)
    files = image_files(user_set)  # checked to stay inside the registered folder
    parts = split_indices(y, seed, val_fraction, test_fraction)
    side, channels = details["side"], details["channels"]
    mean, std = tuple(details["mean"]), tuple(details["std"])
    augment = tuple(details.get("augment", ()))
    meta = type(meta)(**{**meta.__dict__, "mean": (0.0,) * channels})  # inputs are normalised
    if not augment and len(y) * channels * side * side * 4 <= in_memory_limit():  # augmenting streams
        splits = [_decoded(ImageFiles([files[i] for i in rows], y[rows], side, channels, mean, std))
                  for rows in parts]
        return DataBundle(meta, *splits)

    def folder_split(rows: np.ndarray, train: bool) -> FolderSplit:
        chosen = [files[i] for i in rows]
        plain = ImageFiles(chosen, y[rows], side, channels, mean, std)
        twin = ImageFiles(chosen, y[rows], side, channels, mean, std, augment) if train and augment else None
        return FolderSplit(plain, torch.from_numpy(y[rows]), twin)

    # A FolderSplit stands where DataBundle says Split: its readers (the loop, browse) check for it with
    # isinstance, and registry.py cannot name it without an import circle.
    train, val, test = parts
    return DataBundle(meta, cast(Split, folder_split(train, True)), cast(Split, folder_split(val, False)),
                      cast(Split, folder_split(test, False)))


def _decoded(dataset: ImageFiles) -> Split:
    """Every image of a split decoded once into one tensor (the in-memory fast path)."""
    if len(dataset) == 0:
        return Split(torch.zeros(0, dataset.channels, dataset.side, dataset.side), torch.zeros(0, dtype=torch.int64))
    x = torch.stack([dataset[i][0] for i in range(len(dataset))])
    return Split(x, torch.from_numpy(np.asarray(dataset.labels, dtype=np.int64)))
