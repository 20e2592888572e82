"""A live run's page reads only what is new and keeps each bucket's min and max (dlx.views.live)."""
from __future__ import annotations

import numpy as np

from dlx.store import default_store
from dlx.tracking import Run
from dlx.views import live
from dlx.views.charts import curves


def _log(run: Run, key: str, steps, values) -> None:
    for step, value in zip(steps, values):
        run.log_metric(key, float(value), int(step))
    run.flush()


def test_a_refresh_reads_only_the_points_after_the_last_step_drawn():
    store = default_store()
    run = Run(store, store.create_run({}, status="running"), flush_size=1000)
    _log(run, "train_loss", range(100), np.linspace(2, 1, 100))
    _log(run, "val_acc", [99], [0.5])
    state = live.LiveRun(store, run.id)
    first = state.refresh()
    assert first["train_loss"].steps.tolist() == list(range(100))
    _log(run, "train_loss", range(100, 110), np.linspace(1, 0.9, 10))
    again = state.refresh()
    assert list(again) == ["train_loss"]  # val_acc did not move: not read
    assert again["train_loss"].steps.tolist() == list(range(100, 110))
    assert state.refresh() == {}
    assert state.get("train_loss").steps.tolist() == list(range(110))  # nothing drawn twice
    run.finish()


def test_a_long_series_stays_a_chart_wide_and_keeps_each_buckets_min_and_max():
    store = default_store()
    rng = np.random.default_rng(0)
    values = rng.normal(size=30_000)
    values[12_345] = 50.0  # a spike in the middle of a bucket
    run = Run(store, store.create_run({}, status="running"), flush_size=5000)
    state = live.LiveRun(store, run.id)
    _log(run, "loss", range(10_000), values[:10_000])
    state.refresh()
    for start in range(10_000, 30_000, 2_500):  # grown by refreshes: buckets fold and widen
        _log(run, "loss", range(start, start + 2_500), values[start:start + 2_500])
        state.refresh()
    series = state.get("loss")
    assert len(series) <= 2 * live.BUCKETS
    buckets = (np.arange(30_000) - series.lo) // series.width
    assert series.steps.tolist() == [int(np.flatnonzero(buckets == b)[-1]) for b in np.unique(buckets)]
    assert np.array_equal(series.low, [values[buckets == b].min() for b in np.unique(buckets)])
    assert np.array_equal(series.high, [values[buckets == b].max() for b in np.unique(buckets)])
    assert np.array_equal(series.values, values[series.steps])
    x, y = curves.envelope(series)  # what the chart draws goes through the spike
    assert 50.0 in y and len(x) == 2 * len(series)
    run.finish()


def test_a_reopened_page_reads_the_same_buckets_in_sql():
    store = default_store()
    values = np.sin(np.arange(20_000) / 300.0)
    run = Run(default_store(), default_store().create_run({}, status="running"), flush_size=5000)
    _log(run, "loss", range(20_000), values)
    series = live.LiveRun(store, run.id)
    series.refresh()
    loaded = series.get("loss")
    reduced = store.reduced_history([run.id], ["loss"], live.BUCKETS)[(run.id, "loss")]
    assert np.array_equal(loaded.high, reduced.max) and np.array_equal(loaded.low, reduced.min)
    assert loaded.tail.steps.tolist() == list(range(20_000 - live.TAIL, 20_000))
    run.finish()


def test_smoothing_is_the_bias_corrected_average_skipping_nans():
    values = np.array([1.0, 3.0, np.nan, 0.0, 2.0])
    kept = values[~np.isnan(values)]
    expected = [sum(0.9 ** (i - j) * kept[j] for j in range(i + 1)) / sum(0.9 ** (i - j) for j in range(i + 1))
                for i in range(len(kept))]
    smoothed = curves.smooth(values)
    assert np.isnan(smoothed[2])
    assert np.allclose(smoothed[~np.isnan(values)], expected)


def test_a_new_run_is_looked_at_often_until_its_first_point_then_each_second():
    assert live.refresh_every(active=True, drawn_any=False, age_s=2.0) == live.FIRST_POINT_EVERY
    assert live.refresh_every(active=True, drawn_any=True, age_s=2.0) == live.LIVE_EVERY
    assert live.refresh_every(active=True, drawn_any=False, age_s=3600.0) == live.LIVE_EVERY  # queued for long
    assert live.refresh_every(active=False, drawn_any=False, age_s=2.0) is None
    assert live.FIRST_POINT_EVERY < live.LIVE_EVERY
