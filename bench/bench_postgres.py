"""The store on PostgreSQL beside SQLite: metric ingest, history read and list/filter through dlx,
against raw psycopg `COPY` and `executemany` of the same rows into the same schema.

Each store gets a fresh database built by dlx's migrations (PostgreSQL: a throwaway cluster on
loopback started the same way as the tests', tests/helpers/pg_cluster.py; fsync off there, WAL with
synchronous=NORMAL on SQLite). Every measure is repeated; medians and the spread (min-max) are
printed, and ratios are taken against the raw baseline measured in the same run.

Run: python bench/bench_postgres.py [--steps 20000] [--runs 300] [--repeats 3]
"""
from __future__ import annotations

import argparse
import time

from common import ROOT, machine, median, report, setup

home = setup()

from db.engine import dispose_all, get_engine  # noqa: E402
from dlx.store import Store  # noqa: E402
from dlx.tracking import Run  # noqa: E402
from tests.helpers.pg_cluster import Cluster, bin_dir  # noqa: E402

KEYS = ("train_loss", "lr", "samples_per_s")
assert ROOT  # the repo is on sys.path (common.setup), so tests.helpers.pg_cluster imports


def rows_for(run_id: int, steps: int) -> list[tuple]:
    now = time.time()
    return [(run_id, key, step, value, now) for step in range(steps)
            for key, value in zip(KEYS, (1.0 / (step + 1), 0.003, 8000.0 + 1.0 / (step + 1)))]


def ingest_dlx(url: str, steps: int) -> tuple[float, int]:
    """Points/s from the first log call to the end of finish(); returns (rate, run id)."""
    store = Store(url)
    run = Run(store, store.create_run({"dataset": "digits"}, status="running"))
    start = time.perf_counter()
    for step in range(steps):
        value = 1.0 / (step + 1)
        run.log_metrics({"train_loss": value, "lr": 0.003, "samples_per_s": 8000.0 + value}, step)
    run.finish()
    return steps * len(KEYS) / (time.perf_counter() - start), run.id


def ingest_raw(url: str, steps: int, how: str) -> float:
    """Raw psycopg into the same metrics table, rows prebuilt, one transaction: the ceiling."""
    import psycopg

    run_id = Store(url).create_run({"dataset": "digits"}, status="running")
    rows = rows_for(run_id, steps)
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
        start = time.perf_counter()
        with conn.cursor() as cursor:
            if how == "copy":
                with cursor.copy("COPY metrics (run_id, key, step, value, time) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                cursor.executemany("INSERT INTO metrics (run_id, key, step, value, time) "
                                   "VALUES (%s, %s, %s, %s, %s)", rows)
        conn.commit()
        return len(rows) / (time.perf_counter() - start)


def populate(url: str, runs: int) -> None:
    """Runs with a final loss and a learning-rate param, for the list/filter query."""
    store = Store(url)
    for index in range(runs):
        run = Run(store, store.create_run({"dataset": "digits", "model": "mlp"}, status="running"))
        run.log_params({"lr": 0.001 * (1 + index % 10)})
        run.log_metrics({"val_acc": (index % 100) / 100}, step=0)
        run.finish()


def timed(action, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return times


def spread(values: list[float], unit: str, scale: float = 1.0) -> str:
    return (f"{median(values) * scale:,.1f} {unit} (min {min(values) * scale:,.1f}, "
            f"max {max(values) * scale:,.1f}, n={len(values)})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    path = bin_dir()
    if path is None:
        raise SystemExit("PostgreSQL is not installed (no initdb): nothing to compare")
    cluster = Cluster(path)
    try:
        urls = {"sqlite": f"sqlite:///{home / 'bench.sqlite'}", "postgresql": cluster.create_database()}
        for url in urls.values():
            get_engine(url)
        rates: dict[str, list[float]] = {name: [] for name in (*urls, "pg raw COPY", "pg raw executemany")}
        history_run: dict[str, int] = {}
        for _ in range(args.repeats):  # interleaved, so load on the machine hits each alike
            for name, url in urls.items():
                rate, history_run[name] = ingest_dlx(url, args.steps)
                rates[name].append(rate)
            rates["pg raw COPY"].append(ingest_raw(urls["postgresql"], args.steps, "copy"))
            rates["pg raw executemany"].append(ingest_raw(urls["postgresql"], args.steps, "executemany"))
        copy = median(rates["pg raw COPY"])
        report(f"Metric ingest, {args.steps * len(KEYS):,} points per run, points/s", [
            (name, f"{spread(values, 'pts/s')}  = {median(values) / copy:.2f}x raw COPY")
            for name, values in rates.items()])

        stores = {name: Store(url) for name, url in urls.items()}
        history = {name: timed(lambda store=store, name=name: store.metric_history(history_run[name], "train_loss"),
                               args.repeats * 3)
                   for name, store in stores.items()}
        report(f"History read, {args.steps:,} points of one key (store.metric_history), ms", [
            (name, spread(values, "ms", 1e3)) for name, values in history.items()])

        for url in urls.values():
            populate(url, args.runs)
        listing = {name: timed(lambda store=store: store.list_runs(filter="val_acc > 0.5 and lr < 0.006",
                                                       sort="val_acc", limit=50), args.repeats * 3)
                   for name, store in stores.items()}
        report(f"List/filter over {args.runs} runs and the ingest runs "
               "(val_acc > 0.5 and lr < 0.006, sorted by val_acc, page of 50), ms", [
                   (name, spread(values, "ms", 1e3)) for name, values in listing.items()])
        print(f"\n{machine()}")
    finally:
        dispose_all()
        cluster.stop()


if __name__ == "__main__":
    main()
