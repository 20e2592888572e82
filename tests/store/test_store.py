"""The run store on a real SQLite file: schema from migrations, pragmas, round trips, deletes."""
from __future__ import annotations

import math
import sqlite3

import pytest
import torch
from sqlalchemy import func, inspect, select, text
from sqlalchemy.exc import IntegrityError

from db.engine import alembic_config, get_engine
from db.models import Artifact, Base, Job, Metric, Param, Tag
from db.models import Run as RunRow
from dlx import settings
from dlx.config import parse_config
from dlx.store import Store, decode_param, default_store
from dlx.tracking import Run, start_run

pytestmark = pytest.mark.usefixtures("store_url")  # every test on SQLite and PostgreSQL


def _count(table, run_id: int) -> int:
    with default_store().session() as s:
        return s.scalar(select(func.count()).select_from(table).where(table.run_id == run_id))


def test_migrations_from_empty_create_every_table_at_head(dlx_home, store_url):
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    engine = get_engine()
    assert engine.dialect.name == store_url.split(":")[0].split("+")[0]
    if engine.dialect.name == "sqlite":
        assert (dlx_home / "dlx.sqlite").exists()
    tables = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert {"runs", "metrics", "params", "tags", "artifacts", "jobs", "workers", "explanations"} <= tables
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head
    indexes = {ix["name"] for ix in inspect(engine).get_indexes("metrics")}
    assert "ix_metrics_run_key_step" in indexes


def test_sqlite_file_is_in_wal_mode_with_foreign_keys_on(dlx_home, store_url):
    if not store_url.startswith("sqlite"):
        pytest.skip("WAL and PRAGMAs are SQLite's")
    engine = get_engine()
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    # WAL is a property of the file: a plain sqlite3 connection sees it too.
    raw = sqlite3.connect(dlx_home / "dlx.sqlite")
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_foreign_keys_reject_metrics_of_a_missing_run():
    with pytest.raises(IntegrityError), default_store().session() as s, s.begin():
        s.add(Metric(run_id=12345, key="loss", step=0, value=1.0, time=0.0))


def test_params_tags_and_metrics_round_trip():
    with start_run(experiment="store", name="round trip", config={"dataset": "digits"},
                   handle_signals=False) as run:
        run.log_params({"lr": 0.003, "optimizer": "adam", "layers": [64, 32], "amp": True})
        run.set_tags({"owner": "ada", "note": "first"})
        run.set_tags({"note": "second"})  # a tag set twice keeps the last value
        run.log_metrics({"loss": 0.5, "acc": 0.75}, step=1)
        run.log_metrics({"loss": 0.25, "acc": 0.875}, step=2)
    info = default_store().get_run(run.id)
    assert info.status == "succeeded"
    assert info.experiment == "store" and info.name == "round trip" and info.dataset == "digits"
    params = {key: decode_param(value) for key, value in info.params.items()}
    assert params == {"lr": 0.003, "optimizer": "adam", "layers": [64, 32], "amp": True}
    assert info.tags == {"owner": "ada", "note": "second"}
    assert default_store().metric_keys(run.id) == ["acc", "loss"]
    assert default_store().latest_metrics(run.id) == {"loss": (2, 0.25), "acc": (2, 0.875)}
    assert [r.id for r in default_store().list_runs()] == [run.id]
    assert default_store().list_runs(status=["failed"]) == []


def test_metric_history_comes_back_in_step_order():
    store = default_store()
    run = Run(default_store(), default_store().create_run({"dataset": "digits"}, status="running"))
    steps = [7, 2, 9, 0, 5, 1, 8, 3, 6, 4]
    for step in steps:
        run.log_metric("loss", step / 10, step=step)
    run.log_metric("loss", float("nan"), step=10)
    run.log_metric("other", 1.0, step=0)
    run.finish()
    history = store.metric_history(run.id, "loss")
    assert len(history) == 11
    assert history.steps.tolist() == list(range(11))
    assert history.values[:10].tolist() == [s / 10 for s in range(10)]
    assert math.isnan(history.values[10])  # NaN survives as NaN, not as an error
    assert (history.times > 0).all()
    assert len(store.metric_history(run.id, "missing")) == 0


def test_list_runs_filters_by_status_and_sweep():
    store = default_store()
    first = default_store().create_run({"dataset": "digits"}, sweep="grid-a")
    second = default_store().create_run({"dataset": "iris"}, sweep="grid-b", status="succeeded")
    assert [r.id for r in store.list_runs()] == [second, first]
    assert [r.id for r in store.list_runs(sweep="grid-a")] == [first]
    assert [r.id for r in store.list_runs(status=["succeeded"])] == [second]
    assert store.status_counts() == {"queued": 1, "succeeded": 1}


def test_delete_run_removes_its_rows_and_files():
    store = default_store()
    run_id, _job_id = store.queue.submit(parse_config({"dataset": "iris", "model": "mlp"}))
    keep = default_store().create_run({"dataset": "wine"})
    run = Run(default_store(), run_id)
    run.log_params({"lr": 0.1})
    run.set_tags({"owner": "ada"})
    run.log_metrics({"loss": 1.0}, step=0)
    checkpoint = settings.run_dir(run_id) / "checkpoints" / "best.safetensors"
    checkpoint.parent.mkdir()
    checkpoint.write_bytes(b"weights")
    run.log_artifact("checkpoint", "best", str(checkpoint.relative_to(settings.home())))
    other = Run(default_store(), keep)
    other.log_metrics({"loss": 2.0}, step=0)
    other.finish()
    run.finish()
    assert store.checkpoint_path(run_id) == checkpoint

    store.delete_run(run_id)

    assert store.get_run(run_id) is None
    for table in (Metric, Param, Tag, Artifact, Job):
        assert _count(table, run_id) == 0, table.__tablename__
    assert not (settings.home() / "runs" / str(run_id)).exists()
    assert store.get_run(keep) is not None
    assert _count(Metric, keep) == 1
    with default_store().session() as s:
        assert s.get(RunRow, keep) is not None


def test_two_stores_at_once_are_two_databases(store_url, tmp_path):
    """A store is bound to its own engine, and so are its queue and explanation cache: what one holds,
    the other does not see."""
    here, there = Store(store_url), Store(f"sqlite:///{tmp_path / 'other.sqlite'}")
    assert here.engine is not there.engine and default_store().url == store_url
    mine = here.create_run({"dataset": "digits"}, experiment="here")
    theirs = there.create_run({"dataset": "iris"}, experiment="there")
    there.set_tags(theirs, {"owner": "ana"})
    there.queue.submit_job("train", {}, theirs)
    there.explanations.save("key", theirs, "saliency", {"seconds": 0.1}, {"values": torch.ones(2)})
    assert [r.experiment for r in here.list_runs()] == ["here"]
    assert [(r.experiment, r.user_tags) for r in there.list_runs()] == [("there", {"owner": "ana"})]
    assert here.queue.counts() == {} and there.queue.counts() == {"queued": 1}
    assert here.explanations.load("key") is None and there.explanations.load("key")[1]["values"].tolist() == [1, 1]
    here.delete_run(mine)
    assert here.count_runs() == 0 and there.count_runs() == 1


def test_a_store_of_its_own_opens_a_new_file_and_names_a_missing_folder(tmp_path):
    """`dlx.Store(url)` as the README shows it; a mistyped folder is named, never created (an empty
    store there would make the user's runs seem gone)."""
    import dlx

    store = dlx.Store(f"sqlite:///{tmp_path}/runs.db")
    run_id = store.create_run({"lr": 0.1}, "script", status="running")
    assert (tmp_path / "runs.db").is_file() and store.get_run(run_id).config == {"lr": 0.1}
    with pytest.raises(dlx.DlxError, match=f"database: the folder {tmp_path}/missing of the SQLite file"):
        dlx.Store(f"sqlite:///{tmp_path}/missing/runs.db")
    assert not (tmp_path / "missing").exists()
