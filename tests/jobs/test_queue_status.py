"""Statuses only move forward, deleting a running run stops its job first, and DLX_STALE_AFTER is checked."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from db.models import Job, utcnow
from dlx import settings
from dlx.config import parse_config
from dlx.errors import DlxError
from dlx.store import FINAL_STATES, default_store
from tests.helpers.processes import start_worker, stop_process, wait_for

pytestmark = pytest.mark.usefixtures("store_url")  # every test on SQLite and PostgreSQL

QUICK = {"dataset": "breast_cancer", "model": "mlp", "epochs": 2}
LONG = {"dataset": "digits", "model": "cnn", "epochs": 500}  # runs until the test stops it


# -- forward only ---------------------------------------------------------------------------------
def test_a_finished_job_and_its_run_keep_their_final_status():
    store = default_store()
    run_id, job_id = store.queue.submit(parse_config(QUICK))
    store.queue.claim("test-worker", cpu_only=True)
    store.queue.finish_job(job_id, "failed", "no heartbeat: reaped")
    store.queue.finish_job(job_id, "succeeded")  # the orphaned process ending late changes nothing
    job, run = store.queue.get_job(job_id), store.get_run(run_id)
    assert (job.status, job.error) == ("failed", "no heartbeat: reaped")
    assert (run.status, run.error) == ("failed", "no heartbeat: reaped")
    assert store.queue.cancel_job(job_id) == "finished" and store.queue.cancel_run(run_id) == "finished"
    assert not store.queue.get_job(job_id).cancel_requested


def test_a_late_heartbeat_saves_a_job_from_the_reaper():
    """The reaper's UPDATE re-checks the heartbeat: a job that beat since the cut-off is not failed."""
    store = default_store()
    _, job_id = store.queue.submit(parse_config(QUICK))
    store.queue.claim("test-worker", cpu_only=True)
    long_ago = utcnow().replace(year=2000)
    assert not store.queue.finish_job(job_id, "failed", "stale", silent_since=long_ago)
    assert store.queue.get_job(job_id).status == "running"


def test_finishing_a_job_whose_row_was_deleted_is_no_error():
    store = default_store()
    run_id, job_id = store.queue.submit(parse_config(QUICK))
    store.delete_run(run_id)
    assert not store.queue.finish_job(job_id, "cancelled", "cancelled by request")


# -- deleting a run whose job runs ----------------------------------------------------------------
def test_deleting_a_run_while_its_job_runs_stops_the_job_and_the_worker_carries_on(worker):
    store = default_store()
    run_id, job_id = store.queue.submit(parse_config(LONG))
    job = wait_for(lambda: (j := store.queue.get_job(job_id)).pid and store.latest_metrics(run_id) and j,
                   timeout=120, message="the job to log metrics")
    store.delete_run(run_id)
    assert store.get_run(run_id) is None and store.queue.get_job(job_id) is None
    with default_store().session() as s:
        assert s.scalar(select(Job.id).where(Job.run_id == run_id)) is None
    # the job was cancelled before its rows went: the worker ended it and is still serving
    next_run, next_job = store.queue.submit(parse_config(QUICK))
    done = wait_for(lambda: (j := store.queue.get_job(next_job)).status in FINAL_STATES and j, timeout=120,
                    message="the worker to run the next job")
    assert done.status == "succeeded", done.error
    assert worker.poll() is None
    assert job.pid != done.pid


# -- DLX_STALE_AFTER ------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, expected", [("", 30.0), ("6", 6.0), (" 45.5 ", 45.5)])
def test_stale_after_reads_seconds(monkeypatch, raw, expected):
    monkeypatch.setenv("DLX_STALE_AFTER", raw)
    assert settings.stale_after() == expected


@pytest.mark.parametrize("raw, reason", [("abc", "expected a number of seconds"), ("nan", "expected a number"),
                                         ("inf", "expected a number"), ("1", "too short"),
                                         ("5.9", "at least 6 s"), ("-30", "too short")])
def test_stale_after_refuses_bad_values_naming_the_variable(monkeypatch, raw, reason):
    monkeypatch.setenv("DLX_STALE_AFTER", raw)
    with pytest.raises(DlxError, match=reason) as err:
        settings.stale_after()
    assert err.value.field == "DLX_STALE_AFTER" and "DLX_STALE_AFTER" in str(err.value)


def test_a_stale_window_shorter_than_the_heartbeat_never_fails_a_healthy_job(monkeypatch):
    _, job_id = default_store().queue.submit(parse_config(QUICK))
    beat = default_store().queue.claim("test-worker", cpu_only=True).heartbeat_at
    monkeypatch.setenv("DLX_STALE_AFTER", "1")
    wait_for(lambda: (utcnow() - beat).total_seconds() > 1.5, timeout=10, message="1.5 s to pass")
    with pytest.raises(DlxError, match="DLX_STALE_AFTER"):
        default_store().queue.reap_stale()
    assert default_store().queue.get_job(job_id).status == "running"


def test_a_worker_refuses_a_bad_stale_window_with_a_clear_message(dlx_home):
    dlx_home.mkdir(parents=True, exist_ok=True)
    _, job_id = default_store().queue.submit(parse_config(QUICK))
    process = start_worker(dlx_home, env={"DLX_STALE_AFTER": "abc"})
    try:
        code = process.wait(timeout=120)
    finally:
        stop_process(process)
    log = next(dlx_home.glob("worker-*.log")).read_text()
    assert code == 2, log
    assert "error: DLX_STALE_AFTER: expected a number of seconds, got 'abc'" in log
    assert "Traceback" not in log
    assert default_store().queue.get_job(job_id).status == "queued"  # nothing was claimed and left behind
