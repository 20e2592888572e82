"""Prewarmed job processes, with real workers: jobs run in standbys started before them, which a
worker keeps only after a job or a request (the Launch page's), and stops when left unused."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from dlx import settings
from dlx.config import parse_config
from dlx.errors import DlxError
from dlx.jobs import standby
from dlx.jobs.executors import LocalExecutor
from dlx.store import default_store
from tests.helpers.jobs import (
    LONG,
    children,
    ended,
    looped,
    ready_standbys,
    running,
    running_with_metrics,
    wait_ready,
    worker_output,
)
from tests.helpers.processes import start_worker, stop_process, wait_for

DIGITS = {"dataset": "digits", "model": "cnn", "epochs": 1}


def job_log(job) -> str:
    return (settings.home() / job.log_path).read_text()


def test_job_runs_in_a_standby_started_before_it_was_submitted_and_logs_only_its_output(worker, dlx_home):
    store = default_store()
    first_standby = wait_ready(dlx_home)[0]
    run_a, job_a = store.queue.submit(parse_config(DIGITS))
    job = ended(job_a)
    assert job.status == "succeeded", job.error
    assert job.pid == first_standby
    replacement = wait_ready(dlx_home, 2)[1]  # started when the first standby took its job
    run_b, job_b = store.queue.submit(parse_config(DIGITS))
    job_after = ended(job_b)
    assert job_after.status == "succeeded", job_after.error
    assert job_after.pid == replacement

    log_a, log_b = job_log(job), job_log(job_after)
    assert f"run {run_a}: digits/cnn on cpu" in log_a and "test: loss" in log_a
    assert f"run {run_b}: digits/cnn on cpu" in log_b and "test: loss" in log_b
    assert f"run {run_b}:" not in log_a and f"run {run_a}:" not in log_b
    assert "standby" not in log_a + log_b  # a standby's own output goes to the worker's
    assert store.get_run(run_a).summary["test_acc"] > 0.5


def test_cancel_running_job_in_a_standby_ends_cancelled(worker, dlx_home):
    store = default_store()
    standby = wait_ready(dlx_home)[0]
    run_id, job_id = store.queue.submit(parse_config(LONG))
    job = running_with_metrics(run_id, job_id)
    assert job.pid == standby
    assert store.queue.cancel_run(run_id) == "cancelling"
    job = ended(job_id)
    assert job.status == "cancelled"
    assert store.get_run(run_id).status == "cancelled"
    assert not running(standby)
    assert worker.poll() is None


def test_standby_holds_no_database_connection_and_stops_with_its_worker(dlx_home):
    dlx_home.mkdir(parents=True, exist_ok=True)
    process = start_worker(dlx_home)
    standby = wait_ready(dlx_home)[0]
    open_files = [os.readlink(link) for link in Path(f"/proc/{standby}/fd").iterdir()]
    assert not [name for name in open_files if "dlx.sqlite" in name]  # the job opens it, not before
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(process.pid)], capture_output=True,
                              text=True).stdout.split()
    assert str(standby) in children
    stop_process(process)
    assert process.returncode == 0
    assert not [pid for pid in children if running(int(pid))]


def test_standby_of_a_sigkilled_worker_exits_on_its_own(dlx_home):
    dlx_home.mkdir(parents=True, exist_ok=True)
    process = start_worker(dlx_home)
    standby = wait_ready(dlx_home)[0]
    process.send_signal(signal.SIGKILL)
    process.wait()
    wait_for(lambda: not running(standby), timeout=30, message=f"standby {standby} to exit")


def test_standby_that_died_is_reported_and_the_next_job_starts_cold(worker, dlx_home):
    standby = wait_ready(dlx_home)[0]
    os.kill(standby, signal.SIGKILL)
    wait_for(lambda: f"standby pid {standby} exited with code -9" in worker_output(dlx_home),
             timeout=30, message="the worker to notice the dead standby")
    run_id, job_id = default_store().queue.submit(parse_config(DIGITS))
    job = ended(job_id)
    assert job.status == "succeeded", job.error
    assert job.pid != standby
    assert f"job {job_id} starts cold" in worker_output(dlx_home)
    assert f"run {run_id}: digits/cnn on cpu" in job_log(job)


@pytest.mark.parametrize("prewarm", ["2", "0"])
def test_cores_are_split_between_cpu_slots_in_standbys_and_cold_processes(dlx_home, prewarm):
    dlx_home.mkdir(parents=True, exist_ok=True)
    process = start_worker(dlx_home, env={"DLX_PREWARM": prewarm, "DLX_CPU_JOBS": "2"})
    try:
        if prewarm == "2":
            wait_ready(dlx_home, 2)  # one per slot
        run_id, job_id = default_store().queue.submit(parse_config(DIGITS))
        job = ended(job_id)
    finally:
        stop_process(process)
    assert job.status == "succeeded", job.error
    threads = max(1, (os.cpu_count() or 1) // 2)
    assert f"run {run_id}: digits/cnn on cpu ({threads} thread" in job_log(job)
    assert default_store().get_run(run_id).device.startswith(f"cpu ({threads} thread")
    if prewarm == "2":
        assert job.pid in ready_standbys(dlx_home)
    else:
        assert "standby" not in worker_output(dlx_home)


def test_prewarm_setting_caps_standbys_and_a_bad_value_names_the_variable(monkeypatch):
    monkeypatch.delenv("DLX_PREWARM", raising=False)
    assert settings.standby_processes() == 2
    monkeypatch.setenv("DLX_PREWARM", "0")
    assert LocalExecutor().max_standbys == 0
    monkeypatch.setenv("DLX_PREWARM", "off")
    with pytest.raises(DlxError, match=r"DLX_PREWARM: expected a whole number .* got 'off'") as caught:
        settings.standby_processes()
    assert caught.value.field == "DLX_PREWARM"


def test_an_idle_worker_starts_a_standby_only_when_one_is_requested(dlx_home):
    dlx_home.mkdir(parents=True, exist_ok=True)
    process = start_worker(dlx_home, env={"DLX_PREWARM": "1"})
    try:
        looped(process)
        assert children(process) == [] and ready_standbys(dlx_home) == []
        first = wait_ready(dlx_home)[0]
        assert children(process) == [first]
    finally:
        stop_process(process)


def test_a_job_leaves_a_standby_ready_for_the_next_one(dlx_home):
    dlx_home.mkdir(parents=True, exist_ok=True)
    process = start_worker(dlx_home, env={"DLX_PREWARM": "1"})
    try:
        run_id, job_id = default_store().queue.submit(parse_config(DIGITS))
        job = ended(job_id)
        assert job.status == "succeeded", job.error
        assert f"job {job_id} starts cold" in worker_output(dlx_home)  # none was requested before it
        after = wait_for(lambda: ready_standbys(dlx_home), timeout=120, message="a standby after the job")
        assert after[0] != job.pid and children(process) == after
    finally:
        stop_process(process)


def test_a_standby_left_unused_is_stopped_and_not_replaced(dlx_home):
    dlx_home.mkdir(parents=True, exist_ok=True)
    process = start_worker(dlx_home, env={"DLX_PREWARM": "1", "DLX_STANDBY_IDLE": "5"})
    try:
        looped(process, 1)
        standby.request()
        first = wait_for(lambda: children(process), timeout=30, message="a requested standby")[0]
        wait_for(lambda: not running(first), timeout=60, message=f"unused standby {first} to stop")
        assert f"standby pids [{first}] stopped: unused for 5 s" in worker_output(dlx_home)
        looped(process)
        assert children(process) == []
    finally:
        stop_process(process)


def test_standby_idle_setting_names_the_variable(monkeypatch):
    monkeypatch.delenv("DLX_STANDBY_IDLE", raising=False)
    assert settings.standby_idle() == 600
    monkeypatch.setenv("DLX_STANDBY_IDLE", "soon")
    with pytest.raises(DlxError, match="DLX_STANDBY_IDLE: expected a whole number") as caught:
        settings.standby_idle()
    assert caught.value.field == "DLX_STANDBY_IDLE"


# A real standby (`python -m dlx.jobs.standby`) handed one job, as the worker hands it; at exit it writes the
# heavy modules it imported into the job's log (its output once it takes the job), for the test to read.
STANDBY_REPORTING = """
import atexit, importlib, runpy, sys
heavy = lambda: [m for m in importlib.import_module("dlx.jobs.standby").HEAVY if m in sys.modules]
atexit.register(lambda: print("modules:", heavy(), flush=True))
runpy.run_module("dlx.jobs.standby", run_name="__main__", alter_sys=True)
"""


def run_in_standby(config: dict, log: Path) -> tuple[str, str, int]:
    """(the standby's ready line, the job's log, its exit code) for a job of `config` run in a fresh standby."""
    import json
    import sys

    run_id, job_id = default_store().queue.submit(parse_config(config))
    process = subprocess.Popen([sys.executable, "-c", STANDBY_REPORTING], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env={**os.environ, "DLX_PREWARM": "1"})
    ready = process.stdout.readline()
    process.stdin.write(json.dumps({"job_id": job_id, "log_path": str(log), "env": {}}) + "\n")
    process.stdin.close()
    code = process.wait(300)
    assert default_store().get_run(run_id).status == "succeeded", log.read_text()
    return ready, log.read_text(), code


def test_an_image_training_standby_holds_no_captum_or_transformers_and_a_text_job_still_runs(dlx_home, tmp_path):
    dlx_home.mkdir(parents=True, exist_ok=True)
    ready, log, code = run_in_standby(DIGITS, tmp_path / "image.log")
    assert "ready in" in ready and "DLX_STANDBY_PRELOAD=train: torch, sklearn)" in ready
    assert code == 0 and "modules: ['torch', 'sklearn']" in log  # trained without captum or transformers
    text = {"dataset": "sentiment", "model": "transformer", "epochs": 1, "batch_size": 64,
            "model_options": {"layers": 2, "heads": 2, "hidden": 16, "max_length": 32}}
    ready, log, code = run_in_standby(text, tmp_path / "text.log")  # the same preload: it imports the rest
    assert code == 0 and "transformers" in log.rsplit("modules:", 1)[1]


def test_standby_preload_setting_names_the_variable(monkeypatch):
    monkeypatch.setenv("DLX_STANDBY_PRELOAD", "everything")
    with pytest.raises(DlxError, match="DLX_STANDBY_PRELOAD: expected one of train, all, got 'everything'"):
        settings.standby_preload()
    monkeypatch.setenv("DLX_STANDBY_PRELOAD", "ALL")
    assert settings.standby_preload() == "all"
