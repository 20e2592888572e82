"""The Projector tab's logic, Streamlit-free: a projector job's result as the table the page colours, slices
and hovers (one row per sample: classes, correct, confidence, metadata columns, the input as hover text)."""
from __future__ import annotations

import html

import numpy as np
import pandas as pd

from dlx.data import DataBundle
from dlx.explain.projector import Projected
from dlx.explain.samples import sample_inputs
from dlx.explain.slices import CONFIDENCE, CORRECT, PREDICTED, TRUE, metadata_columns, prediction_frame

HOVER = "hover"  # the frame's column of hover texts (not a colour or a slice)
HOVER_FEATURES = 8  # a table row's first features shown on hover
HOVER_CHARS = 160  # a sentence's first characters shown on hover
THUMBNAIL = 12  # an image's hover thumbnail: at most this many cells a side
SHADES = ".:-=+*#%@"  # light to dark; ASCII, so 10,000 thumbnails stay small in the page's JSON (no spaces:
# an SVG hover label would collapse them)


def projector_frame(result: Projected, bundle: DataBundle, split: str) -> pd.DataFrame:
    """One row per projected sample, indexed by its index in the split: the prediction frame with the data
    set's metadata columns, and the hover text of its input (a sentence, a table row, an image's place)."""
    e = result.embedded
    data = getattr(bundle, split)
    frame = prediction_frame(e.indices, e.labels, e.probs, bundle.meta,
                             metadata_columns(bundle.meta, data, e.indices))
    frame[HOVER] = hover_texts(frame, bundle, data)
    return frame


def hover_texts(frame: pd.DataFrame, bundle: DataBundle, data) -> list[str]:
    """Per row: its sample, classes and confidence, then the input where text can show it."""
    meta = bundle.meta
    heads = [f"#{i} · true {html.escape(str(t))} · predicted {html.escape(str(p))} ({c:.0%})"
             for i, t, p, c in zip(frame.index, frame[TRUE], frame[PREDICTED], frame[CONFIDENCE])]
    if meta.kind == "text":
        return [f"{head}<br>{_wrap(html.escape(data.texts[i][:HOVER_CHARS]))}" for head, i in zip(heads, frame.index)]
    if meta.kind == "table":
        names = list(meta.feature_names) or [f"feature {j}" for j in range(data.x.shape[1])]
        x = data.x[frame.index.tolist()].double().numpy()
        means, stds = meta.units
        if len(means) == x.shape[1]:
            x = x * np.asarray(stds) + np.asarray(means)
        shown = names[:HOVER_FEATURES]
        more = " …" if len(names) > HOVER_FEATURES else ""
        return [head + "<br>" + "<br>".join(f"{html.escape(n)} = {v:.4g}" for n, v in zip(shown, row)) + more
                for head, row in zip(heads, x)]
    return [f"{head}<br>{art}" for head, art in zip(heads, thumbnails(data, frame.index.to_numpy()))]


def thumbnails(data, indices: np.ndarray, size: int = THUMBNAIL) -> list[str]:
    """Each image as text a hover label can show: averaged down to at most size x size cells, grey, one shade
    character per cell (a hover label draws no pictures; the page shows a clicked sample's picture)."""
    out = []
    for start in range(0, len(indices), 1024):  # numpy, not torch: small arrays, no thread pool to wait on
        x = sample_inputs(data, indices[start:start + 1024].tolist()).float().numpy().mean(1)
        x = _pool(_pool(x, 1, size), 2, size)
        low, high = x.min((1, 2), keepdims=True), x.max((1, 2), keepdims=True)
        levels = np.rint((x - low) / np.maximum(high - low, 1e-12) * (len(SHADES) - 1)).astype(np.intp)
        # As bytes, each row ending in "<br>": one decode per image, not a join per cell.
        cells = np.frombuffer(SHADES.encode(), np.uint8)[levels]
        breaks = np.broadcast_to(np.frombuffer(b"<br>", np.uint8), (*levels.shape[:2], 4))
        rows = np.concatenate([cells, breaks], 2).reshape(len(levels), -1)
        out += [row.tobytes().decode()[:-4] for row in rows]
    return out


def _pool(x: np.ndarray, axis: int, size: int) -> np.ndarray:
    """Means over `size` near-equal, disjoint blocks along an axis; x itself where it is no longer."""
    length = x.shape[axis]
    if length <= size:
        return x
    starts = np.searchsorted((np.arange(length) * size) // length, np.arange(size))
    counts = np.diff(np.append(starts, length))
    shape = [1, 1, 1]
    shape[axis] = size
    return np.add.reduceat(x, starts, axis=axis) / counts.reshape(shape)


def _wrap(text: str, width: int = 60) -> str:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + len(word) > width:
            lines.append(line)
            line = ""
        line = f"{line} {word}".strip()
    return "<br>".join([*lines, line])


def colour_choices(frame: pd.DataFrame) -> list[str]:
    """What the points can be coloured by: the classes, correct or wrong, confidence, metadata columns."""
    return [TRUE, PREDICTED, CORRECT, CONFIDENCE] + [c for c in frame.columns
                                                    if c not in (TRUE, PREDICTED, CORRECT, CONFIDENCE, HOVER)]


def slice_errors(frame: pd.DataFrame, member: np.ndarray) -> pd.DataFrame:
    """The wrong predictions in a slice (rows where `member`), most confident first."""
    wrong = frame[member & ~frame[CORRECT].to_numpy()]
    return wrong.drop(columns=[HOVER, CORRECT]).sort_values(CONFIDENCE, ascending=False, kind="stable")
