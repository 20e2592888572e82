"""The `ray` executor against a real Ray head on loopback (`ray start --head`) and a real `dlx worker`.

One head serves the module (starting it costs seconds); each test has its own data directory and
worker. Jobs run as Ray tasks, log to the same store, cancel, and fail with Ray's reason when Ray
loses their task.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from dlx import settings
from dlx.config import parse_config
from dlx.errors import DlxError
from dlx.jobs.executors import get_executor
from dlx.store import default_store
from tests.helpers.jobs import LONG, ended, points
from tests.helpers.processes import start_worker, stop_process, wait_for
from tests.helpers.ray_head import ray_head as head_on_loopback
from tests.helpers.ray_head import ray_node
from tests.helpers.ray_head import stop as stop_node

pytest.importorskip("ray", reason="ray is not installed (requirements.txt pins it): the ray executor cannot run")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """A two-CPU Ray head on loopback; its address."""
    log = tmp_path_factory.mktemp("raylog") / "head.log"
    with head_on_loopback(tmp_path_factory.mktemp("ray"), log=log) as address:
        yield address


@pytest.fixture
def ray_worker(dlx_home, ray_head):
    dlx_home.mkdir(parents=True, exist_ok=True)
    process = start_worker(dlx_home, env={"DLX_EXECUTOR": "ray", "DLX_RAY_ADDRESS": ray_head,
                                          "DLX_PREWARM": "0"})
    store = default_store()
    wait_for(lambda: any(w.id.endswith(f":{process.pid}") for w in store.workers.alive()) or process.poll() is not None,
             timeout=120, message="the ray worker to register")
    assert process.poll() is None, "the worker exited; see its log under DLX_HOME"
    yield process
    stop_process(process, timeout=40)


def job_process(job_id: int) -> int | None:
    """The pid of this test's job's entry process (the Ray task's child), if it runs: the job id and
    DLX_HOME both match, since other tests on this machine may run a job with the same id."""
    home = f"DLX_HOME={settings.home()}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
                if args[-2:] != [str(job_id).encode(), b""] or b"dlx.jobs.entry" not in args:
                    continue
                if home in (entry / "environ").read_bytes().split(b"\0"):
                    return int(entry.name)
            except OSError:
                continue
    return None


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def assert_complete_series(run_id: int, epochs: int | None) -> None:
    """Every step's loss and every epoch's metrics once each, with nothing missing in between."""
    store = default_store()
    losses = store.metric_history(run_id, "train_loss")
    assert losses.steps.tolist() == list(range(1, len(losses) + 1))
    for key in ("epoch", "train_loss_epoch", "train_acc", "val_loss", "val_acc"):
        history = store.metric_history(run_id, key)
        assert len(set(history.steps.tolist())) == len(history), key
        if epochs is not None:
            assert len(history) == epochs, key
    epoch_numbers = store.metric_history(run_id, "epoch").values.tolist()
    assert epoch_numbers == list(range(1, len(epoch_numbers) + 1))


def test_ray_runs_two_jobs_to_success_and_cancels_a_third(ray_worker):
    store = default_store()
    quick = [({"dataset": "iris", "model": "mlp", "epochs": 3}, 3),
             ({"dataset": "breast_cancer", "model": "mlp", "epochs": 2}, 2)]
    jobs = [(store.queue.submit(parse_config(values)), epochs) for values, epochs in quick]
    long_run, long_job = store.queue.submit(parse_config(LONG))
    for (run_id, job_id), epochs in jobs:
        job = ended(job_id, timeout=180)
        assert job.status == "succeeded", job.error
        run = store.get_run(run_id)
        assert run.status == "succeeded"
        assert len(store.metric_history(run_id, "train_loss")) == run.summary["total_steps"]
        assert_complete_series(run_id, epochs)
        assert len(store.metric_history(run_id, "test_acc")) == 1
        assert store.checkpoint_path(run_id, "best") is not None  # written by the task, on the shared home
    wait_for(lambda: points(long_run) > 0, timeout=120, message="the long job's first metrics")
    task = job_process(long_job)
    assert task is not None  # the single-node cluster runs it here
    assert store.queue.cancel_run(long_run) == "cancelling"
    job = ended(long_job)
    assert job.status == "cancelled"
    assert store.get_run(long_run).status == "cancelled"
    wait_for(lambda: job_process(long_job) is None, timeout=30, message="the cancelled task's process to end")
    assert points(long_run) > 0
    assert_complete_series(long_run, None)
    info = next(w.info for w in store.workers.alive() if w.id.endswith(f":{ray_worker.pid}"))
    assert info["executor"] == "ray" and info["nodes"] == 1 and info["cpu_slots"] == 2 and info["gpus"] == 0
    assert ray_worker.poll() is None


def test_a_ray_task_killed_from_outside_fails_its_run_with_rays_reason(ray_worker):
    store = default_store()
    run_id, job_id = store.queue.submit(parse_config(LONG))
    wait_for(lambda: points(run_id) > 0, timeout=120, message="the job's first metrics")
    task = wait_for(lambda: job_process(job_id), message="the job's process")
    os.kill(parent_of(task), signal.SIGKILL)  # the Ray worker process that runs the task
    job = ended(job_id, timeout=120)
    assert job.status == "failed"
    assert "Ray lost the job's task" in job.error, job.error
    run = store.get_run(run_id)
    assert run.status == "failed" and "Ray lost" in run.error
    wait_for(lambda: job_process(job_id) is None, timeout=30, message="the job process to end with its task")
    assert ray_worker.poll() is None


def test_the_ray_executor_without_an_address_names_the_variable(monkeypatch):
    monkeypatch.delenv("DLX_RAY_ADDRESS", raising=False)
    with pytest.raises(DlxError, match="DLX_RAY_ADDRESS") as raised:
        get_executor("ray")  # never a private cluster started behind the user's back
    assert raised.value.field == "DLX_RAY_ADDRESS"


def test_a_ray_job_ends_with_its_worker_and_its_run_fails_as_stale(ray_worker, monkeypatch):
    """No PR_SET_PDEATHSIG across Ray: Ray kills a dead driver's tasks, the lifeline the task's child."""
    run_id, job_id = default_store().queue.submit(parse_config(LONG))
    wait_for(lambda: points(run_id) > 0, timeout=120, message="the job's first metrics")
    wait_for(lambda: job_process(job_id), message="the job's process")
    os.killpg(ray_worker.pid, signal.SIGKILL)
    ray_worker.wait()
    wait_for(lambda: job_process(job_id) is None, timeout=60, message="the job to end with its worker")
    monkeypatch.setenv("DLX_STALE_AFTER", "6")
    wait_for(lambda: job_id in default_store().queue.reap_stale(), timeout=60, message="the reaper to fail the job")
    assert default_store().get_run(run_id).status == "failed" and "no heartbeat" in default_store().get_run(run_id).error


@pytest.fixture(scope="module")
def jobless_head(tmp_path_factory):
    """A head with no CPU for jobs: every job lands on a node that joins it; its address."""
    log = tmp_path_factory.mktemp("raylog") / "jobless-head.log"
    with head_on_loopback(tmp_path_factory.mktemp("ray"), cpus=0, log=log) as address:
        yield address


def test_a_lost_node_fails_its_run_with_rays_reason_and_the_worker_serves_on(dlx_home, jobless_head,
                                                                           tmp_path_factory):
    """A machine dies: the node that runs the job goes at once, every process of it (its group)."""
    def join() -> subprocess.Popen:  # a short temp dir: Ray's socket paths must fit in 107 bytes
        temp = tmp_path_factory.mktemp("node")
        return ray_node(jobless_head, temp, cpus=1, log=temp / "node.log")

    node = join()
    dlx_home.mkdir(parents=True, exist_ok=True)
    worker = start_worker(dlx_home, env={"DLX_EXECUTOR": "ray", "DLX_RAY_ADDRESS": jobless_head,
                                         "DLX_PREWARM": "0"})
    store = default_store()
    try:
        def info() -> dict:
            return next((w.info for w in store.workers.alive() if w.id.endswith(f":{worker.pid}")), {})

        wait_for(lambda: info().get("nodes") == 2 or worker.poll() is not None or node.poll() is not None,
                 timeout=120, message="the worker to see the joined node")
        assert worker.poll() is None and node.poll() is None, "the worker or the node exited; see their logs"
        run_id, job_id = store.queue.submit(parse_config(LONG))
        wait_for(lambda: points(run_id) > 0, timeout=120, message="the job's first metrics on the node")
        os.killpg(node.pid, signal.SIGKILL)
        node.wait()
        job = ended(job_id, timeout=180)
        assert job.status == "failed" and job.ended_at is not None
        assert "Ray lost the job's task" in job.error and "node" in job.error.lower(), job.error
        run = store.get_run(run_id)
        assert run.status == "failed" and run.error == job.error
        assert points(run_id) > 0  # what it logged before the loss stays
        assert_complete_series(run_id, None)
        wait_for(lambda: job_process(job_id) is None, timeout=60, message="the lost node's job process to end")
        wait_for(lambda: info().get("nodes") == 1, timeout=120, message="the worker's heartbeat to count the loss")

        node = join()
        run_id, job_id = store.queue.submit(parse_config({"dataset": "iris", "model": "mlp", "epochs": 1}))
        job = ended(job_id, timeout=180)
        assert job.status == "succeeded", job.error
        assert_complete_series(run_id, 1)
        assert worker.poll() is None
    finally:
        stop_process(worker, timeout=40)
        stop_node(node)


def test_a_search_runs_its_driver_and_trials_on_ray(ray_worker, capsys):
    from dlx.cli import main

    code = main(["search", "--dataset", "iris", "--model", "mlp", "--param", "lr=0.003,0.01", "--set", "epochs=2",
                 "--sampler", "grid", "--objective", "val_acc", "--direction", "maximize", "--name", "on-ray",
                 "--no-worker", "--json"])
    assert code == 0
    found = json.loads(capsys.readouterr().out)
    assert [t["state"] for t in found["trials"]] == ["succeeded", "succeeded"]  # the grid's size
    store = default_store()
    assert sorted(store.get_run(t["run"]).config["lr"] for t in found["trials"]) == [0.003, 0.01]
    assert found["best"]["value"] == max(t["value"] for t in found["trials"])
    assert ray_worker.poll() is None
