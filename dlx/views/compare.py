"""Comparing a set of runs: which parameters differ, one colour per run, the keys they share, x axes, groups.

Plain data for the Compare page and its charts (dlx/views/charts/compare.py); no Streamlit here.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import numpy as np

from dlx.errors import DlxError
from dlx.store import RunInfo, Store, decode_param, points
from dlx.store.reduction import Reduced
from dlx.views.charts.curves import epoch_of
from dlx.views.charts.style import RUN_PALETTE

PALETTE = RUN_PALETTE


def run_colors(run_ids: Sequence[int]) -> dict[int, str]:
    """A colour per run, the same in every chart of a page: by its id where that gives every run its own
    colour (ten consecutive runs always do), so a run keeps its colour on the Runs and Compare pages and
    while new runs appear; else by its position in the selection, so no two runs share one (up to ten)."""
    by_id = {run_id: PALETTE[run_id % len(PALETTE)] for run_id in run_ids}
    if len(set(by_id.values())) == len(set(run_ids)):
        return by_id
    return {run_id: PALETTE[i % len(PALETTE)] for i, run_id in enumerate(run_ids)}


def param_table(runs: Sequence[RunInfo]) -> tuple[list[str], dict[str, list[Any]]]:
    """Every parameter's decoded values per run (None where a run lacks it), and the keys whose values
    differ between the runs, which is what a comparison is about."""
    keys = sorted({key for run in runs for key in run.params})
    table = {key: [decode_param(run.params[key]) if key in run.params else None for run in runs] for key in keys}
    differing = [key for key, values in table.items() if len({repr(v) for v in values}) > 1]
    return differing, table


def shared_metric_keys(store: Store, run_ids: Sequence[int]) -> list[str]:
    """Metric keys logged by any of the runs (from their summary rows: no history read), most common first."""
    counts = metric_counts(store, run_ids)
    return sorted(counts, key=lambda k: (-counts[k], k))


def metric_counts(store: Store, run_ids: Sequence[int]) -> dict[str, int]:
    """Each metric key the runs log, with how many of them log it (from their summary rows)."""
    counts: dict[str, int] = {}
    for key in points.summary_keys(store, run_ids) if run_ids else ():
        counts[key] = counts.get(key, 0) + 1
    return counts


def numeric(values: Sequence[Any]) -> bool:
    """Whether a parameter's values can sit on a numeric axis (bools and text cannot)."""
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)


DECADES = 2  # a positive parameter spread over this many powers of ten (lr 1e-4 .. 1e-2) is drawn on a log axis


def spans_decades(values: Sequence[Any]) -> bool:
    """Whether a numeric parameter's values are all positive and spread over DECADES powers of ten or more."""
    if not numeric(values):
        return False
    present = [float(v) for v in values if v is not None]
    return min(present) > 0 and np.log10(max(present) / min(present)) >= DECADES


def by_variation(differing: Sequence[str], table: dict[str, list[Any]]) -> list[str]:
    """The differing parameters, those with two or more values among the runs that have them first (what a
    sweep varied), then those only some runs have (mixed script and launched runs), each by how many have it."""
    def order(key: str) -> tuple[int, int, str]:
        present = [repr(v) for v in table[key] if v is not None]
        return (0 if len(set(present)) > 1 else 1, -len(present), key)
    return sorted(differing, key=order)


def default_metric(store: Store, run_ids: Sequence[int]) -> str | None:
    """The metric a comparison opens on: among those most of the runs log, accuracy or loss first."""
    counts = metric_counts(store, run_ids)
    if not counts:
        return None
    most = max(counts.values())
    common = [key for key in counts if counts[key] == most]
    preferred = [key for key in GLANCE_KEYS if key in common]
    return (preferred or sorted(common))[0]


X_AXES = ("step", "epoch", "wall time")
# What the training loop logs once per epoch (at the epoch's last step): drawn against epochs by default.
EPOCH_KEYS = ("val_acc", "val_loss", "train_acc", "train_loss_epoch", "test_acc", "test_loss", "epoch")


def default_x(store: Store, run_ids: Sequence[int], metric: str) -> str:
    """The x axis a comparison opens on: epochs for a metric logged once per epoch where every run records
    its epochs (the `epoch` series the loop logs, or a script's); else steps, as logged."""
    if metric in EPOCH_KEYS and run_ids and metric_counts(store, run_ids).get("epoch") == len(run_ids):
        return "epoch"
    return "step"


def x_positions(store: Store, run: RunInfo, key: str, steps: np.ndarray, axis: str) -> np.ndarray | None:
    """Where a run's points at `steps` sit on the chosen x axis: the step, the epoch (steps over the run's
    steps per epoch, else through the `epoch` series a script logged) or seconds since the series' first point (read from the points at those steps only:
    a reduced chart never fetches the whole history). None where the run cannot say (no epochs logged)."""
    steps = np.asarray(steps, dtype=np.int64)
    if axis == "step":
        return steps.astype(np.float64)
    if axis == "epoch":
        per_epoch = run.summary.get("steps_per_epoch")
        if per_epoch:
            return steps / float(per_epoch)
        to_epochs = epoch_of({"epoch": store.metric_history(run.id, "epoch")})  # a script that logs `epoch`
        return None if to_epochs is None else to_epochs(steps)
    if axis != "wall time":
        raise DlxError(f"x: must be one of {', '.join(X_AXES)}, got {axis!r}", field="x")
    first, times = points.step_times(store, run.id, key, sorted({int(s) for s in steps}))
    if first is None:
        return None
    return np.array([times.get(int(s), np.nan) - first for s in steps], dtype=np.float64)


def seconds_since_start(store: Store, run: RunInfo, key: str, steps: np.ndarray) -> np.ndarray:
    """A run's points at `steps` as seconds since it started (else since the key's first point), read at
    those steps only; NaN where a step has no point. Every key of a run shares that origin."""
    first, times = points.step_times(store, run.id, key, sorted({int(s) for s in steps}))
    origin = run.started_at.replace(tzinfo=UTC).timestamp() if run.started_at else first
    if origin is None:
        return np.full(len(steps), np.nan)
    return np.array([times.get(int(s), np.nan) - origin for s in steps], dtype=np.float64)


@dataclass
class GroupCurve:
    """A group of runs' curves on one step grid: their mean, and the lowest and highest run at each step."""

    steps: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    runs: int


def group_curves(series: dict[int, Reduced], groups: dict[str, list[int]]) -> dict[str, GroupCurve]:
    """A sweep's curves grouped by a parameter's value: each run's bucket values interpolated onto the
    group's common steps (only where the run has reached them), then mean, min and max across the runs."""
    out = {}
    for name, run_ids in groups.items():
        curves = [series[r] for r in run_ids if r in series and len(series[r])]
        if not curves:
            continue
        steps = np.unique(np.concatenate([c.steps for c in curves]))
        stacked = np.vstack([np.where((steps >= c.steps[0]) & (steps <= c.steps[-1]),
                                      np.interp(steps, c.steps, c.last), np.nan) for c in curves])
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a step no run reached: NaN, not a warning
            out[name] = GroupCurve(steps, np.nanmean(stacked, axis=0), np.nanmin(stacked, axis=0),
                                   np.nanmax(stacked, axis=0), len(curves))
    return out


def groups_by(runs: Sequence[RunInfo], param: str) -> dict[str, list[int]]:
    """Run ids by their value of a parameter ("(none)" for runs without it, last): numbers in increasing order
    (lr=0.0001, lr=0.001, lr=0.01: a log scale's order), anything else in the runs' order."""
    values = {run.id: decode_param(run.params[param]) if param in run.params else None for run in runs}
    ordered = runs
    if numeric(list(values.values())):
        ordered = sorted(runs, key=lambda run: (values[run.id] is None, values[run.id] or 0))
    groups: dict[str, list[int]] = {}
    for run in ordered:
        value = values[run.id]
        name = f"{param}=(none)" if value is None else f"{param}={value:g}" if isinstance(value, float) \
            else f"{param}={value}"
        groups.setdefault(name, []).append(run.id)
    return groups


GLANCE_KEYS = ("val_acc", "train_loss", "val_loss", "train_acc")


def glance_keys(store: Store, run_ids: Sequence[int], count: int | None = 2) -> list[str]:
    """The metrics a glance at runs shows: accuracy and loss where trained here, else a script's most
    logged (`count` None: every key in that order, for a chooser whose first is the default)."""
    keys = shared_metric_keys(store, run_ids)
    preferred = [key for key in GLANCE_KEYS if key in keys]
    return (preferred + [key for key in keys if key not in preferred])[:count]


def parse_zoom(text: str) -> tuple[int, int] | None:
    """A step range from the URL's `zoom=LO-HI` (None when absent or malformed: the whole history)."""
    lo, sep, hi = text.partition("-")
    if not sep or not (lo.isascii() and lo.isdigit() and hi.isascii() and hi.isdigit()) or int(hi) <= int(lo):
        return None
    return int(lo), int(hi)


def zoom_from_box(boxes: Sequence[dict[str, Any]]) -> tuple[int, int] | None:
    """The step range a box drawn over a step-axis chart covers, widened to whole steps; None for no box.

    Plotly's own zoom only stretches the points already sent; a box selection asks the database again
    for the boxed range, reduced to the chart's width, so the zoomed view keeps full fidelity.
    """
    for box in boxes:
        xs = [x for x in box.get("x", ()) if isinstance(x, (int, float)) and np.isfinite(x)]
        if len(xs) >= 2:
            lo, hi = int(np.floor(min(xs))), int(np.ceil(max(xs)))
            if hi > lo:
                return max(lo, 0), hi
    return None

