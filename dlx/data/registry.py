"""The data set registry: a name maps to a loader that returns seeded train/val/test splits.

Listing entries and their metadata imports neither torch nor scikit-learn (pages that only list
them stay light, issue 18): the loaders and split functions import them when they run."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from dlx.errors import DlxError

if TYPE_CHECKING:
    import torch

Kind = Literal["image", "table", "text"]
MIN_TRAIN_SHARE = 0.1  # of a data set kept for training, whatever the validation and test fractions


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
    # A standardised table's train mean and std per feature: value in its own units = x * std + mean.
    units: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass
class Split:
    """One split's inputs and labels. Text splits hold their sentences in `texts` and, until a
    model's tokenizer has run (dlx.data.text_tokens.tokenize_split), an empty (N, 0) `x`; then `x`
    is (N, L) int64 token ids, right-padded, with `attention_mask` 1 on real tokens."""

    x: torch.Tensor
    y: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # e.g. ground-truth masks
    texts: tuple[str, ...] = ()  # text sets: the sentences, words separated by single spaces
    attention_mask: torch.Tensor | None = None  # tokenised text: (N, L), 1 on tokens, 0 on padding

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class DataBundle:
    meta: DatasetMeta
    train: Split
    val: Split
    test: Split


Loader = Callable[..., DataBundle]
# The files a data set reads that are not there (absolute paths); empty when it can load.
FilesCheck = Callable[[], list[Path]]


@dataclass(frozen=True)
class DatasetEntry:
    """A registered data set. `shape`, `classes` and `rows`, where given, let a config be checked
    (model size, split sizes) before anything is loaded or queued."""

    name: str
    kind: Kind
    description: str
    loader: Loader
    shape: tuple[int, ...] | None = None  # one sample's input shape
    classes: int | None = None
    rows: int | None = None  # samples split by split_arrays (None: the loader splits its own way)
    missing_files: FilesCheck | None = None  # None: the data ships with a package or is generated


class Registry(dict):
    """The built-in entries, plus those sources add (users' data sets, kept in the database).

    Sources are asked again whenever the registry is read (except for a built-in name), so a data
    set uploaded by the app appears in a worker's job, and a deleted one disappears, with no
    import-time work.
    """

    def __init__(self) -> None:
        super().__init__()
        self.sources: list[Callable[[], dict[str, DatasetEntry]]] = []
        self._added: set[str] = set()

    def refresh(self) -> None:
        fresh: dict[str, DatasetEntry] = {}
        for source in self.sources:
            fresh.update(source())
        for name in self._added - fresh.keys():
            dict.pop(self, name, None)
        added = set()
        for name, entry in fresh.items():
            if not dict.__contains__(self, name) or name in self._added:  # a built-in name always wins
                dict.__setitem__(self, name, entry)
                added.add(name)
        self._added = added

    def _built_in(self, name: object) -> bool:
        """A built-in name always wins over a source's, so looking one up needs no refresh (a
        query): a training run looks its set up several times."""
        return dict.__contains__(self, name) and name not in self._added

    def __contains__(self, name: object) -> bool:
        if not self._built_in(name):
            self.refresh()
        return dict.__contains__(self, name)

    def __getitem__(self, name: str) -> DatasetEntry:
        if not self._built_in(name):
            self.refresh()
        return dict.__getitem__(self, name)

    def __iter__(self):
        self.refresh()
        return iter(list(dict.keys(self)))

    def __len__(self) -> int:
        self.refresh()
        return dict.__len__(self)

    def keys(self):
        self.refresh()
        return dict.keys(self)

    def items(self):
        self.refresh()
        return dict.items(self)

    def values(self):
        self.refresh()
        return dict.values(self)


DATASETS: Registry = Registry()


def register_dataset(name: str, kind: Kind, description: str, shape: tuple[int, ...] | None = None,
                     classes: int | None = None, rows: int | None = None,
                     missing_files: FilesCheck | None = None) -> Callable[[Loader], Loader]:
    """Add a loader to the registry; the Launch page lists whatever is registered.

    `missing_files` lets a data set read from local files say, cheaply and before anything is
    queued, which of them are absent, so the page can mark it and a launch can be refused.
    """

    def decorate(loader: Loader) -> Loader:
        DATASETS[name] = DatasetEntry(name, kind, description, loader, shape, classes, rows, missing_files)
        return loader

    return decorate


def check_split(name: str, val_fraction: float, test_fraction: float) -> None:
    """Refuse fractions that leave a split too small to hold every class, with split_arrays' own
    arithmetic (scikit-learn rounds test and validation sizes up), so the job cannot fail on them."""
    train_share = 1.0 - val_fraction - test_fraction
    if train_share < MIN_TRAIN_SHARE:
        raise DlxError(f"test_fraction: validation ({val_fraction:g}) and test ({test_fraction:g}) "
                       f"fractions leave {max(train_share, 0):.2g} of the data for training; "
                       f"leave at least {MIN_TRAIN_SHARE:g}", field="test_fraction")
    entry = DATASETS[name]
    if entry.rows is None or entry.classes is None:
        return
    n_test = math.ceil(test_fraction * entry.rows)
    rest = entry.rows - n_test
    n_val = math.ceil(val_fraction / (1.0 - test_fraction) * rest)
    sizes = {"test_fraction": ("test", n_test), "val_fraction": ("validation", n_val)}
    for field_name, (split, size) in sizes.items():
        if size < entry.classes:
            raise DlxError(f"{field_name}: {name} has {entry.rows} samples, so this leaves {size} for the "
                           f"{split} split, fewer than its {entry.classes} classes; use a larger fraction",
                           field=field_name)
    if rest - n_val < entry.classes:
        raise DlxError(f"test_fraction: {name} has {entry.rows} samples, so these fractions leave "
                       f"{rest - n_val} for training, fewer than its {entry.classes} classes",
                       field="test_fraction")


def missing_files(name: str) -> list[Path]:
    """The files data set `name` needs and does not find (empty: it can load without a download)."""
    check = DATASETS[name].missing_files
    return check() if check else []


def files_problem(name: str) -> str | None:
    """A sentence naming where data set `name` looked and what was not there, or None."""
    missing = missing_files(name)
    if not missing:
        return None
    folder = missing[0].parent
    names = ", ".join(path.name for path in missing[:4]) + (" …" if len(missing) > 4 else "")
    return (f"{name} files are missing: looked in {folder} for {names}. Put the files there, set "
            "DLX_DATASETS to the folder that holds them, or allow downloading (needs network)")


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
    import torch

    train, val, test = split_indices(y, seed, val_fraction, test_fraction)
    x = x.astype(np.float32)
    units: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())
    if standardize:
        mu, sd = x[train].mean(axis=0), x[train].std(axis=0)
        sd = np.where(sd > 0, sd, 1.0)
        x = (x - mu) / sd
        units = (tuple(float(v) for v in mu), tuple(float(v) for v in sd))
    mean = x[train].mean(axis=0) if meta.kind == "table" else x[train].mean(axis=(0, *range(2, x.ndim)))
    meta = DatasetMeta(**{**meta.__dict__, "mean": tuple(float(m) for m in np.atleast_1d(mean)), "units": units})
    extras = extras or {}

    def part(rows: np.ndarray) -> Split:
        return Split(torch.from_numpy(x[rows]), torch.from_numpy(y[rows].astype(np.int64)),
                     {k: torch.from_numpy(v[rows]) for k, v in extras.items()})

    return DataBundle(meta, part(train), part(val), part(test))


def split_texts(texts: list[str], y: np.ndarray, meta: DatasetMeta, seed: int, val_fraction: float,
                test_fraction: float, extras: dict[str, np.ndarray] | None = None) -> DataBundle:
    """Stratified, seeded train/val/test split of sentences, with split_arrays' arithmetic; each
    split's `x` stays empty until a model's tokenizer fills it."""
    import torch

    train, val, test = split_indices(y, seed, val_fraction, test_fraction)
    extras = extras or {}

    def part(rows: np.ndarray) -> Split:
        return Split(torch.zeros((len(rows), 0), dtype=torch.int64), torch.from_numpy(y[rows].astype(np.int64)),
                     {k: torch.from_numpy(v[rows]) for k, v in extras.items()},
                     texts=tuple(texts[i] for i in rows))

    return DataBundle(meta, part(train), part(val), part(test))


def split_indices(y: np.ndarray, seed: int, val_fraction: float,
                  test_fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded, stratified train/val/test row indices; streamed sets split by the same arithmetic."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(y))
    rest, test = train_test_split(index, test_size=test_fraction, random_state=seed, stratify=y)
    val_share = val_fraction / (1.0 - test_fraction)
    train, val = train_test_split(rest, test_size=val_share, random_state=seed, stratify=y[rest])
    return train, val, test
