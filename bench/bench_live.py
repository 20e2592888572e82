"""One refresh of a live run's page at 100,000 steps: what `dlx.views.live` reads and draws, against the old
full refetch (every key's whole history, every point plotted raw and smoothed), in the same run.

A run of 100,000 steps (train_loss, lr and samples_per_s per step; val_loss, val_acc, epoch per epoch) is
written through dlx.tracking; between refreshes it logs 100 more steps (a second of a fast run). A refresh
is what the page's fragment does each second apart from Streamlit itself: read the metrics, build the
curves and the other-metrics figures, serialise them to JSON (what Streamlit sends; its size is the bytes).
The old path's smoothing is the vectorised one too; its per-element loop is timed apart (`--loop`).

Target: a refresh under 50 ms and under 100 KB.

Run: python bench/bench_live.py [--steps 100000] [--refreshes 15]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from common import machine, median, report, setup

setup()

from dlx.store import History, default_store  # noqa: E402
from dlx.tracking import Run  # noqa: E402
from dlx.views import live  # noqa: E402
from dlx.views.charts import curves  # noqa: E402

STEPS_PER_EPOCH = 1000
CURVES = ("train_loss", "val_loss", "train_acc", "val_acc", "test_loss", "test_acc", "epoch", "samples_per_s")
EMPTY = History(np.array([], dtype=np.int64), np.array([]), np.array([]))


def log_steps(run: Run, start: int, stop: int) -> None:
    rng = np.random.default_rng(start)
    for step in range(start, stop):
        run.log_metrics({"train_loss": 2.0 / (1 + step / 5000) + 0.1 * rng.random(), "lr": 0.003,
                         "samples_per_s": 8000.0 + rng.random()}, step)
        if (step + 1) % STEPS_PER_EPOCH == 0:
            epoch = (step + 1) // STEPS_PER_EPOCH
            run.log_metrics({"val_loss": 1.0 / epoch, "val_acc": 1 - 0.5 / epoch, "epoch": float(epoch)}, step)
    run.flush()


def figures_json(histories: dict) -> int:
    """Build the page's two figures and serialise them as Streamlit does; their size in bytes."""
    keys = [key for key in histories if len(histories[key])]
    size = len(curves.curves(histories, STEPS_PER_EPOCH, 120).to_json())
    groups = curves.metric_groups(keys)
    if groups:
        size += len(curves.metrics_figure(groups, histories).to_json())
    return size


def old_refresh(run_id: int) -> int:
    store = default_store()
    keys = store.metric_keys(run_id)
    histories = {key: store.metric_history(run_id, key) if key in keys else EMPTY
                 for key in dict.fromkeys([*keys, *CURVES])}
    return figures_json(histories)


def new_refresh(state: live.LiveRun) -> int:
    state.refresh()
    return figures_json({key: state.get(key) for key in dict.fromkeys([*state.keys(), *CURVES])})


def loop_smooth(values: np.ndarray, weight: float = 0.9) -> np.ndarray:
    """The per-element loop `curves.smooth` was, for the figure it is measured against."""
    out = np.empty_like(values, dtype=np.float64)
    average, norm = 0.0, 0.0
    for i, value in enumerate(values):
        if np.isnan(value):
            out[i] = np.nan
            continue
        average = weight * average + (1 - weight) * value
        norm = weight * norm + (1 - weight)
        out[i] = average / norm
    return out


def timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return 1000 * (time.perf_counter() - start), result


def spread(values: list[float]) -> str:
    return f"median {median(values):.1f} ms (min {min(values):.1f}, max {max(values):.1f})"


def main() -> None:
    store = default_store()
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--refreshes", type=int, default=15)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    run = Run(default_store(), default_store().create_run({"dataset": "digits"}, status="running"), flush_size=10_000)
    log_steps(run, 0, args.steps)
    state = live.LiveRun(store, run.id)
    first_ms, first_bytes = timed(lambda: new_refresh(state))
    old_ms, new_ms, old_bytes, new_bytes = [], [], [], []
    step = args.steps
    for _ in range(args.refreshes):  # interleaved: each path sees the same run, 100 steps longer each time
        log_steps(run, step, step + 100)
        step += 100
        ms, size = timed(lambda: old_refresh(run.id))
        old_ms.append(ms)
        old_bytes.append(size)
        ms, size = timed(lambda: new_refresh(state))
        new_ms.append(ms)
        new_bytes.append(size)
    run.finish()
    losses = store.metric_history(run.id, "train_loss").values
    loop_ms = timed(lambda: loop_smooth(losses))[0]
    vector_ms = timed(lambda: curves.smooth(losses))[0]
    report(f"one refresh of a live run's page at {args.steps:,} steps (+100 steps between refreshes), "
           f"{args.refreshes} refreshes each, interleaved", [
               ("old: full refetch, every point", f"{spread(old_ms)}, {median(old_bytes) / 1e3:,.0f} KB"),
               ("dlx.views.live: new points, reduced", f"{spread(new_ms)}, {median(new_bytes) / 1e3:,.0f} KB"),
               ("dlx.views.live: first open of the page", f"{first_ms:.1f} ms, {first_bytes / 1e3:,.0f} KB"),
               ("ratio old / new (medians)", f"{median(old_ms) / median(new_ms):.1f}x time, "
                                             f"{median(old_bytes) / median(new_bytes):.0f}x bytes"),
               ("target < 50 ms and < 100 KB", "met" if median(new_ms) < 50 and median(new_bytes) < 100e3
                else "NOT met"),
               (f"smoothing {len(losses):,} points", f"loop {loop_ms:.0f} ms, vectorised {vector_ms:.1f} ms"),
           ])


if __name__ == "__main__":
    main()
