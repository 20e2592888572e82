"""A tiny MLP's whole run through dlx, the run's open and close included, against a plain loop doing the same.

The case where dlx's fixed cost shows: an MLP on breast_cancer, 30 epochs (an epoch is a few ms), so the
run's row, its first points, checkpoint files and their index, summary and finish are a visible share.
dlx: `start_run()` ... `train()` ... the run's end (finish: last points, status). The plain loop: the same
model, data, Adam, batch and shuffling, the epoch's train loss/accuracy, validation every epoch and the test at
the end (bench_train.py's "plain loop + evaluation"). Interleaved (alternating order), CPU time of this process
with one torch thread and wall time; the figures are the median of each repeat's paired time ratio and the
ratio of the best times, and the verdict needs both within the target (a loaded machine spreads the pairs by
tens of percent). `--profile` prints where dlx's extra time goes (cProfile of dlx runs).

Run: python bench/bench_small_steps.py [--epochs 30] [--repeats 15] [--profile]
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats

from common import machine, median, report, setup

setup()

import bench_train  # noqa: E402
import torch  # noqa: E402
from bench_train import Timing, plain_loop  # noqa: E402

from dlx.config import parse_config  # noqa: E402
from dlx.tracking import start_run  # noqa: E402
from dlx.training.train import train  # noqa: E402

DATASET, MODEL = "breast_cancer", "mlp"
TARGET = 0.03  # dlx's extra time over the plain loop, the run's open and close included


def dlx_run(epochs: int) -> Timing:
    """A whole dlx run: open, train (tracking, checkpoints, evaluation), close."""
    config = parse_config({"dataset": DATASET, "model": MODEL, "epochs": epochs, "batch_size": bench_train.BATCH,
                           "lr": bench_train.LR, "optimizer": "adam", "schedule": "constant",
                           "seed": bench_train.SEED})
    start = Timing.now()
    with start_run(experiment="bench", config=config.model_dump(), handle_signals=False) as run:
        train(config, run)
    return Timing.now() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--profile", action="store_true", help="print a cProfile of dlx's runs (not timed)")
    args = parser.parse_args()
    bench_train.DATASET, bench_train.MODEL = DATASET, MODEL
    torch.set_num_threads(1)
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.1f}")
    with contextlib.redirect_stdout(io.StringIO()):  # warm up: data cache, allocator, schema
        plain_loop(1, True), dlx_run(1)
    if args.profile:
        profile(args.epochs)
        return
    results: dict[str, list[Timing]] = {"plain": [], "dlx": []}
    for repeat in range(args.repeats):
        for name in (["plain", "dlx"] if repeat % 2 == 0 else ["dlx", "plain"]):
            with contextlib.redirect_stdout(io.StringIO()):
                results[name].append(dlx_run(args.epochs) if name == "dlx" else plain_loop(args.epochs, True))
    rows = []
    for clock in ("cpu", "wall"):
        ratios = [getattr(a, clock) / getattr(b, clock) - 1 for a, b in zip(results["dlx"], results["plain"])]
        plain_ms = median([1000 * getattr(t, clock) for t in results["plain"]])
        dlx_ms = median([1000 * getattr(t, clock) for t in results["dlx"]])
        best = min(getattr(t, clock) for t in results["dlx"]) / min(getattr(t, clock) for t in results["plain"])
        rows.append((f"{clock}: plain loop + evaluation / dlx run (open..close)",
                     f"{plain_ms:.1f} ms / {dlx_ms:.1f} ms; dlx {100 * median(ratios):+.1f}% paired "
                     f"({100 * min(ratios):+.1f}% .. {100 * max(ratios):+.1f}%), {100 * (best - 1):+.1f}% bests"))
    report(f"{MODEL} on {DATASET}, {args.epochs} epochs, 1 torch thread, median of {args.repeats} interleaved "
           f"pairs; load average now {os.getloadavg()[0]:.1f}", rows)
    # Met only where both estimates agree: on a loaded machine the pairs spread by tens of percent either way.
    cpu = median([a.cpu / b.cpu - 1 for a, b in zip(results["dlx"], results["plain"])])
    best = min(t.cpu for t in results["dlx"]) / min(t.cpu for t in results["plain"]) - 1
    verdict = "met" if max(cpu, best) <= TARGET else "NOT met"
    print(f"small steps (dlx run incl. open and close vs plain loop, CPU): {100 * cpu:+.1f}% paired median, "
          f"{100 * best:+.1f}% bests; target <= {100 * TARGET:+.0f}% (both): {verdict}")


def profile(epochs: int) -> None:
    """cProfile of ten dlx runs, the functions with the most cumulative time (the training steps included)."""
    profiler = cProfile.Profile()
    with contextlib.redirect_stdout(io.StringIO()):
        profiler.enable()
        for _ in range(10):
            dlx_run(epochs)
        profiler.disable()
    stats = pstats.Stats(profiler).sort_stats("cumulative")
    stats.print_stats(r"wt/|sqlite|safetensors|json|threading|os\.py|shutil|pathlib", 60)


if __name__ == "__main__":
    main()
