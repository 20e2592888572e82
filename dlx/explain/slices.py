"""Where a model's errors live: the predictions as a table with metadata columns (true and predicted class,
a table's categorical columns, a sentence's length bucket), and metrics per slice of any of them, worst
first. Pure functions of the predictions: the Projector's Slices table, and usable from Python."""
from __future__ import annotations

import numpy as np
import pandas as pd

from dlx.data import DatasetMeta
from dlx.errors import DlxError

TRUE, PREDICTED, CORRECT, CONFIDENCE = "true class", "predicted class", "correct", "confidence"
MAX_CATEGORIES = 12  # a table's column with at most this many values in the split is a categorical one
LENGTH_BUCKETS = (0, 5, 10, 20, 40, 80)  # words; the last bucket is open-ended
LENGTH = "length (words)"


def length_bucket(words: int) -> str:
    """The bucket a sentence of `words` words falls in: "1-5", "6-10", ..., "81+"."""
    for low, high in zip(LENGTH_BUCKETS, LENGTH_BUCKETS[1:]):
        if words <= high:
            return f"{low + 1}-{high}"
    return f"{LENGTH_BUCKETS[-1] + 1}+"


def table_columns(x: np.ndarray, meta: DatasetMeta) -> dict[str, np.ndarray]:
    """A table's categorical columns as strings in the data's own units: one-hot blocks ("colour=red", ...)
    joined back into one column, and any feature with at most MAX_CATEGORIES values in these rows."""
    names = list(meta.feature_names) or [f"feature {j}" for j in range(x.shape[1])]
    means, stds = meta.units
    if len(means) == x.shape[1]:
        x = x * np.asarray(stds) + np.asarray(means)
    out: dict[str, np.ndarray] = {}
    blocks: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        if "=" in name:
            blocks.setdefault(name.split("=", 1)[0], []).append(j)
    for column, members in blocks.items():
        values = np.array([names[j].split("=", 1)[1] for j in members], dtype=object)
        out[column] = values[np.argmax(x[:, members], axis=1)] if len(x) else np.array([], dtype=object)
    for j, name in enumerate(names):
        if "=" not in name and len(np.unique(x[:, j])) <= MAX_CATEGORIES:
            out[name] = np.array([f"{v:.4g}" for v in x[:, j]], dtype=object)
    return out


def prediction_frame(indices: np.ndarray, labels: np.ndarray, probs: np.ndarray, meta: DatasetMeta,
                     columns: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """One row per sample (indexed by its index in the split): true and predicted class names, correct,
    confidence, then the metadata `columns` (one value per sample each)."""
    classes = np.asarray(meta.classes, dtype=object)
    predicted = probs.argmax(1)
    frame = pd.DataFrame({TRUE: classes[labels], PREDICTED: classes[predicted], CORRECT: predicted == labels,
                          CONFIDENCE: probs.max(1)}, index=pd.Index(indices, name="sample"))
    for name, values in (columns or {}).items():
        frame[name] = values
    return frame


def metadata_columns(meta: DatasetMeta, split, indices: np.ndarray) -> dict[str, np.ndarray]:
    """The slicing columns a data set has beyond the classes: a table's categorical columns, a text's
    length bucket."""
    if meta.kind == "table":
        return table_columns(split.x[indices.tolist()].double().numpy(), meta)
    if meta.kind == "text":
        return {LENGTH: np.array([length_bucket(len(split.texts[i].split())) for i in indices], dtype=object)}
    return {}


def slice_columns(frame: pd.DataFrame) -> list[str]:
    """The columns a frame can be sliced by: the classes and every metadata column but the confidence."""
    return [c for c in frame.columns if c not in (CORRECT, CONFIDENCE)]


def slice_metrics(frame: pd.DataFrame, by: list[str] | None = None) -> pd.DataFrame:
    """Per slice (a value of one of the `by` columns; default every slicing column): samples, errors,
    accuracy and mean confidence, worst first (lowest accuracy, then the larger slice, then by name)."""
    by = slice_columns(frame) if by is None else by
    unknown = [c for c in by if c not in frame.columns]
    if unknown:
        raise DlxError(f"slices: no column {unknown[0]!r}; choose among {slice_columns(frame)}", field="slices")
    parts = []
    for column in by:
        grouped = frame.groupby(column, observed=True, sort=True)
        part = pd.DataFrame({"samples": grouped.size(), "errors": grouped[CORRECT].apply(lambda c: int((~c).sum())),
                             "accuracy": grouped[CORRECT].mean(), "mean confidence": grouped[CONFIDENCE].mean()})
        part.index = part.index.astype(str)
        parts.append(part.rename_axis("slice").reset_index().assign(column=column))
    columns = ["column", "slice", "samples", "errors", "accuracy", "mean confidence"]
    if not parts:
        return pd.DataFrame(columns=columns)
    table = pd.concat(parts, ignore_index=True)[columns]
    table["samples"] = table["samples"].astype(int)
    table["errors"] = table["errors"].astype(int)
    return table.sort_values(["accuracy", "samples", "column", "slice"], ascending=[True, False, True, True],
                             kind="stable").reset_index(drop=True)


def in_slice(frame: pd.DataFrame, column: str, value: str) -> np.ndarray:
    """(N,) whether each row of the frame is in the slice `column` = `value` (compared as shown, a string)."""
    return (frame[column].astype(str) == value).to_numpy()
