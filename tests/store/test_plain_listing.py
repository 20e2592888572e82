"""`dlx runs`' plain read of a SQLite store (dlx.store.plain) returns what the Store returns, field for field,
and leaves to the Store what it must do itself: a stale run to mark failed, a schema to upgrade, another
database."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text, update

from db.models import Run as RunRow
from db.models import utcnow
from dlx import settings
from dlx.store import default_store
from dlx.store.plain import newest_runs
from dlx.tracking import Run


@pytest.fixture
def varied_runs() -> list[int]:
    """Runs in several states with params, tags, final metrics, a name, a sweep, a job, an error, an end."""
    store = default_store()
    ids = []
    for i, state in enumerate(["succeeded", "failed", "cancelled", "succeeded", "succeeded"]):
        run = Run(store, store.create_run({"dataset": "digits", "model": "mlp", "lr": 0.1 * i}, status="running",
                                          name=f"run {i}" if i % 2 else None, sweep="s1" if i > 2 else None))
        run.log_params({"lr": 0.1 * i, "optimizer": "adam", "hidden": [64, i]})
        run.log_metric("test_acc", 0.5 + i / 10, 3)
        run.log_metric("loss", 1.0 / (i + 1), 2)
        run.finish(state, error="it broke" if state == "failed" else None)
        ids.append(run.id)
    store.set_tags(ids[1], {"team": "vision"})
    store.set_note(ids[2], "a note")
    store.queue.submit_job("train", {}, ids[3])  # its latest training job's id is shown
    ids.append(store.create_run({"dataset": "iris", "model": "logreg"}))  # queued, nothing logged
    return ids


@pytest.mark.parametrize("status, limit, offset", [(None, 50, 0), (None, 2, 1), (["succeeded"], None, 0),
                                                   (["failed", "queued"], 10, 0), (None, 0, 0), (None, 5, 20)])
def test_the_plain_page_is_the_stores_page(varied_runs, status, limit, offset):
    store = default_store()
    plain = newest_runs(settings.database_url(), status, limit, offset, bound=10_000)
    assert plain is not None
    runs, total = plain
    assert runs == store.list_runs(status=status, limit=limit, offset=offset)  # every field, in order
    assert total == store.count_runs(status=status, bound=10_000)


def test_the_count_stops_past_its_bound(varied_runs):
    _runs, total = newest_runs(settings.database_url(), None, 1, 0, bound=3) or ([], -1)
    assert total == 4 == default_store().count_runs(bound=3)  # bound + 1: "more than 3"


def test_a_stale_run_is_left_to_the_store_which_marks_it_failed(varied_runs):
    store = default_store()
    run = Run(store, store.create_run({"dataset": "digits", "model": "mlp"}, status="running"))
    long_ago = utcnow() - timedelta(seconds=settings.stale_after() + 60)
    with store.engine.begin() as conn:
        conn.execute(update(RunRow).where(RunRow.id == run.id).values(heartbeat_at=long_ago))
    assert newest_runs(settings.database_url(), None, 50, 0, bound=10_000) is None
    store.reap_stale_for_reading()
    assert store.get_run(run.id).status == "failed"
    assert newest_runs(settings.database_url(), None, 50, 0, bound=10_000) is not None  # nothing stale now


def test_a_schema_to_upgrade_another_database_or_a_missing_file_is_left_to_the_store(varied_runs, tmp_path):
    url = settings.database_url()
    assert newest_runs(url, None, -1, 0, bound=10) is None  # the Store names the field
    assert newest_runs("postgresql://u:p@localhost/x", None, 5, 0, bound=10) is None
    assert newest_runs(f"sqlite:///{tmp_path / 'absent.sqlite'}", None, 5, 0, bound=10) is None
    assert not (tmp_path / "absent.sqlite").exists()  # never created by reading
    with default_store().engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    assert newest_runs(url, None, 5, 0, bound=10) is None
