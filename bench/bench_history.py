"""Reading one 100,000-point metric history: `dlx.store.metric_history` against raw sqlite3.

The store holds more than the history read (other keys of the run, another run), written
through dlx.tracking, so the query has to use the index rather than read the whole table.
Baselines, in the same process and interleaved: raw `sqlite3` fetchall of the same query
(Python tuples, no arrays) and SQLAlchemy Core rows (what a straightforward store would do).

MLflow's `get_metric_history` is measured for real when a python with mlflow is given (its own
venv, see bench/mlflow_peer.py), on a history of the same length; otherwise it is skipped.
Target: under 100 ms.

Run: python bench/bench_history.py [--points 100000] [--repeats 15] [--mlflow-python PATH]
"""
from __future__ import annotations

import argparse
import sqlite3
import time

from common import machine, median, report, setup
from mlflow_peer import SKIPPED, measure, mlflow_python

setup()

from sqlalchemy import select  # noqa: E402

from db.engine import get_engine  # noqa: E402
from db.models import Metric  # noqa: E402
from dlx import settings  # noqa: E402
from dlx.store import default_store  # noqa: E402
from dlx.tracking import Run  # noqa: E402

QUERY = "SELECT step, value, time FROM metrics WHERE run_id = ? AND key = ? ORDER BY step"


def fill(points: int) -> int:
    """Two runs with three keys of `points` points each; returns the run whose history is read."""
    store = default_store()
    for _ in range(2):
        run = Run(store, store.create_run({"dataset": "digits"}, status="running"))
        for step in range(points):
            run.log_metrics({"train_loss": 1.0 / (step + 1), "lr": 0.003, "samples_per_s": 8000.0}, step)
        run.finish()
    return run.id


def core_rows(statement) -> list:
    with get_engine().connect() as connection:
        return connection.execute(statement).all()


def timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return 1000 * (time.perf_counter() - start), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--mlflow-python", help="python of a venv with mlflow installed")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    run_id = fill(args.points)
    raw = sqlite3.connect(settings.database_url().removeprefix("sqlite:///"))
    table = Metric.__table__
    core = (select(table.c.step, table.c.value, table.c.time)
            .where(table.c.run_id == run_id, table.c.key == "train_loss").order_by(table.c.step))

    store = default_store()
    readers = {
        "dlx store.metric_history": lambda: store.metric_history(run_id, "train_loss"),
        "raw sqlite3 fetchall": lambda: raw.execute(QUERY, (run_id, "train_loss")).fetchall(),
        "SQLAlchemy Core rows": lambda: core_rows(core),
    }
    first_ms, history = timed(readers["dlx store.metric_history"])
    assert len(history) == args.points and history.steps[0] == 0 and history.steps[-1] == args.points - 1
    assert len(readers["raw sqlite3 fetchall"]()) == args.points

    times: dict[str, list[float]] = {name: [] for name in readers}
    for repeat in range(args.repeats):
        names = list(readers) if repeat % 2 == 0 else list(reversed(readers))
        for name in names:
            times[name].append(timed(readers[name])[0])
    raw.close()

    ours, baseline = median(times["dlx store.metric_history"]), median(times["raw sqlite3 fetchall"])
    report(f"one metric history of {args.points:,} points (store: 2 runs x 3 keys x {args.points:,}), "
           f"median of {args.repeats} interleaved repeats",
           [*((name, f"{median(values):.1f} ms  ({min(values):.1f}-{max(values):.1f})")
             for name, values in times.items()),
            ("dlx first call", f"{first_ms:.1f} ms"),
            ("dlx / raw fetchall (time)", f"{ours / baseline:.2f}; "
             f"{min(times['dlx store.metric_history']) / min(times['raw sqlite3 fetchall']):.2f}  "
             "(dlx also builds numpy arrays)"),
            ("target", f"under 100 ms: {'met' if ours < 100 else 'NOT met'} by the median, "
             f"{'met' if min(times['dlx store.metric_history']) < 100 else 'NOT met'} by the best")])
    python = mlflow_python(args.mlflow_python)
    if python is None:
        print(SKIPPED)
        return
    peer = measure(python, "history", args.points, max(1, args.repeats // 3))
    report(f"MLflow {peer['version']} get_metric_history of {args.points:,} points (SQLite store)",
           [("MLflow", f"{median(peer['ms']):.0f} ms  ({min(peer['ms']):.0f}-{max(peer['ms']):.0f})"),
            ("MLflow / dlx (medians)", f"{median(peer['ms']) / ours:.0f}x")])


if __name__ == "__main__":
    main()
