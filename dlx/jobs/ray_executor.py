"""The `ray` executor: each job runs as a Ray task on an existing cluster (`DLX_RAY_ADDRESS`).

The task starts the same entry point as the local executor, `python -u -m dlx.jobs.entry <job_id>`,
in a child process of the Ray worker, output appended to the job's log under DLX_HOME; so every
node must see the same DLX_HOME (a shared file system) and reach the same database. The child is
bound to the Ray worker process (`dlx.jobs.lifeline`); the Ray worker is bound to this dlx worker
by Ray itself (a driver's tasks are killed when the driver goes), so a job ends with its worker,
and the job heartbeat's reaper fails its run. Cancelling is staged as in the local executor:
`terminate` interrupts the task, which SIGTERMs the job (it flushes and ends cancelled); `kill`
force-cancels it (Ray kills the worker process, the lifeline the job).

Ray is imported only here, and only when the executor is built: the app and a local worker never
load it.
"""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlx import settings
from dlx.errors import DlxError
from dlx.jobs import lifeline

# Variables the worker decides for itself or that would bind the job to the wrong process.
NOT_FORWARDED = {"DLX_EXECUTOR", "DLX_RAY_ADDRESS", lifeline.ENV}
CHILD_WAIT = 0.5  # seconds between the task's looks at its job (a cancel interrupts it in between)


def run_job(job_id: int, log_path: str) -> int:
    """The Ray task: run the job's entry point in a child bound to this process; return its exit code."""
    with open(log_path, "ab", buffering=0) as log:
        child = subprocess.Popen([sys.executable, "-u", "-m", "dlx.jobs.entry", str(job_id)],
                                 stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 env={**os.environ, lifeline.ENV: str(os.getpid())}, start_new_session=True)
        try:
            while True:  # a timed wait, so that ray.cancel's KeyboardInterrupt lands between two looks
                try:
                    return child.wait(CHILD_WAIT)
                except subprocess.TimeoutExpired:
                    continue
        except KeyboardInterrupt:  # ray.cancel(force=False): stop the job as SIGTERM does locally
            os.killpg(child.pid, signal.SIGTERM)
            return child.wait()


@dataclass
class Cluster:
    """What the cluster offers, as the worker counts its slots and reports it in its heartbeat."""

    nodes: int
    cpus: int
    gpus: int


class RayHandle:
    """A submitted task. `failure` says why, in Ray's words, when Ray lost the task (not the job)."""

    def __init__(self, ray: Any, ref: Any):
        self._ray, self._ref = ray, ref
        self.pid: int | None = None  # the task's process lives on some node; Ray knows it, not us
        self.failure: str | None = None

    def poll(self) -> int | None:
        ready, _ = self._ray.wait([self._ref], timeout=0)
        if not ready:
            return None
        try:
            return self._ray.get(self._ref)
        except self._ray.exceptions.TaskCancelledError:
            return -signal.SIGTERM
        except self._ray.exceptions.RayError as err:  # WorkerCrashedError, NodeDiedError, ...
            first_line = next((line for line in str(err).splitlines() if line.strip()), "")
            self.failure = f"Ray lost the job's task ({type(err).__name__}): {first_line}"
            return 1

    def terminate(self) -> None:
        self._cancel(force=False)

    def kill(self) -> None:
        self._cancel(force=True)

    def _cancel(self, force: bool) -> None:
        try:
            self._ray.cancel(self._ref, force=force)
        except ValueError:  # the task ended meanwhile
            pass


class RayExecutor:
    """Submits each job as a Ray task with the CPUs and GPUs it asks for; `keep_ready` has nothing to do."""

    name = "ray"

    @staticmethod
    def check_settings() -> None:
        """Refuse, before a job is queued, what would stop this executor from starting: no cluster
        address (`DLX_RAY_ADDRESS`), or no Ray installed; looked up without importing Ray."""
        settings.ray_address()
        if importlib.util.find_spec("ray") is None:
            raise DlxError("DLX_EXECUTOR: ray is not installed in this Python environment; install it "
                           "(pip install 'ray[default]') or unset DLX_EXECUTOR to run jobs locally",
                           field="DLX_EXECUTOR")

    def __init__(self, address: str | None = None):
        import ray

        self._ray = ray
        ray.init(address=address or settings.ray_address(), log_to_driver=False,
                 logging_level="WARNING",  # type: ignore[arg-type]  # typed int; takes a name too (default "info")
                 configure_logging=True)
        self._task = ray.remote(max_retries=0)(run_job)  # a job is never rerun behind the user's back

    def start(self, job_id: int, log_path: Path, env: dict[str, str]) -> RayHandle:
        gpu = bool(env.get("DLX_ASSIGNED_GPU"))
        env_vars = {**{k: v for k, v in os.environ.items() if k.startswith("DLX_") and k not in NOT_FORWARDED},
                    "DLX_HOME": str(settings.home()), "DLX_DATABASE_URL": settings.database_url(), **env}
        if gpu:  # Ray makes the GPU it assigns the only visible one
            env_vars.pop("CUDA_VISIBLE_DEVICES", None)
        cpus = 1 if gpu else int(env.get("OMP_NUM_THREADS") or 1)
        task = self._task.options(num_cpus=cpus, num_gpus=1 if gpu else 0,
                                  runtime_env={"env_vars": env_vars})
        return RayHandle(self._ray, task.remote(job_id, str(log_path)))

    def keep_ready(self, slots: int) -> None:
        """Nothing to prewarm: Ray keeps its own worker processes."""

    def capacity(self) -> Cluster:
        """The cluster's live nodes, CPUs and GPUs (nodes join and leave: asked at every heartbeat)."""
        resources = self._ray.cluster_resources()
        nodes = sum(1 for node in self._ray.nodes() if node.get("Alive"))
        return Cluster(nodes, int(resources.get("CPU", 0)), int(resources.get("GPU", 0)))

    def shutdown(self) -> None:
        self._ray.shutdown()
