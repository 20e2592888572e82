"""MNIST, FashionMNIST and CIFAR-10 through torchvision's own loaders, from a local root.

torch and torchvision are imported by the loader only: the Launch page lists these entries and
checks their files without them (issue 18)."""
from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np

from dlx import settings
from dlx.data.registry import DataBundle, DatasetMeta, Split, register_dataset
from dlx.errors import DlxError


def _load(name: str, cls_name: str, seed: int, val_fraction: float, download: bool) -> DataBundle:
    import torch
    import torchvision

    cls = getattr(torchvision.datasets, cls_name)
    root = settings.datasets_root()
    try:
        train = cls(str(root), train=True, download=download)
        test = cls(str(root), train=False, download=download)
    except RuntimeError as err:  # torchvision says "Dataset not found" when files are missing
        raise DlxError(
            f"dataset: {name} files were not found under {root} ({err}). Put the files there, "
            "set DLX_DATASETS to where they are, or allow downloading (needs network).",
            field="dataset") from err
    except OSError as err:  # the download itself failed: no network
        raise DlxError(f"dataset: downloading {name} failed ({err}); this machine may be offline.",
                       field="dataset") from err

    def tensors(ds) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.as_tensor(np.asarray(ds.data))
        x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
        return x.float().div_(255.0), torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)

    x, y = tensors(train)
    xt, yt = tensors(test)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_val = int(len(y) * val_fraction)
    val_idx, train_idx = order[:n_val], order[n_val:]
    mean = x[train_idx].mean(dim=(0, 2, 3))
    meta = DatasetMeta(name, "image", tuple(str(c) for c in train.classes), tuple(x.shape[1:]),
                       description=f"torchvision {cls_name}", mean=tuple(mean.tolist()))
    return DataBundle(meta, Split(x[train_idx], y[train_idx]), Split(x[val_idx], y[val_idx]),
                      Split(xt, yt))


# The files torchvision's classes read under the data set root (MNIST's `resources` without .gz,
# CIFAR's `base_folder` and lists), written out so checking them needs no torchvision;
# tests/views/test_launch.py checks they are still what the classes say.
_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                "t10k-labels-idx1-ubyte")
FILES: dict[str, tuple[str, tuple[str, ...]]] = {
    "MNIST": ("MNIST/raw", _MNIST_FILES),
    "FashionMNIST": ("FashionMNIST/raw", _MNIST_FILES),
    "CIFAR10": ("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)),
}


def _missing(cls_name: str) -> list[Path]:
    """The files torchvision's class reads under the data set root that are absent."""
    folder, names = FILES[cls_name]
    folder_path = settings.datasets_root().absolute() / folder
    return [folder_path / name for name in names if not (folder_path / name).is_file()]


for _name, _cls, _text, _shape in [
    ("mnist", "MNIST", "torchvision MNIST, 1×28×28, 10 classes (local files)", (1, 28, 28)),
    ("fashion_mnist", "FashionMNIST", "torchvision FashionMNIST, 1×28×28, 10 classes (local files)",
     (1, 28, 28)),
    ("cifar10", "CIFAR10", "torchvision CIFAR-10, 3×32×32, 10 classes (local files)", (3, 32, 32)),
]:
    def _loader(seed, val_fraction, test_fraction, download=False, _n=_name, _c=_cls):
        return _load(_n, _c, seed, val_fraction, download)

    register_dataset(_name, "image", _text, shape=_shape, classes=10,
                     missing_files=partial(_missing, _cls))(_loader)
