"""Runs tracked from users' own scripts (no job row): they heartbeat, a dead one is failed by
whoever notices first (a worker, the app, the CLI), and they can be ended and deleted."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from db.models import Metric, utcnow
from db.models import Run as RunRow
from dlx.store import default_store
from tests.helpers.processes import start_worker, stop_process, wait_for

APP = Path(__file__).resolve().parents[2] / "streamlit_app.py"
STALE_AFTER = "6"  # the shortest allowed: three heartbeats
LOOPING = """
    import time
    from dlx.tracking import start_run

    with start_run(name="looping script") as run:
        for step in range(50):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.flush()
        print(run.id, flush=True)
        while True:
            time.sleep(0.05)
"""


@pytest.fixture(autouse=True)
def short_stale_window(monkeypatch):
    monkeypatch.setenv("DLX_STALE_AFTER", STALE_AFTER)
    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "0")


@pytest.fixture
def scripts():
    """Script processes started by the test; any still alive at the end is killed."""
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate()


def start_script(scripts: list, body: str) -> tuple[subprocess.Popen, int]:
    """A user's script in its own Python process; returns it and the id of the run it printed."""
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(body)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    scripts.append(process)
    line = process.stdout.readline()
    assert line.strip().isdigit(), process.communicate()[1]
    return process, int(line)


def killed_script_run(scripts: list) -> tuple[int, int]:
    """A script's run whose process was SIGKILLed: (run id, pid)."""
    process, run_id = start_script(scripts, LOOPING)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert default_store().get_run(run_id).status == "running"  # nobody has noticed yet
    return run_id, process.pid


def run_row(run_id: int) -> RunRow:
    with default_store().session() as s:
        return s.get(RunRow, run_id)


def wait_until_stale(run_id: int) -> None:
    """Until the run's last heartbeat is older than the stale window."""
    window = timedelta(seconds=float(STALE_AFTER) + 0.5)
    wait_for(lambda: utcnow() - run_row(run_id).heartbeat_at > window, timeout=30,
             message="the heartbeat to go stale")


def points(run_id: int) -> int:
    with default_store().session() as s:
        return s.scalar(select(func.count()).select_from(Metric).where(Metric.run_id == run_id))


def dlx(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlx.cli", *args], capture_output=True, text=True,
                          input=stdin, timeout=120, env=dict(os.environ))


def assert_failed_as_dead(run_id: int, pid: int) -> None:
    info = default_store().get_run(run_id)
    assert info.status == "failed"
    assert f"its process ({pid}@" in info.error and "stopped heartbeating at" in info.error
    assert info.ended_at is not None
    assert points(run_id) == 50  # what it logged before dying stays


# -- a dead script's run is failed by whoever notices first ---------------------------------------
@pytest.mark.usefixtures("store_url")
def test_a_killed_scripts_run_is_failed_by_a_worker(scripts, dlx_home):
    run_id, pid = killed_script_run(scripts)
    worker = start_worker(dlx_home, env={"DLX_STALE_AFTER": STALE_AFTER})
    try:
        wait_for(lambda: default_store().get_run(run_id).status != "running", timeout=90,
                 message="the worker to fail the dead script's run")
        assert worker.poll() is None
    finally:
        stop_process(worker)
    assert_failed_as_dead(run_id, pid)


def test_a_killed_scripts_run_is_failed_by_dlx_runs(scripts):
    run_id, pid = killed_script_run(scripts)
    wait_until_stale(run_id)
    listed = dlx("runs")
    assert listed.returncode == 0, listed.stderr
    assert f"{run_id:>5}  failed" in listed.stdout
    assert_failed_as_dead(run_id, pid)


def test_a_killed_scripts_run_is_failed_when_the_app_loads(scripts):
    run_id, pid = killed_script_run(scripts)
    wait_until_stale(run_id)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["run"] = str(run_id)
    at.run()
    at.switch_page("pages/runs.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert_failed_as_dead(run_id, pid)
    assert "failed" in at.title[0].value


def test_a_live_script_keeps_its_run_past_the_stale_window(scripts):
    store = default_store()
    process, run_id = start_script(scripts, LOOPING)
    started = run_row(run_id).started_at
    wait_for(lambda: utcnow() - started > timedelta(seconds=float(STALE_AFTER) + 1), timeout=30,
             message="the stale window to pass")
    store.queue.reap_stale()
    assert store.get_run(run_id).status == "running"
    assert run_row(run_id).owner == f"{process.pid}@{os.uname().nodename}"


# -- ending and deleting a script's run -----------------------------------------------------------
@pytest.mark.usefixtures("store_url")
def test_dlx_cancel_ends_a_scripts_run_as_cancelled(scripts):
    process, run_id = start_script(scripts, LOOPING)
    ended = dlx("cancel", str(run_id))
    assert ended.returncode == 0, ended.stderr
    assert f"run {run_id}: cancelling" in ended.stdout
    _, err = process.communicate(timeout=60)
    assert "Cancelled" in err
    info = default_store().get_run(run_id)
    assert (info.status, info.error) == ("cancelled", "cancelled by request")
    assert points(run_id) == 50
    assert dlx("cancel", str(run_id)).stdout.strip() == f"run {run_id}: finished"


def test_the_end_button_stops_a_script_that_never_closes_its_run(scripts):
    process, run_id = start_script(scripts, """
        import time
        from dlx.tracking import start_run

        run = start_run(name="open-ended script", handle_signals=False)
        run.log_metric("loss", 0.5, step=0)
        print(run.id, flush=True)
        while True:
            time.sleep(0.05)
    """)
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params["run"] = str(run_id)
    at.run()
    at.switch_page("pages/runs.py").run()
    button = at.button(key="runs.cancel")
    assert button.label == "End"
    button.click().run()
    assert not at.exception, [e.value for e in at.exception]
    process.communicate(timeout=60)
    info = default_store().get_run(run_id)
    assert (info.status, info.error) == ("cancelled", "cancelled by request")
    assert points(run_id) == 1


def test_cancel_of_a_run_that_does_not_exist_names_it():
    from dlx.errors import DlxError

    with pytest.raises(DlxError, match="no run #404"):
        default_store().queue.cancel_run(404)


def test_dlx_delete_asks_then_deletes_a_scripts_run(scripts):
    store = default_store()
    process, run_id = start_script(scripts, LOOPING)
    kept = dlx("delete", str(run_id), stdin="n\n")
    assert kept.returncode == 1 and "still active" in kept.stdout
    assert store.get_run(run_id).status == "running"
    deleted = dlx("delete", str(run_id), "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert f"deleted run {run_id}" in deleted.stdout
    process.communicate(timeout=60)  # asked to stop before its rows went
    assert process.returncode != 0
    assert store.get_run(run_id) is None and points(run_id) == 0
    missing = dlx("delete", str(run_id), "--yes")
    assert missing.returncode == 2 and f"no run #{run_id}" in missing.stderr


# -- a script that never closes its run: the run ends as the script did ----------------------------
@pytest.mark.parametrize("ending, status, error", [
    ("pass", "succeeded", None),
    ("raise RuntimeError('the script crashed')", "failed", "RuntimeError: the script crashed"),
])
def test_an_unclosed_run_ends_as_its_script_ended(scripts, ending, status, error):
    process, run_id = start_script(scripts, f"""
        from dlx.tracking import start_run

        run = start_run(name="forgetful script")
        print(run.id, flush=True)
        for step in range(20):
            run.log_metric("loss", 0.5, step=step)
        {ending}
    """)
    process.communicate(timeout=60)
    info = default_store().get_run(run_id)
    assert (info.status, info.error) == (status, error)
    assert points(run_id) == 20


@pytest.mark.usefixtures("store_url")
def test_a_script_whose_run_is_deleted_under_it_drops_its_points_and_stops(scripts):
    store = default_store()
    process, run_id = start_script(scripts, """
        import time
        from dlx.tracking import start_run

        with start_run(name="busy script") as run:
            run.log_metric("loss", 1.0, step=0)
            print(run.id, flush=True)
            for step in range(1, 10**9):
                run.log_metric("loss", 1.0 / step, step=step)
                time.sleep(0.01)
    """)
    store.delete_run(run_id, wait=0)  # gone before the script could react to the stop request
    _, err = process.communicate(timeout=60)  # its flushes are refused, its heartbeat finds no run
    assert "Cancelled" in err
    assert store.get_run(run_id) is None and points(run_id) == 0
