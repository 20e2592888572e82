"""The job queue with real `dlx worker` processes: jobs run once, cancel, crash and get reaped cleanly."""
from __future__ import annotations

import os
import signal
import socket
import threading

import pytest

from dlx import settings
from dlx.config import parse_config
from dlx.jobs import ensure_worker
from dlx.store import default_store
from tests.helpers.jobs import LONG, QUICK, ended, points, running, running_with_metrics
from tests.helpers.processes import start_worker, stop_process, wait_for


def worker_id(process) -> str:
    return f"{socket.gethostname()}:{process.pid}"


def test_submitted_job_runs_to_success_with_metrics_in_the_store(worker):
    store = default_store()
    run_id, job_id = store.queue.submit(parse_config(QUICK))
    job = ended(job_id)
    assert job.status == "succeeded", job.error
    assert job.worker == worker_id(worker)
    assert job.run_id == run_id
    run = store.get_run(run_id)
    assert run.status == "succeeded" and run.job_id == job_id
    assert run.summary["test_acc"] > 0.9
    assert points(run_id) == run.summary["total_steps"]
    assert store.checkpoint_path(run_id, "best") is not None
    log = settings.home() / job.log_path
    assert f"run {run_id}: breast_cancer/mlp" in log.read_text()


@pytest.mark.usefixtures("store_url")  # the queue on SQLite and PostgreSQL
def test_failing_job_reports_the_runs_reason():
    store = default_store()
    run_id, job_id = store.queue.submit(parse_config({**QUICK, "epochs": 5, "optimizer": "sgd", "lr": 10,
                                          "schedule": "constant"}))
    process = start_worker(settings.home())
    try:
        job = ended(job_id)
    finally:
        stop_process(process)
    assert job.status == "failed"
    assert job.error.startswith("loss diverged at step")
    assert store.get_run(run_id).error == job.error
    assert process.returncode == 0  # the job's failure never reached its worker


@pytest.mark.usefixtures("store_url")  # the queue on SQLite and PostgreSQL
def test_racing_claims_take_each_job_exactly_once():
    store = default_store()
    job_ids = [store.queue.submit_job("train", {}) for _ in range(30)]
    claimed: list[tuple[int, str]] = []

    def claim_all(name: str) -> None:
        while (job := store.queue.claim(name, cpu_only=True)) is not None:
            claimed.append((job.id, name))

    threads = [threading.Thread(target=claim_all, args=(f"worker-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(job_id for job_id, _ in claimed) == job_ids
    for job_id, name in claimed:
        assert store.queue.get_job(job_id).worker == name


def test_two_workers_run_each_job_exactly_once():
    store = default_store()
    jobs = [store.queue.submit(parse_config({**QUICK, "seed": seed})) for seed in range(4)]
    workers = [start_worker(settings.home()) for _ in range(2)]
    try:
        finished = [ended(job_id, timeout=240) for _, job_id in jobs]
    finally:
        for process in workers:
            stop_process(process)
    ids = {worker_id(process) for process in workers}
    for (run_id, _), job in zip(jobs, finished):
        assert job.status == "succeeded", job.error
        assert job.worker in ids
        run = store.get_run(run_id)
        losses = store.metric_history(run_id, "train_loss")
        assert len(losses) == run.summary["total_steps"]  # not logged twice
        assert len(set(losses.steps.tolist())) == len(losses)
        assert len(store.artifacts(run_id, "log")) == 1  # started once
        assert (settings.home() / job.log_path).read_text().count(f"run {run_id}: ") == 1


def test_cancel_running_job_ends_cancelled(worker):
    store = default_store()
    run_id, job_id = store.queue.submit(parse_config(LONG))
    running_with_metrics(run_id, job_id)
    assert store.queue.cancel_run(run_id) == "cancelling"
    job = ended(job_id)
    assert job.status == "cancelled"
    run = store.get_run(run_id)
    assert run.status == "cancelled"
    assert run.error == "cancelled by request"
    assert points(run_id) > 0
    assert worker.poll() is None  # the worker carries on
    assert store.queue.cancel_run(run_id) == "finished"


@pytest.mark.usefixtures("store_url")  # the queue on SQLite and PostgreSQL
def test_cancel_queued_job_ends_cancelled_at_once():
    store = default_store()
    run_id, job_id = store.queue.submit(parse_config(QUICK))
    assert store.queue.cancel_run(run_id) == "cancelled"
    assert store.queue.get_job(job_id).status == "cancelled"
    run = store.get_run(run_id)
    assert run.status == "cancelled"
    assert run.error == "cancelled before it started"
    assert store.queue.claim("late-worker", cpu_only=True) is None


def test_job_killed_by_sigkill_fails_and_keeps_its_flushed_metrics(worker):
    store = default_store()
    run_id, job_id = store.queue.submit(parse_config(LONG))
    job = running_with_metrics(run_id, job_id)
    seen = points(run_id)
    os.kill(job.pid, signal.SIGKILL)
    job = ended(job_id)
    assert job.status == "failed"
    assert "SIGKILL" in job.error
    run = store.get_run(run_id)
    assert run.status == "failed" and "SIGKILL" in run.error
    assert points(run_id) >= seen
    assert worker.poll() is None


@pytest.mark.usefixtures("store_url")  # the queue on SQLite and PostgreSQL
def test_job_of_a_dead_worker_is_failed_as_stale(worker, monkeypatch):
    run_id, job_id = default_store().queue.submit(parse_config(LONG))
    job = running_with_metrics(run_id, job_id)
    # The machine goes away: the worker dies, and its job with it (dlx.jobs.lifeline).
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    wait_for(lambda: not running(job.pid), timeout=15, message=f"job process {job.pid} to end")
    seen = points(run_id)
    assert default_store().queue.get_job(job_id).status == "running"  # nobody has noticed yet

    monkeypatch.setenv("DLX_STALE_AFTER", "6")
    queue = default_store().queue
    wait_for(lambda: job_id in queue.reap_stale() or queue.get_job(job_id).status != "running",
             timeout=60, message="the stale job to be reaped")
    job = default_store().queue.get_job(job_id)
    assert job.status == "failed"
    assert job.error.startswith("no heartbeat for 6 s")
    run = default_store().get_run(run_id)
    assert run.status == "failed" and run.error == job.error
    assert points(run_id) == seen
    assert default_store().queue.reap_stale() == []  # reaped once


def test_ensure_worker_starts_one_worker_and_only_one(spawned_workers):
    store = default_store()
    assert ensure_worker(store).state == "started"
    marker = settings.home() / "worker.spawn"
    pid = int(marker.read_text().split()[0])
    spawned_workers.append(pid)
    spawn_record = marker.read_text()

    assert ensure_worker(store).state in ("starting", "alive")  # the first one has not registered yet
    workers = wait_for(lambda: store.workers.alive(), timeout=60, message="the spawned worker to heartbeat")
    assert [w.info["pid"] for w in workers] == [pid]
    assert ensure_worker(store).state == "alive"
    assert marker.read_text() == spawn_record  # nothing else was spawned

    run_id, job_id = store.queue.submit(parse_config(QUICK))
    assert ended(job_id).status == "succeeded"
    assert store.queue.latest_job(run_id).worker.endswith(f":{pid}")
    assert len(store.workers.alive()) == 1
