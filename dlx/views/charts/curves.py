"""Plotly figures the pages share: training curves, metric charts, confusion matrices."""
from __future__ import annotations

import copy
import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dlx.store import History
from dlx.views.charts.style import GREY, PALETTE, SHARES, TEST, TRAIN, VAL
from dlx.views.text import plot, shorten, template


class Series(Protocol):
    """What a chart draws: a History, or a live series reduced per bucket (each bucket's last value)."""

    steps: np.ndarray
    values: np.ndarray

    def __len__(self) -> int: ...


@runtime_checkable
class Banded(Protocol):
    """A series reduced per bucket of `width` steps, with each bucket's min and max."""

    steps: np.ndarray
    values: np.ndarray
    low: np.ndarray
    high: np.ndarray
    width: int


# What `curves` draws; every other key a run logs goes to `metrics_figure`.
CURVE_KEYS = ("train_loss", "val_loss", "train_acc", "val_acc", "test_loss", "test_acc")
LINES_PER_CHART = 8  # keys drawn in one metric chart; a bigger group is split over several charts
# A split in front of a name ("val_f1", "train/loss"): keys that differ only by it share a chart.
_SPLIT = re.compile(r"^(train|training|val|valid|validation|eval|test)[_/.]", re.IGNORECASE)


def smooth(values: np.ndarray, weight: float = 0.9) -> np.ndarray:
    """Exponential moving average with bias correction (TensorBoard's smoothing); NaNs pass through.

    pandas' adjusted EWM is exactly that average (sum of weight^age * value over sum of weight^age), in
    compiled code (BENCHMARKS.md, "Runs at scale").
    """
    values = np.asarray(values, dtype=np.float64)
    if not 0 <= weight < 1:
        raise ValueError(f"smoothing weight: must be in [0, 1), got {weight}")
    missing = np.isnan(values)
    if missing.all():
        return values.copy()
    out = np.full(len(values), np.nan)
    out[~missing] = pd.Series(values[~missing]).ewm(alpha=1 - weight, adjust=True).mean().to_numpy()
    return out


def envelope(series: Series) -> tuple[np.ndarray, np.ndarray]:
    """x and y of a line through each bucket's min and max, so a reduced series keeps its spikes;
    a series of single points (bucket width 1, or a plain History) as it is."""
    if not isinstance(series, Banded) or series.width == 1:
        return series.steps, series.values
    return np.repeat(series.steps, 2), np.column_stack([series.low, series.high]).ravel()


XPlacer = Callable[[str, np.ndarray], np.ndarray]  # (key, steps) -> where those points sit on the x axis
SCALE_RATIO = 5  # series whose last steps differ this much are on different scales (per batch, per epoch)


def epoch_of(histories: Mapping[str, Series], steps_per_epoch: int | None = None
             ) -> Callable[[np.ndarray], np.ndarray] | None:
    """steps -> epochs: through the run's `epoch` series (the training loop logs epoch e at its last step;
    a script may log it too), past its last point at `steps_per_epoch` (else the last epoch's pace); from
    `steps_per_epoch` alone without one; None when the run says neither."""
    logged = histories.get("epoch")
    if logged is not None and len(logged):
        xp = np.concatenate([[0.0], np.asarray(logged.steps, dtype=np.float64)])
        fp = np.concatenate([[0.0], np.asarray(logged.values, dtype=np.float64)])
        pace = 1 / steps_per_epoch if steps_per_epoch else (fp[-1] / xp[-1] if xp[-1] else 0.0)

        def place(steps: np.ndarray) -> np.ndarray:
            steps = np.asarray(steps, dtype=np.float64)
            return np.where(steps > xp[-1], fp[-1] + (steps - xp[-1]) * pace, np.interp(steps, xp, fp))
        return place
    if steps_per_epoch:
        return lambda steps: np.asarray(steps, dtype=np.float64) / steps_per_epoch
    return None


def scale_groups(keys: Sequence[str], histories: Mapping[str, Series]) -> list[list[str]]:
    """Keys grouped by the scale of their steps, largest first: a script's per-batch loss (steps 0..110)
    apart from what it logged at step=epoch (1..5). A key with one point joins the largest scale."""
    spans = {key: int(histories[key].steps[-1]) for key in keys if len(histories[key]) > 1}
    clusters: list[list[str]] = []
    top = 0
    for key in sorted(spans, key=lambda k: -spans[k]):
        if not clusters or max(spans[key], 1) * SCALE_RATIO < top:
            clusters.append([])
            top = max(spans[key], 1)
        clusters[-1].append(key)
    singles = [key for key in keys if key not in spans]
    if not clusters:
        return [list(keys)] if keys else []
    clusters[0] += singles
    return [[key for key in keys if key in cluster] for cluster in clusters]


def split_scales(groups: Mapping[str, list[str]], histories: Mapping[str, Series]
                 ) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Each chart's keys split where their step scales differ, never two scales on one axis, and each
    chart's x title: "step" on the run's largest scale; on a smaller one (a script logging at step=epoch)
    "epoch"."""
    keys = [key for members in groups.values() for key in members]
    scale = {key: n for n, cluster in enumerate(scale_groups(keys, histories)) for key in cluster}
    split: dict[str, list[str]] = {}
    titles: dict[str, str] = {}
    for title, members in groups.items():
        parts: dict[int, list[str]] = {}
        for key in members:
            parts.setdefault(scale.get(key, 0), []).append(key)
        for n, part in sorted(parts.items()):
            name = title if len(parts) == 1 or n == min(parts) else f"{title} (per epoch)" if n == 1 \
                else f"{title} (scale {n + 1})"
            split[name], titles[name] = part, "step" if n == 0 else "epoch (the step it was logged at)"
    return split, titles


def mixed_scales(keys: Iterable[str], histories: Mapping[str, Series]) -> bool:
    """Whether the keys' steps are on more than one scale (they cannot share an x axis)."""
    present = [key for key in keys if key in histories and len(histories[key])]
    return len(scale_groups(present, histories)) > 1


def _epochs(steps: np.ndarray, steps_per_epoch: int | None) -> np.ndarray:
    """x positions in epochs when the run says how many steps an epoch has, else in steps."""
    return steps / steps_per_epoch if steps_per_epoch else steps.astype(float)


def curves(histories: Mapping[str, Series], steps_per_epoch: int | None = None, epochs: int | None = None,
           height: int = 340, smoothing: float = 0.9, x_of: XPlacer | None = None,
           x_title: str | None = None) -> go.Figure:
    """Loss (per step, smoothed, and per epoch) beside accuracy (per epoch), test marked at the end.

    The per-step loss is drawn faint through each bucket's min and max where the series is reduced
    (`envelope`), its line EMA-smoothed by `smoothing` (0: raw) through each bucket's last value. With
    `epochs` the x axis spans the whole run, so a live run's curves grow across it. `x_of` places points
    on another x axis (named `x_title`): epochs, wall time. With no points yet the empty axes say so:
    drawing them early means the first points only update a chart.
    """
    place: XPlacer = x_of or (lambda _key, steps: _epochs(steps, steps_per_epoch))
    x_title = x_title or ("epoch" if steps_per_epoch else "step")
    layout = _grid(1, 2, ("Loss", "Accuracy"), horizontal_spacing=0.08)
    traces: list[go.Scatter] = []
    empty = History(np.array([], dtype=np.int64), np.array([]), np.array([]))
    losses = histories.get("train_loss", empty)
    if len(losses):
        raw_x, raw_y = envelope(losses)
        traces.append(go.Scatter(x=place("train_loss", raw_x), y=raw_y, mode="lines",
                                 name="train loss (step)",
                                 line=dict(color=TRAIN, width=1), opacity=0.25, legendgroup="train",
                                 showlegend=False, hovertemplate="%{y:.4f}", **_cell(1)))
        traces.append(go.Scatter(x=place("train_loss", losses.steps),
                                 y=smooth(losses.values, smoothing) if smoothing else losses.values,
                                 mode="lines", name="train",
                                 line=dict(color=TRAIN, width=2), legendgroup="train",
                                 hovertemplate="%{y:.4f}", **_cell(1)))
    for key, name, color, col in (("val_loss", "validation", VAL, 1), ("train_acc", "train", TRAIN, 2),
                                  ("val_acc", "validation", VAL, 2)):
        history = histories.get(key, empty)
        if len(history):
            traces.append(go.Scatter(x=place(key, history.steps), y=history.values,
                                     mode="lines+markers", name=name, legendgroup=name,
                                     showlegend=key == "val_loss" or (key == "train_acc" and not len(losses)),
                                     line=dict(color=color, width=2), marker=dict(size=7),
                                     hovertemplate="%{y:.4f}", **_cell(col)))
    for key, col in (("test_loss", 1), ("test_acc", 2)):
        history = histories.get(key, empty)
        if len(history):
            traces.append(go.Scatter(x=place(key, history.steps), y=history.values,
                                     mode="markers", name="test", legendgroup="test",
                                     showlegend=key == "test_acc",
                                     marker=dict(color=TEST, size=13, symbol="star"),
                                     hovertemplate="test %{y:.4f}", **_cell(col)))
    for axis in _x_axes(layout):
        axis.update(title=dict(text=x_title), rangemode="tozero")
        if x_title == "epoch" and epochs:
            axis["range"] = [0, epochs * 1.02]
    if not traces:
        for col in (1, 2):
            # Plotly.js draws only subplots that have a trace: an empty one keeps the accuracy
            # axes (and their annotation) in place until the first point.
            axes = _cell(col)
            traces.append(go.Scatter(x=[], y=[], hoverinfo="skip", showlegend=False, **axes))
            layout.setdefault("annotations", []).append(dict(
                text="waiting for the first steps", showarrow=False, x=0.5, y=0.5,
                xref=f"{axes['xaxis']} domain", yref=f"{axes['yaxis']} domain", font=dict(size=14, color=GREY)))
    layout["yaxis"]["rangemode"] = "tozero"
    layout["yaxis2"].update(range=[0, 1.02], tickformat=".0%")
    layout.update(height=height, margin=dict(l=10, r=10, t=40, b=10), hovermode="x unified",
                  legend=dict(orientation="h", yanchor="bottom", y=1.08, x=1, xanchor="right"),
                  uirevision="curves")  # keeps zoom while the figure refreshes
    return go.Figure(data=traces, layout=layout)


@functools.lru_cache(maxsize=32)
def _grid_layout(rows: int, cols: int, titles: tuple[str, ...], horizontal_spacing: float | None,
                 vertical_spacing: float | None) -> dict:
    options = {"horizontal_spacing": horizontal_spacing, "vertical_spacing": vertical_spacing}
    layout = make_subplots(rows=rows, cols=cols, subplot_titles=titles,
                           **{k: v for k, v in options.items() if v is not None}).to_dict()["layout"]
    layout.pop("template", None)  # the default one is applied anyway; validating it as a dict is slow
    return layout


def _grid(rows: int, cols: int, titles: Sequence[str], horizontal_spacing: float | None = None,
          vertical_spacing: float | None = None) -> dict:
    """`make_subplots`' layout (axes' domains and anchors, titles as annotations) as a dict to edit.

    A live page draws its figures every second: one `go.Figure(data, layout)` from this dict is about ten
    times cheaper than make_subplots and Plotly's per-property updates (BENCHMARKS.md, "Live run page").
    Subplot k (row-major from 1) has the axes `_cell(k)` names, as make_subplots names them.
    """
    return copy.deepcopy(_grid_layout(rows, cols, tuple(titles), horizontal_spacing, vertical_spacing))


def _x_axes(layout: dict) -> list[dict]:
    """Every subplot's x axis in a `_grid` layout (what `update_xaxes` with no row or column edits)."""
    return [value for name, value in layout.items() if name.startswith("xaxis")]


def _cell(index: int) -> dict[str, str]:
    """The axes of the `index`-th subplot (1-based, row-major) of a `_grid`: x, y for the first, x2, y2 ..."""
    suffix = "" if index == 1 else str(index)
    return {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}


def group_key(key: str) -> str:
    """The chart a metric goes on: its name without a split ('val_f1' -> 'f1'), else its prefix
    before the last '/' ('grad/norm' -> 'grad'), else the key itself."""
    name = _SPLIT.sub("", key, count=1)
    if name != key and name:
        return name
    return key.rpartition("/")[0] or key


def metric_groups(keys: Iterable[str], with_curves: bool = False) -> dict[str, list[str]]:
    """Chart title -> its keys, for every key `curves` does not draw, charts in order of first key.

    'train_f1' and 'val_f1' share the chart 'f1' (compared, as loss and accuracy are), 'grad/norm'
    and 'grad/max' the chart 'grad'; any other key ('loss' from a user's script) gets its own. A group of
    more than LINES_PER_CHART keys (a script's 'layer/0' ... 'layer/999') is split into charts of that many.
    `with_curves`: `curves`' keys too (a script's, drawn here where their scales differ).
    """
    groups: dict[str, list[str]] = {}
    for key in keys:
        if with_curves or key not in CURVE_KEYS:
            groups.setdefault(group_key(key), []).append(key)
    split: dict[str, list[str]] = {}
    for title, members in groups.items():
        if len(members) <= LINES_PER_CHART:
            split[title] = members
            continue
        parts = math.ceil(len(members) / LINES_PER_CHART)
        for part in range(parts):
            split[f"{title} ({part + 1}/{parts})"] = members[part * LINES_PER_CHART:(part + 1) * LINES_PER_CHART]
    return split


def metrics_figure(groups: dict[str, list[str]], histories: Mapping[str, Series], columns: int = 3,
                   row_height: int = 260, x_of: XPlacer | None = None,
                   x_titles: Mapping[str, str] | None = None) -> go.Figure:
    """One small chart per group, in a grid (one figure, so a live page redraws one element).

    Each key is a line over its own steps (through each bucket's min and max where the series is
    reduced), placed by `x_of` on another axis where given; a key logged once is a marker, so a final
    value shows. `x_titles`: each chart's x title (default "step").
    """
    titles = list(groups)
    columns = max(1, min(columns, len(titles)))
    rows = max(1, math.ceil(len(titles) / columns))
    layout = _grid(rows, columns, [plot(shorten(title, 80)) for title in titles], horizontal_spacing=0.06,
                   vertical_spacing=min(0.25, 0.6 / rows))
    traces = []
    for index, keys in enumerate(groups.values()):
        for n, key in enumerate(keys):
            history, color = histories[key], PALETTE[n % len(PALETTE)]  # a key keeps its colour on refresh
            x, y = envelope(history)
            traces.append(go.Scatter(x=x if x_of is None else x_of(key, x), y=y, name=plot(shorten(key, 80)), legendgroup=key,
                                     mode="lines" if len(history) > 1 else "markers",
                                     line=dict(color=color, width=2), marker=dict(color=color, size=8),
                                     showlegend=len(keys) > 1,
                                     hovertemplate=f"{template(shorten(key, 80))} %{{y:.4g}}<extra></extra>",
                                     **_cell(index + 1)))
    for n, title in enumerate(titles):
        layout[f"xaxis{'' if n == 0 else n + 1}"]["title"] = dict(text=(x_titles or {}).get(title, "step"))
    layout.update(height=rows * row_height, margin=dict(l=10, r=10, t=40, b=10), hovermode="x",
                  legend=dict(orientation="h", yanchor="bottom", y=1.04, x=1, xanchor="right"),
                  uirevision="metrics")
    return go.Figure(data=traces, layout=layout)


def confusion_matrix(matrix: Sequence[Sequence[int]], classes: Sequence[str],
                     height: int | None = None) -> go.Figure:
    """Counts as text, colour as each true class's share (rows sum to 1), so small classes show too."""
    counts = np.asarray(matrix, dtype=np.int64)
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    labels = [plot(c) for c in classes]  # a user's class names: ticks and hover show them as text
    fig = go.Figure(go.Heatmap(
        z=share, x=labels, y=labels, text=counts, texttemplate="%{text}", colorscale=SHARES,
        zmin=0, zmax=1, colorbar=dict(title="share", tickformat=".0%"),
        hovertemplate="true %{y}, predicted %{x}: %{text} (%{z:.0%})<extra></extra>"))
    size = height or min(640, 160 + 36 * len(labels))
    fig.update_layout(height=size, margin=dict(l=10, r=10, t=30, b=10),
                      xaxis=dict(title="predicted", type="category", side="bottom"),
                      yaxis=dict(title="true", type="category", autorange="reversed"))
    return fig
