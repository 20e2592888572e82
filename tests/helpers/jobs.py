"""Jobs on real workers: the configs the job tests queue, waiting for a job's states, a worker's standby."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

from sqlalchemy import func, select

from db.models import Metric
from dlx.jobs import standby
from dlx.store import FINAL_STATES, default_store
from tests.helpers.processes import wait_for

QUICK = {"dataset": "breast_cancer", "model": "mlp", "epochs": 2}


LONG = {"dataset": "digits", "model": "cnn", "epochs": 500}  # runs until the test stops it


def points(run_id: int, key: str = "train_loss") -> int:
    with default_store().session() as s:
        return s.scalar(select(func.count()).select_from(Metric)
                        .where(Metric.run_id == run_id, Metric.key == key))


def ended(job_id: int, timeout: float = 120):
    """Wait until a job reaches a final state; return it."""
    return wait_for(lambda: (job := default_store().queue.get_job(job_id)).status in FINAL_STATES and job,
                    timeout=timeout, message=f"job {job_id} to end")


def running(pid: int) -> bool:
    """Whether `ps` lists the process as anything but a zombie."""
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout
    return bool(state.strip()) and not state.strip().startswith("Z")


def running_with_metrics(run_id: int, job_id: int):
    """Wait until a job's process is recorded and its first metrics are in the store."""
    return wait_for(lambda: (job := default_store().queue.get_job(job_id)).pid and points(run_id) > 0 and job,
                    timeout=120, message=f"job {job_id} to log metrics")


def worker_output(home: Path) -> str:
    return "".join(path.read_text() for path in home.glob("worker-*.log"))


def ready_standbys(home: Path) -> list[int]:
    """Pids of the standbys that reported their imports done, in the order they did."""
    return [int(pid) for pid in re.findall(r"standby pid (\d+): ready", worker_output(home))]


def wait_ready(home: Path, count: int = 1) -> list[int]:
    standby.request()  # as the Launch page does when opened
    return wait_for(lambda: len(pids := ready_standbys(home)) >= count and pids, timeout=120,
                    message=f"{count} standby process(es) to be ready")


def children(process: subprocess.Popen) -> list[int]:
    found = subprocess.run(["ps", "-o", "pid=", "--ppid", str(process.pid)], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split() if running(int(pid))]


def looped(process: subprocess.Popen, times: int = 2) -> None:
    """Wait until the worker has gone round its loop (heartbeat, standbys, queue) `times` more times."""
    seen: set = set()

    def beaten() -> bool:
        seen.update(w.heartbeat_at for w in default_store().workers.alive() if w.id.endswith(f":{process.pid}"))
        return len(seen) > times

    wait_for(beaten, timeout=60, message="the worker's heartbeats")
