"""Is a worker alive? Start one if not: the app calls `ensure_worker()` so one command is enough."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from db.engine import session
from db.models import Worker, utcnow
from dlx import settings
from dlx.jobs.queue import counts, reap_stale

FRESH = timedelta(seconds=10)  # a worker heartbeats every 2 s
STARTING = 60.0  # seconds a freshly spawned worker may take to register


@dataclass
class WorkerStatus:
    state: str  # alive, starting, started, down
    workers: int
    running: int
    queued: int


def alive_workers(url: str | None = None) -> list[Worker]:
    with session(url) as s:
        return list(s.scalars(select(Worker).where(Worker.heartbeat_at > utcnow() - FRESH)))


def _spawned_pid_alive() -> bool:
    """A worker we spawned moments ago that has not registered yet still counts."""
    marker = settings.home() / "worker.spawn"
    try:
        pid, started = marker.read_text().split()
        if time.time() - float(started) > STARTING:
            return False
        os.kill(int(pid), 0)
        return True
    except (OSError, ValueError):
        return False


def status(url: str | None = None) -> WorkerStatus:
    reap_stale(url)
    workers = alive_workers(url)
    jobs = counts(url)
    state = "alive" if workers else ("starting" if _spawned_pid_alive() else "down")
    return WorkerStatus(state, len(workers), jobs.get("running", 0), jobs.get("queued", 0))


def ensure_worker(url: str | None = None) -> WorkerStatus:
    """Start a detached `dlx worker` (it outlives the app) unless one is alive or starting."""
    current = status(url)
    if current.state != "down":
        return current
    log = open(settings.logs_dir() / "worker.log", "ab")
    env = dict(os.environ)
    if url:
        env["DLX_DATABASE_URL"] = url
    process = subprocess.Popen([sys.executable, "-m", "dlx.cli", "worker"], stdout=log,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                               start_new_session=True)
    log.close()
    (settings.home() / "worker.spawn").write_text(f"{process.pid} {time.time()}")
    return WorkerStatus("started", current.workers, current.running, current.queued)
