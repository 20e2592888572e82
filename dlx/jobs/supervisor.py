"""Is a worker alive? Start one if not, stop the ones of this store on request, say why a queued job waits.

The app calls `ensure_worker(store)` so one command is enough; a worker the app starts stops with it
(`dlx worker --stop-with PID` watches its parent), and `dlx worker --stop` ends the others.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dlx import settings
from dlx.training.devices import gpu_index

if TYPE_CHECKING:
    from db.models import Job
    from dlx.store import Store

STARTING = 60.0  # seconds a freshly spawned worker may take to register
STOP_TIMEOUT = 30.0  # seconds a stopping worker gets (it gives its jobs 10 s) before SIGKILL
PARENT_POLL = 0.25  # seconds between a watching worker's looks at its parent
HAS_PROC = Path("/proc/self/stat").exists()  # Linux: process states and command lines to check pids against


@dataclass
class WorkerStatus:
    state: str  # alive, starting, started, down
    workers: int
    running: int
    queued: int
    pid: int | None = None  # the worker ensure_worker() just spawned


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


def status(store: Store) -> WorkerStatus:
    store.reap_stale_for_reading()
    workers = store.workers.alive()
    jobs = store.queue.counts()
    state = "alive" if workers else ("starting" if _spawned_pid_alive() else "down")
    return WorkerStatus(state, len(workers), jobs.get("running", 0), jobs.get("queued", 0))


def ensure_worker(store: Store, *, stop_with_parent: bool = False) -> WorkerStatus:
    """Start a `dlx worker` on `store` in its own session unless one is alive or starting.

    It outlives the caller (`dlx run` exits at once) unless `stop_with_parent`: then it stops when
    this process ends, however it ends (the app's Ctrl-C, a SIGKILL).
    """
    current = status(store)
    if current.state != "down":
        return current
    log = open(settings.logs_dir() / "worker.log", "ab")
    env = {**os.environ, "DLX_DATABASE_URL": store.url}
    command = [sys.executable, "-m", "dlx.cli", "worker"]
    if stop_with_parent:
        command += ["--stop-with", str(os.getpid())]
    # Its own session: a Ctrl-C in the caller's terminal does not reach it or its jobs; it stops in order.
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               env=env, start_new_session=True)
    log.close()
    (settings.home() / "worker.spawn").write_text(f"{process.pid} {time.time()}")
    return WorkerStatus("started", current.workers, current.running, current.queued, process.pid)


def why_waiting(store: Store, job: Job) -> str:
    """Why a queued job has not started, in words the Runs page shows: its place in the queue, and
    what stops it when waiting alone will not help (no worker, or no worker with a GPU)."""
    ahead, running = store.queue.place(job.id)
    text = f"Waiting for a worker: {ahead} job{'s' if ahead != 1 else ''} ahead in the queue, {running} running."
    workers = store.workers.alive()
    if not workers:
        if status(store).state == "starting":
            return text + " A worker is starting."
        return text + " No worker is running: start one from the sidebar, or run `dlx worker`."
    if gpu_index(job.device) is not None and all(int(w.info.get("gpus", 0)) == 0 for w in workers):
        return text + (f" It asks for {job.device}, but no running worker has a GPU, so none will take it: "
                       "cancel it and launch it again on auto or cpu, or start a worker on a machine with a GPU.")
    return text


def stop_with(parent: int) -> None:
    """SIGTERM this process (a worker: it stops its jobs and standbys) once `parent` has ended.

    `parent` is the worker's parent process; when it ends, the worker is handed to another
    parent, so a changed getppid() is the sign (a pid that is reused cannot fool it).
    """
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="stop-with-parent", daemon=True).start()


def worker_pids(store: Store) -> list[int]:
    """Running `dlx worker` processes of this store on this machine: the workers table and the spawn marker."""
    host = socket.gethostname()
    pids = set()
    for worker in store.workers.ids():
        row_host, _, pid = worker.rpartition(":")
        if row_host == host and pid.isdigit():
            pids.add(int(pid))
    with contextlib.suppress(OSError, ValueError, IndexError):
        pids.add(int((settings.home() / "worker.spawn").read_text().split()[0]))
    return sorted(pid for pid in pids if _is_worker(pid))


def stop_workers(pids: list[int], timeout: float = STOP_TIMEOUT) -> list[int]:
    """SIGTERM these workers and wait for them to end (their jobs end with them); SIGKILL any that linger.

    Returns the pids that had to be killed.
    """
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    killed = []
    for pid in pids:
        if _running(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        with contextlib.suppress(ChildProcessError):  # our own child (dlx ui's worker): reap it
            os.waitpid(pid, os.WNOHANG)
    return killed


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie has ended; only its parent's wait is missing)."""
    if not HAS_PROC:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # someone else's process
            return True
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _is_worker(pid: int) -> bool:
    """A pid read from a table or a marker may have been reused: signal it only if it is a `dlx worker`."""
    if not HAS_PROC:  # nothing to check against: trust the record
        return _running(pid)
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return _running(pid) and b"worker" in args and any(
        a == b"dlx.cli" or a == b"dlx" or a.endswith(b"/dlx") for a in args)
