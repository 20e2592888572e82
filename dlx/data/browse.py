"""What the Data page shows of any data set, built-in or a user's: splits, class balance, samples,
feature statistics, and a trained run's mistakes per class. Plain data, no Streamlit."""
from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from dlx.data import csv_cells
from dlx.data.registry import DataBundle
from dlx.data.tables import Column
from dlx.data.user_sets import list_user_sets
from dlx.store import Store

if TYPE_CHECKING:
    import torch

SPLITS = ("train", "val", "test")


def user_sets_table(store: Store) -> pd.DataFrame:
    """One row per user data set, for the list with its delete button."""
    rows = [{"name": u.name, "kind": u.kind, "source": u.source, "samples": u.rows,
             "classes": len(u.classes), "MB": round(u.size_bytes / 2**20, 2), "checksum": u.checksum[:12],
             "created": u.created_at, "files": "kept by dlx" if u.owned else f"read from {u.path}"}
            for u in list_user_sets(store)]
    return pd.DataFrame(rows, columns=["name", "kind", "source", "samples", "classes", "MB", "checksum",
                                       "created", "files"])


def class_balance(bundle: DataBundle) -> pd.DataFrame:
    """Samples per class in each split of the seeded split (rows: classes, columns: splits)."""
    counts = {split: np.bincount(_labels(getattr(bundle, split)), minlength=bundle.meta.num_classes)
              for split in SPLITS}
    return pd.DataFrame(counts, index=list(bundle.meta.classes))


def sample_grid(bundle: DataBundle, per_class: int = 6) -> dict[str, list[np.ndarray]]:
    """Up to `per_class` training images of each class, as (H, W) or (H, W, 3) floats in [0, 1] for display."""
    split = bundle.train
    labels = _labels(split)
    grid: dict[str, list[np.ndarray]] = {}
    for index, name in enumerate(bundle.meta.classes):
        chosen = np.flatnonzero(labels == index)[:per_class]
        grid[name] = [displayable(_image(split, int(i))) for i in chosen]
    return grid


def own_units(bundle: DataBundle) -> np.ndarray:
    """Every split's features in the data's own units (a standardised table's inputs scaled back), float64."""
    import torch  # here, not above: the Data page imports this module before any set is chosen

    x = torch.cat([bundle.train.x, bundle.val.x, bundle.test.x]).double().numpy()
    mean, std = bundle.meta.units
    return x * np.asarray(std) + np.asarray(mean) if mean else x


def feature_stats(bundle: DataBundle) -> pd.DataFrame:
    """Per-feature mean, std, min and max over all splits, in the data's own units (not as the model sees
    them: `standardised` says whether it sees each feature scaled to train mean 0, std 1)."""
    x = own_units(bundle)
    names = list(bundle.meta.feature_names) or [f"feature {i}" for i in range(x.shape[1])]
    return pd.DataFrame({"mean": x.mean(0), "std": x.std(0), "min": x.min(0), "max": x.max(0)}, index=names)


def standardised(bundle: DataBundle) -> bool:
    """Whether the model sees this table's features standardised (train mean 0, std 1)."""
    return bool(bundle.meta.units[0])


def feature_values(bundle: DataBundle, feature: int) -> np.ndarray:
    """One feature's values over all splits, in its own units, for its distribution."""
    return own_units(bundle)[:, feature]


def column_choices(store: Store, name: str) -> list[str]:
    """For a user table: what was done to each column (encoding, imputation), in words."""
    user_set = next((u for u in list_user_sets(store) if u.name == name), None)
    if user_set is None or user_set.kind != "table":
        return []
    return [Column(**column).describe() for column in user_set.details["columns"]]


def mistakes_per_class(store: Store, name: str) -> tuple[int, pd.DataFrame] | None:
    """The newest succeeded run on data set `name`: its id and test mistakes per true class, or None."""
    runs = store.list_runs(status=["succeeded"], dataset=name, limit=1)
    if not runs or "confusion_matrix" not in runs[0].summary:
        return None
    confusion = np.array(runs[0].summary["confusion_matrix"])
    classes = runs[0].summary.get("classes") or [str(i) for i in range(len(confusion))]
    wrong = confusion.sum(1) - np.diag(confusion)
    most = [classes[int(np.argmax(np.where(np.arange(len(row)) == i, -1, row)))] if wrong[i] else ""
            for i, row in enumerate(confusion)]
    frame = pd.DataFrame({"test samples": confusion.sum(1), "mistakes": wrong, "most often taken for": most},
                         index=classes)
    return runs[0].id, frame


def _labels(split) -> np.ndarray:
    return split.y.cpu().numpy().astype(np.int64)


def _image(split, index: int) -> torch.Tensor:
    from dlx.data.streaming import FolderSplit  # torch: imported once a set is chosen

    if isinstance(split, FolderSplit):
        return split.dataset[index][0]
    return split.x[index]


def displayable(x: torch.Tensor) -> np.ndarray:
    """Stretched to [0, 1] (inputs may be normalised); channels last, grey as 2-D."""
    x = x.float()
    low, high = x.min(), x.max()
    x = (x - low) / (high - low) if high > low else x * 0
    array = x.cpu().numpy()
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


def histogram(values: np.ndarray, bins: int = 20) -> pd.DataFrame:
    """Counts per bin, indexed by the bin's centre rounded to what the bin width tells apart (-1.76,
    not -1.75800001621), for a bar chart."""
    counts, edges = np.histogram(np.asarray(values, dtype=np.float64), bins=bins)
    width = float(edges[1] - edges[0]) or 1.0
    digits = max(0, 1 - math.floor(math.log10(abs(width))))
    return pd.DataFrame({"count": counts}, index=pd.Index(np.round((edges[:-1] + edges[1:]) / 2, digits),
                                                          name="value"))


def example_texts(bundle: DataBundle, per_class: int = 3) -> pd.DataFrame:
    """A few training texts of each class with their lengths in words."""
    split = bundle.train
    labels = _labels(split)
    rows = [{"class": name, "words": len(split.texts[i].split()), "text": split.texts[i]}
            for index, name in enumerate(bundle.meta.classes)
            for i in np.flatnonzero(labels == index)[:per_class]]
    return pd.DataFrame(rows, columns=["class", "words", "text"])


def to_csv(frame: pd.DataFrame) -> str:
    """A browsed table as CSV, its text cells safe to open in a spreadsheet (dlx.data.csv_cells); the index
    (class names) kept as the first column when it has meaning."""
    buffer = io.StringIO()
    writer = csv_cells.writer(buffer)
    keep_index = not isinstance(frame.index, pd.RangeIndex)
    writer.writerow(([frame.index.name or ""] if keep_index else []) + [str(c) for c in frame.columns])
    for index, row in zip(frame.index, frame.itertuples(index=False)):
        writer.writerow(([index] if keep_index else []) + list(row))
    return buffer.getvalue()
