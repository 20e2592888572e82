"""Runs at scale: list, filter, sort and page in SQL, and charts of long histories reduced in SQL.

Three measures, each against a baseline in the same process:
  1. 1,000 runs x 5 metrics x 10,000 steps: list and filter every run with `Store.list_runs(filter=...)`
     vs loading every run into Python (ORM rows, params, summary JSON) and filtering there. Target: under 100 ms.
  2. 1,000 and 100,000 runs, filters matching 8% and 40%: a page of 50 sorted by a metric + the count, by dlx,
     by hand-written SQL (the same rows: the page, its params, tags and final metrics, the count), and by
     MLflow's search_runs on a copy of the same runs (its own venv: --mlflow-python; a page only, MLflow has
     no count), interleaved. Target: dlx within 2x the hand-written SQL's CPU time.
  3. A chart of 20 runs x 100,000 steps: `store.reduced_history` (1,000 buckets: min, max, last)
     fetched and built into a plotly figure vs fetching every point and building it. Target: under 1 s.

The stores are generated once with bulk inserts (histories in SQL, no Python per point) and cached
under /tmp/dlx-bench-runs-scale, so re-runs are quick; --scale 0.01 makes small ones for a check.

Run: python bench/bench_runs_scale.py [--scale 1] [--repeats 5]
"""
from __future__ import annotations

import argparse
import json
import random
import sqlite3
import time
from pathlib import Path

from common import machine, median, report, setup
from mlflow_peer import SKIPPED, Searcher, mlflow_python

setup()

import plotly.graph_objects as go  # noqa: E402
from sqlalchemy import select  # noqa: E402
from sqlalchemy.orm import selectinload  # noqa: E402

from db.engine import get_engine, upgrade  # noqa: E402
from db.models import Experiment  # noqa: E402
from db.models import Run as RunRow  # noqa: E402
from dlx.store import Store, decode_param  # noqa: E402

CACHE = Path("/tmp/dlx-bench-runs-scale-v2")  # v2: with metric blocks
METRICS = ("acc", "loss", "lr", "val_acc", "val_loss")
OPTIMIZERS = ("adam", "sgd", "adamw")
FILTER = "lr < 0.01 and val_acc > 0.9"
FILTER_HISTORIES = "lr < 0.01 and val_acc > 0.14"  # the generated histories end between 0.09 and 0.19
LONG_KEY = "long_loss"


def _final(rng: random.Random) -> dict[str, float]:
    return {"acc": rng.uniform(0.5, 1), "loss": rng.uniform(0, 2), "lr": rng.choice((0.1, 0.01, 0.001)),
            "val_acc": rng.uniform(0.5, 1), "val_loss": rng.uniform(0, 2)}


def generate(path: Path, runs: int, steps: int, long_runs: int, long_steps: int) -> str:
    """A store of `runs` runs with params, final metrics and (when steps > 0) histories; cached by name.

    Built as a store from before this work (schema 0002: runs, params, points), then upgraded by the
    migrations, which backfill the summary rows, metric blocks and numeric params, as on a user's store.
    """
    url = f"sqlite:///{path}"
    if path.exists():
        return url
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    engine = get_engine(f"sqlite:///{partial}", upgrade_schema=False)
    upgrade(engine, "0002")
    started = time.perf_counter()
    rng = random.Random(0)
    engine.dispose()
    conn = sqlite3.connect(partial)
    conn.execute("PRAGMA journal_mode=DELETE")  # out of WAL (the engine set it), then no journal at all:
    conn.execute("PRAGMA journal_mode=OFF")  # a throwaway file, filled once
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("INSERT INTO experiments (id, name, created_at) VALUES (1, 'bench', '2026-01-01 00:00:00')")
    run_rows, params, summaries = [], [], []
    for i in range(1, runs + 1):
        final = _final(rng)
        run_rows.append((i, 1, f"run-{i}", f"sweep-{i % 100}", "failed" if i % 10 == 0 else "succeeded",
                         "digits", ("cnn", "mlp", "logreg")[i % 3], "{}", json.dumps(final),
                         f"2026-01-01 00:00:{i % 60:02d}.{i:06d}", 0))
        lr = rng.choice((0.1, 0.03, 0.01, 0.003, 0.001))
        for key, value in (("lr", lr), ("batch_size", rng.choice((32, 64, 128))), ("layers", rng.randint(1, 12)),
                           ("optimizer", rng.choice(OPTIMIZERS)), ("seed", i)):
            params.append((i, key, value if isinstance(value, str) else json.dumps(value)))
        if not steps:
            summaries.extend((i, key, 0, value, value, value) for key, value in final.items())
    conn.executemany("INSERT INTO runs (id, experiment_id, name, sweep, status, dataset, model, config, summary, "
                     "created_at, cancel_requested) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", run_rows)
    conn.executemany("INSERT INTO params (run_id, key, value) VALUES (?, ?, ?)", params)
    if steps:
        series = [(i, key, steps) for i in range(1, runs + 1) for key in METRICS]
        series += [(i, LONG_KEY, long_steps) for i in range(1, long_runs + 1)]
        for n, (i, key, count) in enumerate(sorted(series)):  # in index order: appends, not inserts
            conn.execute("WITH RECURSIVE s(step) AS (SELECT 0 UNION ALL SELECT step + 1 FROM s WHERE step < ?) "
                         "INSERT INTO metrics (run_id, key, step, value, time) "
                         "SELECT ?, ?, step, 1.0 / (1 + step / 1000.0) + (abs(random()) % 1000) / 10000.0, "
                         "1.7e9 + step FROM s", (count - 1, i, key))
            if n % 1000 == 0:
                print(f"  generating {path.name}: {n}/{len(series)} series, {time.perf_counter() - started:.0f} s",
                      flush=True)
    conn.commit()
    conn.close()
    upgrading = time.perf_counter()
    upgrade(engine)  # 0003 backfills run_summaries, metric_blocks and params.number
    print(f"  migrations to head (backfill): {time.perf_counter() - upgrading:.0f} s", flush=True)
    engine.dispose()
    conn = sqlite3.connect(partial)
    if steps:
        conn.execute("UPDATE runs SET summary = (SELECT json_group_object(key, last) FROM run_summaries "
                     "WHERE run_id = runs.id)")
    else:
        conn.executemany("INSERT INTO run_summaries (run_id, key, step, last, min, max) VALUES (?, ?, ?, ?, ?, ?)",
                         summaries)
    conn.commit()
    conn.execute("ANALYZE")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    partial.rename(path)
    print(f"  generated {path} ({path.stat().st_size / 1e9:.2f} GB) in {time.perf_counter() - started:.0f} s",
          flush=True)
    return url


def load_everything(store: Store) -> list[tuple]:
    """The baseline: every run into Python (ORM rows, experiment, params, tags), as the store did before."""
    stmt = (select(RunRow, Experiment.name).join(Experiment)
            .options(selectinload(RunRow.params), selectinload(RunRow.tags)).order_by(RunRow.id.desc()))
    with store.session() as s:
        return [(row, {p.key: decode_param(p.value) for p in row.params}, name)
                for row, name in s.execute(stmt)]


def python_filter(rows: list[tuple], above: float = 0.9) -> list[tuple]:
    return [r for r in rows if isinstance(r[1].get("lr"), (int, float)) and r[1]["lr"] < 0.01
            and (r[0].summary or {}).get("val_acc", float("-inf")) > above]


def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return median(times), result


def figure(series: dict[int, tuple]) -> go.Figure:
    """One trace per run; reduced series also get their min-max band."""
    fig = go.Figure()
    for run_id, (x, y, low, high) in series.items():
        if low is not None:
            fig.add_trace(go.Scattergl(x=x, y=high, mode="lines", line={"width": 0}, showlegend=False))
            fig.add_trace(go.Scattergl(x=x, y=low, mode="lines", line={"width": 0}, fill="tonexty", showlegend=False))
        fig.add_trace(go.Scattergl(x=x, y=y, mode="lines", name=f"#{run_id}"))
    fig.to_json()  # what st.plotly_chart sends to the browser: part of building it
    return fig


WIDE = {  # filters over the generated runs: (dlx, MLflow, hand-written SQL's extra condition, its count)
    "8%": ("lr < 0.01 and val_acc > 0.9", "metrics.lr < 0.01 and metrics.val_acc > 0.9", "AND s.last > 0.9",
           "SELECT count(*) FROM params p JOIN run_summaries s ON s.run_id = p.run_id AND s.key = 'val_acc' "
           "AND s.last > 0.9 WHERE p.key = 'lr' AND p.number < 0.01"),
    "40%": ("lr < 0.01", "metrics.lr < 0.01", "", "SELECT count(*) FROM params WHERE key = 'lr' AND number < 0.01"),
}
RAW_PAGE = """SELECT r.id, e.name, r.name, r.sweep, r.status, r.dataset, r.model, r.config, r.summary, r.device, r.error,
  r.created_at, r.started_at, r.ended_at, (SELECT max(j.id) FROM jobs j WHERE j.run_id = r.id AND j.kind = 'train')
FROM run_summaries s JOIN runs r ON r.id = s.run_id JOIN experiments e ON e.id = r.experiment_id
WHERE s.key = 'val_acc' AND s.last IS NOT NULL
  AND EXISTS (SELECT 1 FROM params p WHERE p.run_id = r.id AND p.key = 'lr' AND p.number < 0.01) {extra}
ORDER BY s.last DESC, r.id DESC LIMIT 50"""


def raw_page(connection: sqlite3.Connection, extra: str, count: str) -> tuple[list[int], int]:
    """The hand-written page: the sort key's index walked, the filter looked up per run, then the 50 runs'
    params, tags and final metrics, and the count on the filter's own index."""
    rows = connection.execute(RAW_PAGE.format(extra=extra)).fetchall()
    ids = [row[0] for row in rows]
    marks = ", ".join("?" * len(ids))
    for table, value in (("params", "value"), ("tags", "value"), ("run_summaries", "last")):
        connection.execute(f"SELECT run_id, key, {value} FROM {table} WHERE run_id IN ({marks})", ids).fetchall()
    return ids, connection.execute(count).fetchone()[0]


def compare_page(store: Store, python: str | None, repeats: int) -> list[str]:
    """A page of 50 sorted by val_acc + the count, by dlx, raw SQL and MLflow (a page only: it has no count),
    interleaved; its verdict lines (dlx within 2x the raw SQL's CPU time)."""
    runs = store.count_runs()
    connection = sqlite3.connect(f"file:{store.engine.url.database}?mode=ro", uri=True)
    searcher = Searcher(python, store.engine.url.database) if python else None
    rows, verdicts = [], []
    for share, (dlx_filter, mlflow_filter, extra, count) in WIDE.items():
        cpu: dict[str, list[float]] = {"dlx": [], "raw": []}
        wall: dict[str, list[float]] = {"dlx": [], "raw": [], "mlflow": []}
        for _ in range(repeats):
            for who in ("dlx", "raw", "mlflow"):
                cpu_start, start = time.process_time(), time.perf_counter()
                if who == "dlx":
                    page = store.list_runs(filter=dlx_filter, sort="val_acc", limit=50)
                    found, total = [r.id for r in page], store.count_runs(filter=dlx_filter)
                elif who == "raw":
                    found, total = raw_page(connection, extra, count)
                elif searcher is not None:
                    took, mlflow_ids = searcher.search(mlflow_filter, ["metrics.val_acc DESC"])
                    wall["mlflow"].append(took)
                    continue
                else:
                    continue
                cpu[who].append(time.process_time() - cpu_start)
                wall[who].append(time.perf_counter() - start)
                if who == "dlx":
                    expected = (found, total)
                else:
                    assert (found, total) == expected, f"dlx and raw SQL disagree on the {share} page"
        if searcher is not None:
            assert sorted(mlflow_ids) == sorted(expected[0]), f"MLflow's {share} page differs"
        ratio = median(cpu["dlx"]) / median(cpu["raw"])
        rows += [(f"{share} ({expected[1]:,} match): dlx page + count",
                  f"{median(cpu['dlx']) * 1e3:7.1f} ms CPU, {median(wall['dlx']) * 1e3:7.1f} ms wall"),
                 ("  hand-written SQL, same rows", f"{median(cpu['raw']) * 1e3:7.1f} ms CPU, "
                                                   f"{median(wall['raw']) * 1e3:7.1f} ms wall  (dlx {ratio:.1f}x)"),
                 ("  MLflow search_runs, the page only", f"{median(wall['mlflow']) * 1e3:7.1f} ms wall"
                  if wall["mlflow"] else SKIPPED)]
        verdicts.append(f"{runs:,} runs, filter matching {share}, page of 50 + count: dlx {ratio:.2f}x raw SQL "
                        f"(CPU); target <= 2x: {'met' if ratio <= 2 else 'NOT met'}")
    if searcher is not None:
        rows.append(("  MLflow", f"{searcher.ready['version']}, a copy of the same runs (lr, val_acc)"))
        searcher.close()
    connection.close()
    report(f"2. {runs:,} runs: a page of 50 sorted by val_acc + the count (median of {repeats}, interleaved)", rows)
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the sizes (for a quick check)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mlflow-python", help="python of a venv with mlflow installed (bench/mlflow_peer.py)")
    args = parser.parse_args()
    python = mlflow_python(args.mlflow_python)
    s = args.scale
    small_runs, steps, long_steps = max(20, int(1000 * s)), max(10, int(10_000 * s)), max(100, int(100_000 * s))
    long_runs = 20
    many_runs = max(100, int(100_000 * s))
    print(machine())
    small = generate(CACHE / f"runs{small_runs}x{steps}.sqlite", small_runs, steps, long_runs, long_steps)
    many = generate(CACHE / f"runs{many_runs}.sqlite", many_runs, 0, 0, 0)
    small_store, many_store = Store(small), Store(many)
    for store in (small_store, many_store):  # warm: engine, migrations check, page cache
        store.list_runs(limit=1)
        load_everything(store)

    # 1. every run, listed and filtered
    sql_all, listed = timed(lambda: small_store.list_runs(limit=None), args.repeats)
    sql_filtered, chosen = timed(lambda: small_store.list_runs(filter=FILTER_HISTORIES, limit=None), args.repeats)
    py_filtered, baseline = timed(lambda: python_filter(load_everything(small_store), 0.14), args.repeats)
    assert sorted(r.id for r in chosen) == sorted(r[0].id for r in baseline), "the SQL filter disagrees with Python"
    report(f"1. {small_runs:,} runs x {len(METRICS)} metrics x {steps:,} steps: list and filter every run "
           f"(median of {args.repeats})", [
        ("store.list_runs, all runs", f"{sql_all * 1e3:8.1f} ms  ({len(listed)} runs, params, tags, final metrics)"),
        (f"store.list_runs(filter={FILTER_HISTORIES!r})", f"{sql_filtered * 1e3:8.1f} ms  ({len(chosen)} runs)"),
        ("baseline: load every run, filter in Python", f"{py_filtered * 1e3:8.1f} ms  "
                                                       f"({py_filtered / sql_filtered:.1f}x the SQL filter; "
                                                       f"{py_filtered / sql_all:.1f}x listing all)"),
    ])

    # 2. one sorted, filtered page (and the count) at 1,000 and 100,000 runs, against raw SQL and MLflow
    wide_small = Store(generate(CACHE / f"runs{small_runs}.sqlite", small_runs, 0, 0, 0))
    verdicts = []
    for store in (wide_small, many_store):
        verdicts += compare_page(store, python, args.repeats)

    def page_by_param():
        return many_store.list_runs(filter="optimizer = 'adam' and val_loss < 1", sort="layers", limit=50, offset=1000)

    sql_param_page, _ = timed(page_by_param, args.repeats)
    start = time.perf_counter()
    rows = sorted(python_filter(load_everything(many_store)), key=lambda r: -(r[0].summary or {})["val_acc"])
    py_page = time.perf_counter() - start
    first = many_store.list_runs(filter=FILTER, sort="val_acc", descending=True, limit=50)
    assert [r.id for r in first] == [r[0].id for r in rows[:50]], "the SQL page disagrees with Python"
    report(f"2b. {many_runs:,} runs: other pages", [
        ("page by a param, offset 1,000 (SQL)", f"{sql_param_page * 1e3:8.1f} ms"),
        ("load every run, filter and sort in Python", f"{py_page * 1e3:8.1f} ms  (once)"),
    ])

    # 3. a chart of 20 long histories
    ids = list(range(1, long_runs + 1))

    def reduced_chart():
        reduced = small_store.reduced_history(ids, [LONG_KEY], buckets=1000)
        return figure({i: (r.steps, r.last, r.min, r.max) for (i, _), r in reduced.items()}), reduced

    def full_chart():
        histories = {i: small_store.metric_history(i, LONG_KEY) for i in ids}
        return figure({i: (h.steps, h.values, None, None) for i, h in histories.items()}), histories

    reduced_s, (_, reduced) = timed(reduced_chart, args.repeats)
    full_s, (_, full) = timed(full_chart, max(1, args.repeats // 2))
    points = sum(len(h) for h in full.values())
    assert all(r.max.max() == full[i].values.max() for (i, _), r in reduced.items()), "a spike was lost"
    report(f"3. chart of {long_runs} runs x {long_steps:,} steps (fetched and built into a plotly figure)", [
        ("reduced in SQL, 1,000 buckets: min, max, last", f"{reduced_s * 1e3:8.1f} ms  ({sum(len(r) for r in reduced.values()):,} buckets)"),
        ("baseline: every point", f"{full_s * 1e3:8.1f} ms  ({points:,} points; {full_s / reduced_s:.1f}x)"),
    ])
    print()
    for line in verdicts:
        print(line)
    print(f"list and filter 1,000 runs with histories: {sql_filtered * 1e3:.1f} ms; target < 100 ms: "
          f"{'met' if sql_filtered < 0.1 else 'NOT met'}")
    print(f"chart of {long_runs} runs x {long_steps:,} steps: {reduced_s * 1e3:.0f} ms; target < 1 s: "
          f"{'met' if reduced_s < 1 else 'NOT met'}")


if __name__ == "__main__":
    main()
