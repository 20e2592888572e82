"""Faults with real processes: a SIGKILLed worker, a run deleted under its job, racing schema upgrades."""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from dlx import settings
from dlx.config import parse_config
from dlx.store import default_store
from tests.helpers.jobs import LONG, QUICK, ended, running, running_with_metrics, wait_ready
from tests.helpers.processes import start_worker, stop_process, wait_for

ROOT = Path(__file__).resolve().parents[2]


def python(code: str, **kwargs) -> subprocess.Popen:
    """A real Python process running `code`, importing this checkout's dlx."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env, **kwargs)


# -- a killed worker takes its job with it ------------------------------------------------------

@pytest.mark.parametrize("prewarm", ["0", "1"], ids=["cold", "standby"])
@pytest.mark.usefixtures("store_url")
def test_job_of_a_sigkilled_worker_ends_with_it_and_its_run_stays_failed(dlx_home, monkeypatch, prewarm):
    monkeypatch.setenv("DLX_STALE_AFTER", "6")  # above any floor tied to the 2 s heartbeat
    dlx_home.mkdir(parents=True, exist_ok=True)
    process = start_worker(dlx_home, env={"DLX_PREWARM": prewarm})
    try:
        standby = wait_ready(dlx_home)[0] if prewarm != "0" else None
        run_id, job_id = default_store().queue.submit(parse_config(LONG))
        job = running_with_metrics(run_id, job_id)
        if standby is not None:
            assert job.pid == standby
        process.send_signal(signal.SIGKILL)  # the worker only: the job runs in its own session
        process.wait()
        wait_for(lambda: not running(job.pid), timeout=15, message=f"job process {job.pid} to end")
    finally:
        stop_process(process)
    queue = default_store().queue
    wait_for(lambda: job_id in queue.reap_stale() or queue.get_job(job_id).status != "running",
             timeout=60, message="the dead worker's job to be reaped")
    run = default_store().get_run(run_id)
    assert run.status == "failed" and run.error.startswith("no heartbeat")
    assert "test: loss" not in (settings.home() / job.log_path).read_text()  # it never got to finish


def test_watchdog_ends_a_child_whose_parent_died_where_prctl_is_not_used(tmp_path):
    """The portable half of the lifeline: no parent-death signal, only the watchdog thread."""
    pid_file = tmp_path / "child.pid"
    parent = python(f"""
        import os, subprocess, sys
        child = subprocess.Popen([sys.executable, "-c", '''
        import os, time
        from dlx.jobs import lifeline
        lifeline.bind_to_parent(use_prctl=False)
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        time.sleep(600)
        '''], env={{**os.environ, "DLX_LIFELINE_PID": str(os.getpid())}}, start_new_session=True)
        child.wait()
    """)
    try:
        child = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=30,
                             message="the child to bind to its parent"))
        assert running(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        wait_for(lambda: not running(child), timeout=15, message=f"child {child} to end")
    finally:
        stop_process(parent)


def test_next_worker_ends_a_dead_workers_children_but_never_a_reused_pid(dlx_home):
    from dlx.jobs import orphans

    dlx_home.mkdir(parents=True, exist_ok=True)
    dead_worker = python("pass")
    dead_worker.wait()
    # A standby left behind (started by this test, so no lifeline) and an unrelated process
    # that took the pid a dead worker's job once had.
    left_behind = subprocess.Popen([sys.executable, "-u", "-m", "dlx.jobs.standby"], cwd=ROOT,
                                   stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                   env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
    stranger = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        orphans.pids_dir().mkdir(parents=True)
        for pid, started in ((left_behind.pid, orphans.start_time(left_behind.pid)),
                             (stranger.pid, orphans.start_time(stranger.pid))):
            entry = {"pid": pid, "started": started, "host": socket.gethostname(),
                     "worker_pid": dead_worker.pid, "worker_started": 12345}
            (orphans.pids_dir() / f"{socket.gethostname()}-{pid}.json").write_text(json.dumps(entry))

        process = start_worker(dlx_home, env={"DLX_PREWARM": "0"})
        try:
            wait_for(lambda: left_behind.poll() is not None, timeout=60, message="the orphan to be ended")
            wait_for(lambda: not list(orphans.pids_dir().glob("*")), timeout=30,
                     message="the orphans' records to be removed")
            assert left_behind.returncode == -signal.SIGKILL
            assert stranger.poll() is None  # not a dlx job: never signalled
            assert process.poll() is None
        finally:
            stop_process(process)
    finally:
        for child in (left_behind, stranger):
            if child.poll() is None:
                child.kill()
            child.wait()


# -- a run deleted while its job runs -----------------------------------------------------------

@pytest.mark.usefixtures("store_url")
def test_worker_survives_a_run_deleted_while_its_job_runs_and_runs_the_next_job(worker):
    store = default_store()
    run_id, job_id = store.queue.submit(parse_config(LONG))
    job = running_with_metrics(run_id, job_id)
    store.delete_run(run_id)
    assert store.queue.get_job(job_id) is None
    wait_for(lambda: not running(job.pid), timeout=60, message="the deleted run's job process to end")
    next_run, next_job = store.queue.submit(parse_config(QUICK))
    assert ended(next_job).status == "succeeded"
    assert worker.poll() is None


# -- the schema upgrade, from several processes at once -----------------------------------------

OPEN_AT_ONCE = """
    import sys, time
    from pathlib import Path
    from alembic import command  # noqa: F401  (imported before the start line: all open at once)
    from db.engine import get_engine
    Path(sys.argv[1] + ".ready").touch()
    while not Path(sys.argv[2]).exists():
        time.sleep(0.002)
    get_engine()
"""


@pytest.mark.parametrize("round_", range(5))
def test_processes_opening_a_fresh_database_at_once_all_succeed_with_one_schema(tmp_path, round_):
    home, go = tmp_path / "home", tmp_path / "go"
    home.mkdir()
    env = {**os.environ, "DLX_HOME": str(home), "PYTHONPATH": str(ROOT)}
    names = [str(tmp_path / f"p{i}") for i in range(4)]
    processes = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(OPEN_AT_ONCE), name, str(go)],
                                  cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True) for name in names]
    try:
        wait_for(lambda: all(Path(name + ".ready").exists() for name in names) or
                 any(p.poll() is not None for p in processes), timeout=60, message="the processes to be ready")
        go.touch()
        errors = [p.communicate(timeout=60)[1] for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in processes] == [0] * 4, "\n".join(errors)
    engine = create_engine(f"sqlite:///{home / 'dlx.sqlite'}")
    with engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    assert len(versions) == 1
    assert {"runs", "jobs", "metrics", "workers"} <= set(inspect(engine).get_table_names())
    engine.dispose()


# -- the SQLite file deleted or replaced under a live tracker ------------------------------------

LOGS_UNTIL_DELETED = """
    import sys, time
    from pathlib import Path
    from dlx.tracking import start_run
    ready, go = Path(sys.argv[1]), Path(sys.argv[2])
    with start_run(name="doomed", handle_signals=False) as run:
        for step in range(1500):
            run.log_metric("loss", 1.0 / (step + 1), step)
        run.flush()
        ready.touch()
        while not go.exists():
            time.sleep(0.01)
        for step in range(1500, 100_000):
            run.log_metric("loss", 1.0 / (step + 1), step)  # the line that raises
            time.sleep(0.001)
    print("all logged")
"""


def _sqlite_files(database: Path) -> list[Path]:
    return [database.with_name(database.name + suffix) for suffix in ("", "-wal", "-shm")]


def test_a_script_whose_sqlite_file_is_deleted_stops_with_the_error_and_no_new_file(dlx_home, tmp_path):
    dlx_home.mkdir(parents=True)
    database = dlx_home / "dlx.sqlite"
    ready, go = tmp_path / "ready", tmp_path / "go"
    path = tmp_path / "script.py"  # a file, so that the traceback shows the user's line
    path.write_text(textwrap.dedent(LOGS_UNTIL_DELETED))
    script = subprocess.Popen([sys.executable, str(path), str(ready), str(go)], cwd=ROOT, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        wait_for(lambda: ready.exists() or script.poll() is not None, timeout=60, message="1,500 points logged")
        for path in _sqlite_files(database):
            path.unlink(missing_ok=True)
        go.touch()
        out, err = script.communicate(timeout=60)
    finally:
        stop_process(script)
    assert script.returncode != 0 and "all logged" not in out
    assert f"the SQLite file {database} was deleted or replaced" in err
    assert "run.log_metric(\"loss\", 1.0 / (step + 1), step)  # the line that raises" in err  # the user's line
    assert "metric points logged are not written" in err
    assert not database.exists()  # nothing re-created it, schema or empty file


def test_a_tracker_whose_sqlite_file_is_replaced_never_writes_into_the_new_one(dlx_home, tmp_path):
    from dlx.errors import DlxError
    from dlx.store import Store
    from dlx.tracking import Run

    store = default_store()
    database = dlx_home / "dlx.sqlite"
    run = Run(store, store.create_run({}, status="running"), flush_interval=3600)
    for step in range(1500):
        run.log_metric("loss", float(step), step)
    run.flush()
    other = Store(f"sqlite:///{tmp_path / 'other.sqlite'}")  # another store, a run of its own
    other.create_run({}, status="running")
    other.engine.dispose()
    for path in _sqlite_files(database):
        path.unlink(missing_ok=True)
    (tmp_path / "other.sqlite").rename(database)
    for step in range(1500, 1510):
        run.log_metric("loss", float(step), step)
    with pytest.raises(DlxError, match=r"was deleted or replaced .*another file is at that path now.*"
                                       r"10 metric points logged are not written"):
        run.flush()
    with pytest.raises(DlxError, match="deleted or replaced"):
        run.log_metric("loss", 0.0, 1510)  # refused in the caller's line from now on
    with pytest.raises(DlxError, match="deleted or replaced"):
        run.finish()
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM metrics").fetchone() == (0,)
        assert conn.execute("SELECT status FROM runs").fetchall() == [("running",)]  # its own run, untouched
