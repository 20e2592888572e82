"""The data set registry: a name maps to a loader that returns seeded train/val/test splits."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Literal

import numpy as np
import torch

from dlx.errors import DlxError

Kind = Literal["image", "table", "text"]


@dataclass(frozen=True)
class DatasetMeta:
    """What pages and models need to know about a data set without loading it twice."""

    name: str
    kind: Kind
    classes: tuple[str, ...]
    input_shape: tuple[int, ...]
    feature_names: tuple[str, ...] = ()
    description: str = ""
    mean: tuple[float, ...] = ()  # per channel (images) or per feature (tables), on train

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass
class Split:
    x: torch.Tensor
    y: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # e.g. ground-truth masks

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class DataBundle:
    meta: DatasetMeta
    train: Split
    val: Split
    test: Split


Loader = Callable[..., DataBundle]


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    kind: Kind
    description: str
    loader: Loader


DATASETS: dict[str, DatasetEntry] = {}


def register_dataset(name: str, kind: Kind, description: str) -> Callable[[Loader], Loader]:
    """Add a loader to the registry; the Launch page lists whatever is registered."""

    def decorate(loader: Loader) -> Loader:
        DATASETS[name] = DatasetEntry(name, kind, description, loader)
        return loader

    return decorate


@lru_cache(maxsize=8)
def load_dataset(name: str, seed: int = 0, val_fraction: float = 0.15,
                 test_fraction: float = 0.2, download: bool = False) -> DataBundle:
    """Load a registered data set (cached per process: pages and explainers ask often)."""
    if name not in DATASETS:
        raise DlxError(f"dataset: unknown data set {name!r}; choose one of {sorted(DATASETS)}",
                       field="dataset")
    return DATASETS[name].loader(seed=seed, val_fraction=val_fraction,
                                 test_fraction=test_fraction, download=download)


def split_arrays(x: np.ndarray, y: np.ndarray, meta: DatasetMeta, seed: int,
                 val_fraction: float, test_fraction: float,
                 extras: dict[str, np.ndarray] | None = None,
                 standardize: bool = False) -> DataBundle:
    """Stratified, seeded train/val/test split; tables are standardized with train statistics."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(y))
    rest, test = train_test_split(index, test_size=test_fraction, random_state=seed, stratify=y)
    val_share = val_fraction / (1.0 - test_fraction)
    train, val = train_test_split(rest, test_size=val_share, random_state=seed, stratify=y[rest])
    x = x.astype(np.float32)
    if standardize:
        mu, sd = x[train].mean(axis=0), x[train].std(axis=0)
        x = (x - mu) / np.where(sd > 0, sd, 1.0)
    mean = x[train].mean(axis=0) if meta.kind == "table" else x[train].mean(axis=(0, *range(2, x.ndim)))
    meta = DatasetMeta(**{**meta.__dict__, "mean": tuple(float(m) for m in np.atleast_1d(mean))})
    extras = extras or {}

    def part(rows: np.ndarray) -> Split:
        return Split(torch.from_numpy(x[rows]), torch.from_numpy(y[rows].astype(np.int64)),
                     {k: torch.from_numpy(v[rows]) for k, v in extras.items()})

    return DataBundle(meta, part(train), part(val), part(test))
