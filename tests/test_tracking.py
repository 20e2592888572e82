"""The tracking API keeps every point: at the end of a block, on errors, on its timer, on SIGTERM."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError

from db.engine import session
from db.models import Metric
from dlx import store
from dlx.tracking import Run, create_run, start_run
from tests.conftest import wait_for


def stored_points(run_id: int, key: str | None = None) -> int:
    stmt = select(func.count()).select_from(Metric).where(Metric.run_id == run_id)
    if key is not None:
        stmt = stmt.where(Metric.key == key)
    with session() as s:
        return s.scalar(stmt)


def buffered_run(**options) -> Run:
    """A running run whose timer effectively never fires, so only the other flush paths write."""
    return Run(create_run({"dataset": "digits"}, status="running"), **{"flush_interval": 3600.0, **options})


def test_first_points_are_written_at_once_so_pages_draw_them():
    run = buffered_run()
    with run:
        run.log_metrics({"loss": 2.3, "acc": 0.1}, step=0)
        assert stored_points(run.id) == 2  # no wait for the (hour-long) timer
        run.log_series("loss", [2.2, 2.1, 2.0], first_step=1)
        assert stored_points(run.id) == 2  # later points are buffered
    assert store.metric_history(run.id, "loss").steps.tolist() == [0, 1, 2, 3]
    assert store.metric_history(run.id, "loss").values.tolist() == [2.3, 2.2, 2.1, 2.0]


def test_points_are_buffered_and_written_when_the_block_ends():
    run = buffered_run()
    with run:
        for step in range(300):
            run.log_metrics({"loss": 1 / (step + 1), "acc": step / 300, "lr": 0.1}, step=step)
        assert stored_points(run.id) == 3  # only the first step's points: no round trip per point
    assert stored_points(run.id) == 900
    assert store.get_run(run.id).status == "succeeded"
    assert store.metric_history(run.id, "acc").steps.tolist() == list(range(300))


def test_full_buffer_is_written_without_waiting():
    run = buffered_run(flush_size=100)
    with run:
        for step in range(250):
            run.log_metric("loss", 1.0, step=step)
        # the first point at once, then two full buffers; forty-nine still buffered
        assert stored_points(run.id) == 201
    assert stored_points(run.id) == 250


def test_exception_fails_the_run_with_its_text_and_keeps_metrics():
    with pytest.raises(ValueError), start_run(name="boom", handle_signals=False) as run:
        for step in range(50):
            run.log_metric("loss", 0.5, step=step)
        raise ValueError("shapes do not match: 3 vs 4")
    info = store.get_run(run.id)
    assert info.status == "failed"
    assert info.error == "ValueError: shapes do not match: 3 vs 4"
    assert info.ended_at is not None
    assert stored_points(run.id, "loss") == 50


def test_timer_writes_points_before_the_block_ends():
    run = Run(create_run({"dataset": "digits"}, status="running"), flush_interval=0.2)
    with run:
        for step in range(40):
            run.log_metric("loss", 0.1, step=step)
        wait_for(lambda: stored_points(run.id) == 40, timeout=30, message="the timer's flush")
        assert store.get_run(run.id).status == "running"
    assert stored_points(run.id) == 40


def test_failed_write_keeps_points_for_the_next_flush():
    run = buffered_run()
    for step in range(30):
        run.log_metric("loss", 0.5, step=step)
    with session() as s, s.begin():  # the table is briefly unavailable: the write fails
        s.execute(text("ALTER TABLE metrics RENAME TO metrics_away"))
    with pytest.raises(OperationalError):
        run.flush()
    with session() as s, s.begin():
        s.execute(text("ALTER TABLE metrics_away RENAME TO metrics"))
    run.log_metric("loss", 0.25, step=30)
    run.finish()
    assert store.metric_history(run.id, "loss").steps.tolist() == list(range(31))


def run_script(body: str) -> subprocess.Popen:
    """A user script in its own Python process, writing to this test's data directory."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(body)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def test_script_that_raises_fails_its_run_and_keeps_points():
    script = run_script("""
        from dlx.tracking import start_run

        with start_run(name="crashing script") as run:
            print(run.id, flush=True)
            for step in range(1000):
                run.log_metrics({"loss": 1.0 / (step + 1), "acc": 0.5}, step=step)
            raise RuntimeError("the script crashed")
    """)
    out, err = script.communicate(timeout=120)
    assert script.returncode == 1, err
    assert "RuntimeError: the script crashed" in err
    run_id = int(out.split()[0])
    info = store.get_run(run_id)
    assert info.status == "failed"
    assert info.error == "RuntimeError: the script crashed"
    assert stored_points(run_id) == 2000


def test_sigterm_cancels_a_script_run_and_keeps_points():
    script = run_script("""
        import time
        from dlx.tracking import start_run

        with start_run(name="long script") as run:
            for step in range(500):
                run.log_metric("loss", 1.0 / (step + 1), step=step)
            print(run.id, flush=True)
            while True:
                time.sleep(0.05)
    """)
    run_id = int(script.stdout.readline())
    script.send_signal(signal.SIGTERM)
    _, err = script.communicate(timeout=60)
    assert script.returncode != 0
    assert "Cancelled" in err
    info = store.get_run(run_id)
    assert info.status == "cancelled"
    assert info.error == "cancelled by request"
    assert stored_points(run_id) == 500
    assert store.metric_history(run_id, "loss").steps.tolist() == list(range(500))


def test_script_that_never_closes_its_run_keeps_points_at_exit():
    script = run_script("""
        from dlx.tracking import start_run

        run = start_run(name="forgetful script")
        print(run.id, flush=True)
        for step in range(120):
            run.log_metric("loss", 0.5, step=step)
    """)
    out, err = script.communicate(timeout=120)
    assert script.returncode == 0, err
    assert stored_points(int(out)) == 120
