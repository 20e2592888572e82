"""Histories reduced in SQL per bucket of steps: equal to a numpy reference, spikes and both end points kept."""
from __future__ import annotations

import math

import numpy as np
import pytest

from dlx.errors import DlxError
from dlx.store import default_store
from dlx.store.reduction import Reduced
from dlx.tracking import Run


def _write(points: list[tuple[int, float]], key: str, run_id: int | None = None, flush_size: int = 97) -> int:
    """Points written in the given order (which decides first and last where a step repeats), in many
    flushes, so blocks are both inserted and merged into."""
    store = default_store()
    run_id = run_id or store.create_run({})
    run = Run(store, run_id, flush_size=flush_size)
    for step, value in points:
        run.log_metric(key, value, step)
    run.flush()
    run._stop.set()
    return run_id


def _reference(points: list[tuple[int, float]], buckets: int, lo: int, hi: int) -> tuple[list[tuple], tuple]:
    """numpy: per bucket (last step, its last-written value, nanmin, nanmax); the first point (first written at the first step)."""
    steps = np.array([s for s, _ in points], dtype=np.int64)
    values = np.array([v for _, v in points], dtype=np.float64)
    order = np.arange(len(points))  # write order
    width = max(1, math.ceil((hi - lo + 1) / buckets))
    if width >= 50:  # whole 50-step blocks: the range widened to block edges, buckets of whole blocks
        lo, hi = lo // 50 * 50, hi // 50 * 50 + 49
        width = math.ceil((hi - lo + 1) // 50 / buckets) * 50
    inside = (steps >= lo) & (steps <= hi)
    steps, values, order = steps[inside], values[inside], order[inside]
    bucket = (steps - lo) // width
    out = []
    for b in np.unique(bucket):
        sel = bucket == b
        s, v, o = steps[sel], values[sel], order[sel]
        at_last = s == s.max()
        last = v[at_last][np.argmax(o[at_last])]
        finite = v[~np.isnan(v)]
        low, high = (finite.min(), finite.max()) if len(finite) else (np.nan, np.nan)
        out.append((s.max(), last, low, high))
    at_first = steps == steps.min()
    return out, (steps.min(), values[at_first][np.argmin(order[at_first])])


def _rows(reduced: Reduced) -> tuple[list[tuple], tuple]:
    return list(zip(reduced.steps, reduced.last, reduced.min, reduced.max)), (reduced.first_step, reduced.first)


def _same(actual: tuple[list[tuple], tuple], expected: tuple[list[tuple], tuple]) -> None:
    (buckets, first), (want_buckets, want_first) = actual, expected
    np.testing.assert_array_equal(np.array(first, dtype=np.float64), np.array(want_first, dtype=np.float64))
    assert len(buckets) == len(want_buckets)
    for got, want in zip(buckets, want_buckets):
        np.testing.assert_array_equal(np.array(got, dtype=np.float64), np.array(want, dtype=np.float64))


@pytest.mark.parametrize("seed, buckets", [(0, 7), (1, 100), (2, 1), (3, 5000), (4, 30)])
def test_reduction_equals_numpy_on_random_data(seed, buckets):
    """Random steps with gaps and repeats, written out of order, NaNs and a spike: every bucket equal."""
    rng = np.random.default_rng(seed)
    steps = np.sort(rng.choice(np.arange(-50, 3000), size=2000, replace=True))  # repeats and gaps
    values = rng.normal(size=len(steps))
    values[rng.choice(len(values), 50, replace=False)] = np.nan
    values[rng.integers(len(values))] = 1e6  # a spike one bucket must keep
    points = [(int(s), float(v)) for s, v in zip(steps, values)]
    rng.shuffle(points)
    run_id = _write(points, "loss")
    reduced = default_store().reduced_history([run_id], ["loss"], buckets)[(run_id, "loss")]
    _same(_rows(reduced), _reference(points, buckets, int(steps.min()), int(steps.max())))
    assert np.nanmax(reduced.max) == 1e6
    assert reduced.first_step == steps.min() and reduced.steps[-1] == steps.max()
    assert len(reduced) <= buckets


def test_series_share_buckets_and_a_zoom_reduces_only_the_visible_range():
    store = default_store()
    rng = np.random.default_rng(7)
    a = [(s, float(v)) for s, v in enumerate(rng.normal(size=1000))]
    b = [(s, float(v)) for s, v in zip(range(500, 3000, 3), rng.normal(size=834))]
    run_a, run_b = _write(a, "acc"), _write(b, "acc")
    _write([(s, 1.0) for s in range(10)], "other", run_a)
    both = store.reduced_history([run_a, run_b], ["acc", "missing"], 30)
    assert set(both) == {(run_a, "acc"), (run_a, "missing"), (run_b, "acc"), (run_b, "missing")}
    assert len(both[(run_a, "missing")]) == 0
    _same(_rows(both[(run_a, "acc")]), _reference(a, 30, 0, 2999))  # one step range for every series
    _same(_rows(both[(run_b, "acc")]), _reference(b, 30, 0, 2999))
    zoom = store.reduced_history([run_a, run_b], ["acc"], 50, step_range=(400, 700))  # from the points
    _same(_rows(zoom[(run_a, "acc")]), _reference(a, 50, 400, 700))
    _same(_rows(zoom[(run_b, "acc")]), _reference(b, 50, 400, 700))
    assert zoom[(run_a, "acc")].first_step == 400 and zoom[(run_a, "acc")].steps[-1] == 700
    wide = store.reduced_history([run_a, run_b], ["acc"], 4, step_range=(420, 2690))  # from blocks, widened
    _same(_rows(wide[(run_a, "acc")]), _reference(a, 4, 420, 2690))
    _same(_rows(wide[(run_b, "acc")]), _reference(b, 4, 420, 2690))
    assert wide[(run_a, "acc")].first_step == 400 and wide[(run_b, "acc")].steps[-1] == 2699


def test_all_nan_bucket_and_bad_bucket_count():
    store = default_store()
    run_id = _write([(0, float("nan")), (1, float("nan")), (2, 3.0)], "x")
    reduced = store.reduced_history([run_id], ["x"], 2)[(run_id, "x")]
    assert list(reduced.steps) == [1, 2]
    assert np.isnan(reduced.min[0]) and np.isnan(reduced.last[0]) and np.isnan(reduced.first) and reduced.last[1] == 3.0
    with pytest.raises(DlxError, match="buckets: must be 1 or more"):
        store.reduced_history([run_id], ["x"], 0)
