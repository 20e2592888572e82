"""The plans of a wide filter's page and count at 100,000 runs, on SQLite (EXPLAIN QUERY PLAN) and PostgreSQL
(EXPLAIN): a page sorted by a metric walks `ix_run_summaries_key_last` and stops at the page's end (no sort of
every match), the newest-first page walks the runs' primary key, and a count reads the filter's key index.

The statements are the ones the store runs (captured from its engine); the 100,000 runs are made in the
database by one INSERT ... SELECT each over a recursive counter. SQLite is left without ANALYZE, as a user's
store is; PostgreSQL is analysed (its planner needs statistics, which autovacuum gathers on a user's server).
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import event, text

from dlx.store import Store, default_store

RUNS = 100_000
COUNTER = f"WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n WHERE i <= {RUNS}) "
FILL = [  # lr = 0, 0.005, 0.01, 0.015, 0.02 in turn: `lr < 0.01` matches 40%; val_acc spread over [0, 1)
    COUNTER + "INSERT INTO runs (id, experiment_id, name, status, dataset, model, config, summary, created_at, "
    "cancel_requested) SELECT i, 1, 'run', 'succeeded', 'digits', 'mlp', '{}', '{}', CURRENT_TIMESTAMP, false FROM n",
    COUNTER + "INSERT INTO params (run_id, key, value, number) "
    "SELECT i, 'lr', CAST((i % 5) * 0.005 AS TEXT), (i % 5) * 0.005 FROM n",
    COUNTER + "INSERT INTO run_summaries (run_id, key, step, last, min, max) "
    "SELECT i, 'val_acc', 10, (i * 7919 % 1000) / 1000.0, 0, 1 FROM n",
]


@pytest.fixture
def wide(store_url) -> Store:
    store = default_store()
    store.create_run({"dataset": "digits", "model": "mlp"}, status="succeeded")  # experiment 1, run 1
    with store.engine.begin() as conn:
        for statement in FILL:
            conn.execute(text(statement))
    if store.dialect == "postgresql":
        with store.engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
    return store


@pytest.fixture
def statements(wide) -> Iterator[list[tuple[str, object]]]:
    """Every (SQL, parameters) the store runs while the test reads."""
    seen: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement, parameters, _context, _many) -> None:
        seen.append((statement, parameters))

    event.listen(wide.engine, "before_cursor_execute", record)
    yield seen
    event.remove(wide.engine, "before_cursor_execute", record)


def _plan(store: Store, statement: str, parameters) -> str:
    explain = "EXPLAIN QUERY PLAN " if store.dialect == "sqlite" else "EXPLAIN "
    with store.engine.connect() as conn:
        rows = conn.exec_driver_sql(explain + statement, parameters).all()
    return "\n".join(str(row[-1]) for row in rows)


def _the(statements, *words: str) -> tuple[str, object]:
    """The one captured statement containing every word."""
    found = [(sql, args) for sql, args in statements if all(word in sql for word in words)]
    assert len(found) == 1, [sql for sql, _ in statements]
    return found[0]


def test_wide_filter_plans_at_100k_runs(wide, statements):
    """One test per store (filling 100,000 runs takes seconds): each plan in turn."""
    for check in (_a_page_sorted_by_a_metric_walks_its_index_and_stops, _the_newest_first_page_walks_the_primary_key,
                  _a_count_reads_the_filters_key_index, _a_bounded_count_stops_past_its_bound,
                  _a_pages_params_tags_and_metrics_are_looked_up_by_run):
        statements.clear()
        check(wide, statements)


def _a_page_sorted_by_a_metric_walks_its_index_and_stops(wide, statements):
    page = wide.list_runs(filter="lr < 0.01", sort="val_acc", limit=50)
    assert len(page) == 50 and [r.metrics["val_acc"] for r in page] == sorted(
        (r.metrics["val_acc"] for r in page), reverse=True) and page[0].metrics["val_acc"] == 0.999
    plan = _plan(wide, *_the(statements, "ORDER BY", "LIMIT"))
    if wide.dialect == "sqlite":
        first = plan.splitlines()[0]
        assert "ix_run_summaries_key_last" in first, plan  # the sort key first, walked in order
        assert "USE TEMP B-TREE FOR ORDER BY" not in plan, plan  # only ties on the value are sorted
        assert "LIST SUBQUERY" not in plan, plan  # the filter is looked up per run (EXISTS), not collected
    else:
        assert "ix_run_summaries_key_last" in plan and plan.splitlines()[0].startswith("Limit"), plan
        assert "Seq Scan on run_summaries" not in plan, plan


def _the_newest_first_page_walks_the_primary_key(wide, statements):
    page = wide.list_runs(filter="lr < 0.01", limit=50)
    assert [r.id for r in page] == sorted((r.id for r in page), reverse=True) and len(page) == 50
    plan = _plan(wide, *_the(statements, "ORDER BY", "LIMIT"))
    if wide.dialect == "sqlite":
        assert "USE TEMP B-TREE" not in plan and "LIST SUBQUERY" not in plan, plan
    else:
        assert plan.splitlines()[0].startswith("Limit") and "runs_pkey" in plan, plan


def _a_count_reads_the_filters_key_index(wide, statements):
    assert wide.count_runs(filter="lr < 0.01") == 2 * RUNS // 5
    sql, args = _the(statements, "count(")
    plan = _plan(wide, sql, args)
    assert "runs" not in sql.split("FROM", 1)[1], sql  # no run rows read: one params row per run
    if wide.dialect == "sqlite":
        assert "COVERING INDEX ix_params_key_number" in plan, plan
    else:  # the index, or (every row here has the key) the params table alone
        assert "on params" in plan and "runs" not in plan, plan


def _a_bounded_count_stops_past_its_bound(wide, _statements):
    assert wide.count_runs(filter="lr < 0.01", bound=10_000) == 10_001
    assert wide.count_runs(filter="lr < 0.01 and val_acc > 0.995", bound=10_000) == \
        wide.count_runs(filter="lr < 0.01 and val_acc > 0.995") < 10_000


def _a_pages_params_tags_and_metrics_are_looked_up_by_run(wide, _statements):
    """The one statement reading a page's params, tags and final metrics (run on the DBAPI cursor, so compiled
    here as the store compiles it) looks each run up on its table's primary key: no filled table read whole."""
    from dlx.store.runs import _keyed

    compiled = _keyed(64).statement.compile(dialect=wide.engine.dialect)
    ids = [r.id for r in wide.list_runs(limit=64)]
    args = compiled.construct_params({f"i{i}": run_id for i, run_id in enumerate(ids)})
    if compiled.positional:
        args = tuple(args[name] for name in compiled.positiontup)
    plan = _plan(wide, compiled.string, args)
    if wide.dialect == "sqlite":
        assert plan.count("(run_id=?") >= 3 and "SCAN" not in plan.replace("SCAN CONSTANT ROW", ""), plan
    else:  # the filled tables by their keys (tags, empty here, may be read whole)
        assert "using params_pkey" in plan and "using run_summaries_pkey" in plan, plan
        assert "Seq Scan on params" not in plan and "Seq Scan on run_summaries" not in plan, plan
