"""Metric ingest through dlx.tracking against raw sqlite3 writing the same rows, two ways.

Both write into fresh databases built by dlx's migrations (same schema, same covering index,
same pragmas: WAL, synchronous=NORMAL, foreign keys on), interleaved, several times.
The raw baselines get their rows prebuilt and write them in one transaction: `executemany` of a
one-row INSERT, and INSERTs of 180 rows each (`VALUES (...), (...), ...`, as dlx writes on SQLite
since its executemany, stepping once per row, handed the GIL to the training thread at every
row): the ceiling.
dlx is timed from the first `log_metrics` call to the end of `finish()` (every point on disk).

MLflow's `log_batch` is measured for real when a python with mlflow is given (its own venv, see
bench/mlflow_peer.py), on the same points; otherwise it is skipped with a message.
Target (issue 30): dlx at least 0.9x raw executemany (medians).

Run: python bench/bench_ingest.py [--points 200000] [--repeats 5] [--mlflow-python PATH]
"""
from __future__ import annotations

import argparse
import sqlite3
import time

from common import machine, median, report, setup
from mlflow_peer import SKIPPED, measure, mlflow_python

home = setup()

from dlx.store import Store  # noqa: E402
from dlx.tracking import Run  # noqa: E402

KEYS = ("train_loss", "lr", "samples_per_s")
ROWS_PER_STATEMENT = 180  # dlx.store.bulk's chunk for the metrics table's five columns


def fresh_database(name: str) -> tuple[Store, int]:
    """A new SQLite file at the latest schema revision with one running run; (its store, run id)."""
    store = Store(f"sqlite:///{home / name}.sqlite")
    return store, store.create_run({"dataset": "digits"}, status="running")


def through_dlx(steps: int, name: str) -> tuple[float, float]:
    """(points/s end to end, microseconds per point spent in the logging calls)."""
    store, run_id = fresh_database(name)
    run = Run(store, run_id)
    start = time.perf_counter()
    for step in range(steps):
        value = 1.0 / (step + 1)
        run.log_metrics({"train_loss": value, "lr": 0.003, "samples_per_s": 8000.0 + value}, step)
    logged = time.perf_counter()
    run.finish()
    elapsed = time.perf_counter() - start
    points = steps * len(KEYS)
    return points / elapsed, 1e6 * (logged - start) / points


def through_raw_sqlite(steps: int, name: str, rows_per_statement: int = 1) -> float:
    store, run_id = fresh_database(name)
    now = time.time()
    rows = [(run_id, key, step, value, now) for step in range(steps)
            for key, value in zip(KEYS, (1.0 / (step + 1), 0.003, 8000.0 + 1.0 / (step + 1)))]
    connection = sqlite3.connect(store.engine.url.database)
    try:
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            connection.execute(f"PRAGMA {pragma}")
        start = time.perf_counter()
        insert = "INSERT INTO metrics (run_id, key, step, value, time) VALUES "
        with connection:
            if rows_per_statement == 1:
                connection.executemany(insert + "(?, ?, ?, ?, ?)", rows)
            for first in range(0, len(rows) if rows_per_statement > 1 else 0, rows_per_statement):
                part = rows[first:first + rows_per_statement]
                connection.execute(insert + ", ".join(["(?, ?, ?, ?, ?)"] * len(part)),
                                   [value for row in part for value in row])
        elapsed = time.perf_counter() - start
        assert connection.execute("SELECT count(*) FROM metrics").fetchone()[0] == len(rows)
    finally:
        connection.close()
    return len(rows) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mlflow-python", help="python of a venv with mlflow installed")
    args = parser.parse_args()
    steps = args.points // len(KEYS)

    print(f"machine: {machine()}")
    through_dlx(5_000, "warm-dlx"), through_raw_sqlite(5_000, "warm-raw")
    ours, per_point, raw, raw_rows = [], [], [], []
    for repeat in range(args.repeats):
        order = ["dlx", "raw", "raw-rows"]
        for which in order if repeat % 2 == 0 else reversed(order):
            if which == "dlx":
                rate, micros = through_dlx(steps, f"dlx-{repeat}")
                ours.append(rate)
                per_point.append(micros)
            elif which == "raw":
                raw.append(through_raw_sqlite(steps, f"raw-{repeat}"))
            else:
                raw_rows.append(through_raw_sqlite(steps, f"raw-rows-{repeat}", ROWS_PER_STATEMENT))

    report(f"metric ingest, {steps * len(KEYS):,} points ({steps:,} steps x {len(KEYS)} keys), "
           f"median; best of {args.repeats} interleaved repeats (spread in the runs)",
           [("dlx.tracking (log_metrics + finish)", f"{median(ours):,.0f}; {max(ours):,.0f} points/s  "
             f"(runs: {', '.join(f'{r:,.0f}' for r in ours)})"),
            ("  time in log_metrics calls", f"{median(per_point):.2f}; {min(per_point):.2f} us/point "
             "(inline flushes included)"),
            ("raw sqlite3.executemany", f"{median(raw):,.0f}; {max(raw):,.0f} points/s  "
             f"(runs: {', '.join(f'{r:,.0f}' for r in raw)})"),
            (f"raw sqlite3, {ROWS_PER_STATEMENT} rows per INSERT", f"{median(raw_rows):,.0f}; {max(raw_rows):,.0f} "
             f"points/s  (runs: {', '.join(f'{r:,.0f}' for r in raw_rows)})"),
            ("dlx / raw executemany", f"{median(ours) / median(raw):.2f}; {max(ours) / max(raw):.2f}  (target >= 0.9)"),
            ("dlx / raw rows per INSERT", f"{median(ours) / median(raw_rows):.2f}; "
             f"{max(ours) / max(raw_rows):.2f}  (the faster ceiling)")])
    python = mlflow_python(args.mlflow_python)
    if python is None:
        print(SKIPPED)
    else:
        peer = measure(python, "ingest", steps, max(1, args.repeats // 2))
        rates = peer["points_per_s"]
        report(f"MLflow {peer['version']} log_batch (1,000 metrics per call, SQLite store), same points",
               [("MLflow log_batch", f"{median(rates):,.0f} points/s  (runs: {', '.join(f'{r:,.0f}' for r in rates)})"),
                ("dlx / MLflow (medians)", f"{median(ours) / median(rates):.0f}x")])
    ratio = median(ours) / median(raw)
    print(f"\nmetric ingest: dlx {ratio:.2f}x raw executemany (medians); target >= 0.9x: "
          f"{'met' if ratio >= 0.9 else 'NOT met'}")

if __name__ == "__main__":
    main()
