"""Runs at scale: summary rows kept on write and backfilled, sort and paging in SQL, export round trip."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sqlalchemy import select, text

from db.engine import get_engine, upgrade
from db.models import RunSummary
from dlx import settings
from dlx.errors import DlxError
from dlx.store import default_store
from dlx.tracking import Run
from dlx.views import export


def _run(params: dict, metrics: dict[str, list[tuple[int, float]]], **run_args) -> int:
    store = default_store()
    run_id = store.create_run(run_args.pop("config", {}), **run_args)
    run = Run(store, run_id, flush_size=3)  # small batches: the summary is merged across flushes
    run.log_params(params)
    for key, points in metrics.items():
        for step, value in points:
            run.log_metric(key, value, step)
    run.flush()
    run._stop.set()
    return run_id


def _summary(run_id: int) -> dict[str, tuple]:
    with default_store().session() as s:
        return {r.key: (r.step, r.last, r.min, r.max)
                for r in s.scalars(select(RunSummary).where(RunSummary.run_id == run_id))}


def test_summary_rows_follow_every_flush_and_match_the_history():
    store = default_store()
    nan = math.nan
    run_id = _run({}, {"loss": [(0, 5.0), (1, nan), (2, 1.0), (5, 7.0), (3, -2.0), (5, 4.0), (4, nan)],
                       "acc": [(0, nan), (1, nan)]})
    assert _summary(run_id) == {"loss": (5, 4.0, -2.0, 7.0), "acc": (1, None, None, None)}
    assert store.latest_metrics(run_id) == {"loss": (5, 4.0), "acc": (1, None)}
    run = Run(default_store(), run_id)
    run.log_metrics({"acc": 0.5, "loss": 9.0}, step=2)  # an earlier step than loss's last: min/max only
    run.flush()
    run._stop.set()
    assert _summary(run_id) == {"loss": (5, 4.0, -2.0, 9.0), "acc": (2, 0.5, 0.5, 0.5)}
    history = store.metric_history(run_id, "loss")
    assert (np.nanmin(history.values), np.nanmax(history.values)) == (-2.0, 9.0)
    assert [r.metrics for r in store.list_runs()] == [{"loss": 4.0, "acc": 0.5}]


def test_migration_backfills_summaries_and_numeric_params_of_existing_runs():
    engine = get_engine(settings.database_url(), upgrade_schema=False)
    upgrade(engine, "0002")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO experiments (id, name, created_at) VALUES (1, 'e', '2026-01-01')"))
        conn.execute(text("INSERT INTO runs (id, experiment_id, status, config, summary, created_at) "
                          "VALUES (1, 1, 'succeeded', '{}', '{}', '2026-01-01')"))
        conn.execute(text("INSERT INTO params (run_id, key, value) VALUES (1, 'lr', '0.01'), "
                          "(1, 'optimizer', 'adam'), (1, 'flag', 'true'), (1, 'layers', '[1, 2]')"))
        conn.execute(text("INSERT INTO metrics (run_id, key, step, value, time) VALUES "
                          "(1, 'loss', 0, 3.0, 0), (1, 'loss', 2, 1.0, 0), (1, 'loss', 2, 2.0, 0), "
                          "(1, 'loss', 1, NULL, 0), (1, 'loss', 1, 9.0, 0), (1, 'loss', -3, 4.0, 0), "
                          "(1, 'loss', 120, 0.5, 0)"))
    upgrade(engine)
    store = default_store()
    assert _summary(1) == {"loss": (120, 0.5, 0.5, 9.0)}
    with engine.connect() as conn:
        blocks = conn.execute(text("SELECT block, last_step, last, min, max FROM metric_blocks ORDER BY block")).all()
    assert blocks == [(-1, -3, 4.0, 4.0, 4.0), (0, 2, 2.0, 1.0, 9.0), (2, 120, 0.5, 0.5, 0.5)]  # floored blocks
    with engine.connect() as conn:
        numbers = dict(conn.execute(text("SELECT key, number FROM params")).all())
    assert numbers == {"lr": 0.01, "optimizer": None, "flag": None, "layers": None}
    assert [r.id for r in store.list_runs(filter="lr = 0.01 and loss < 2.5")] == [1]
    reduced = store.reduced_history([1], ["loss"], 1)[(1, "loss")]  # one bucket, made from the blocks
    assert (list(reduced.steps), list(reduced.last), reduced.first_step, reduced.first) == ([120], [0.5], -3, 4.0)


@pytest.fixture
def grid() -> list[int]:
    """Six runs: layers (numeric params whose text order differs), a metric some lack, tags, two experiments."""
    ids = []
    for i, layers in enumerate([2, 10, 3, 1, 30, 4]):
        metrics = {"val_acc": [(0, 0.1), (1, 0.5 + i / 20)]} if i != 2 else {}
        ids.append(_run({"layers": layers, "optimizer": "adam" if i % 2 else "sgd"}, metrics,
                        experiment="exp-b" if i >= 4 else "exp-a", sweep="s" if i < 3 else None,
                        status="failed" if i == 5 else "succeeded",
                        config={"dataset": "digits" if i < 3 else "wine", "model": "cnn"}))
    for run_id, keep in ((ids[1], "yes"), (ids[4], "no")):
        run = Run(default_store(), run_id)
        run.set_tags({"keep": keep})
        run._stop.set()
    return ids


def test_sort_by_param_numerically_by_metric_and_by_column(grid):
    store = default_store()
    by_layers = [r.params["layers"] for r in store.list_runs(sort="layers", descending=False)]
    assert by_layers == ["1", "2", "3", "4", "10", "30"]
    by_acc = [r.id for r in store.list_runs(sort="val_acc")]
    assert by_acc == [grid[5], grid[4], grid[3], grid[1], grid[0], grid[2]]  # without the metric: last
    assert [r.id for r in store.list_runs(sort="val_acc", descending=False)][-1] == grid[2]
    assert [r.experiment for r in store.list_runs(sort="experiment", descending=False)] == ["exp-a"] * 4 + ["exp-b"] * 2
    assert [r.id for r in store.list_runs(sort="optimizer", descending=False)] == [grid[1], grid[3], grid[5],
                                                                                grid[0], grid[2], grid[4]]
    with pytest.raises(DlxError, match="sort: no run field, parameter or metric is named 'nope'"):
        store.list_runs(sort="nope")


def test_pages_in_sql_add_up_to_the_filtered_list(grid):
    store = default_store()
    expr = "layers >= 2"
    full = [r.id for r in store.list_runs(filter=expr, sort="layers")]
    assert store.count_runs(filter=expr) == len(full) == 5
    pages = [store.list_runs(filter=expr, sort="layers", limit=2, offset=o) for o in (0, 2, 4, 6)]
    assert [r.id for page in pages for r in page] == full
    assert [len(page) for page in pages] == [2, 2, 1, 0]
    with pytest.raises(DlxError, match="offset: must be 0 or more"):
        store.list_runs(offset=-1)


def test_column_and_tag_filters_combine_with_an_expression(grid):
    store = default_store()
    assert {r.id for r in store.list_runs(experiment="exp-b")} == {grid[4], grid[5]}
    assert {r.id for r in store.list_runs(tag="keep")} == {grid[1], grid[4]}
    assert {r.id for r in store.list_runs(tag="keep=yes")} == {grid[1]}
    assert {r.id for r in store.list_runs(dataset="wine", status=["succeeded"])} == {grid[3], grid[4]}
    assert {r.id for r in store.list_runs(sweep="s", model="cnn", filter="val_acc > 0.52")} == {grid[1]}
    assert store.count_runs(experiment="exp-a", filter="optimizer = 'sgd'") == 2
    assert store.list_runs(model="mlp") == []


def test_delete_removes_the_summary_rows(grid):
    store = default_store()
    store.delete_run(grid[0])
    assert _summary(grid[0]) == {}
    assert store.count_runs() == 5


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_export_then_read_back_gives_the_same_values(grid, fmt):
    store = default_store()
    run = Run(store, grid[0])
    run.log_params({"name": "one", "nested": {"a": [1, 2.5]}, "none": None})
    run.log_metrics({"val_acc": math.nan, "weird": 1 / 3}, step=7)
    run.flush()
    run._stop.set()
    chosen = [grid[0], grid[2], grid[5]]
    selected = export.selection(store, chosen)
    assert list(selected) == chosen
    assert selected[grid[0]]["params"]["name"] == "one" and selected[grid[0]]["params"]["none"] is None
    assert math.isnan(selected[grid[0]]["final"]["val_acc"])
    assert selected[grid[0]]["history"]["val_acc"]["step"] == [0, 1, 7]
    written = export.to_json(selected) if fmt == "json" else export.to_csv(selected)
    read = export.from_json(written) if fmt == "json" else export.from_csv(written)
    np.testing.assert_equal(read, selected)  # NaN equals NaN here
    assert read[grid[0]]["history"]["weird"]["value"] == [1 / 3]


def test_cli_runs_filters_sorts_and_pages(grid, capsys):
    from dlx.cli import main

    assert main(["runs", "--json", "--filter", "layers >= 2", "--sort", "layers", "--desc",
                 "--limit", "2", "--offset", "1"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["params"]["layers"] for row in rows] == [10, 4]
    assert rows[0]["metrics"] == {"val_acc": 0.55}
    assert main(["runs", "--filter", "optimizer = 'adam'", "--sort", "val_acc", "--limit", "1"]) == 0
    out = capsys.readouterr().out.splitlines()  # the store's line went to stderr
    assert out[0] == "runs 1-1 of 3" and out[2].split()[0] == str(grid[1])
    assert out[1].split()[5] == "val_acc"  # the sorted column, shown
    assert main(["runs", "--filter", "lr <"]) == 2
    assert "filter: expected a number or a \"quoted string\", found the end at position 5" in capsys.readouterr().err
