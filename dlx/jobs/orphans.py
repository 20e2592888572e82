"""Job and standby processes left behind by a worker that died: recorded at start, ended by the next worker.

The lifeline (`dlx.jobs.lifeline`) ends a worker's children with it; this is the second line,
for a child that missed it (say, one started by an older dlx). The local executor writes one
file per child under `DLX_HOME/pids/`, naming the child and the worker that started it, each
with its start time (from /proc: a pid alone can be reused). A worker starting on the same host
ends the recorded children of workers that are no longer alive, and only those that are still
the very process recorded (same start time) and still a dlx job or standby (its /proc cmdline):
a pid reused by anything else is never signalled.
"""
from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

from dlx import settings

CHILD_MODULES = ("dlx.jobs.entry", "dlx.jobs.standby")


def pids_dir() -> Path:
    return settings.home() / "pids"


def record(pid: int) -> None:
    """Note a child this worker started (call right after starting it)."""
    me = os.getpid()
    entry = {"pid": pid, "started": start_time(pid), "host": socket.gethostname(),
             "worker_pid": me, "worker_started": start_time(me)}
    folder = pids_dir()
    folder.mkdir(parents=True, exist_ok=True)
    _path(pid).write_text(json.dumps(entry))


def forget(pid: int) -> None:
    """The child ended and was reaped by its worker."""
    _path(pid).unlink(missing_ok=True)


def sweep() -> list[int]:
    """End children recorded by dead workers of this host; returns the pids ended."""
    ended: list[int] = []
    host = socket.gethostname()
    for path in sorted(pids_dir().glob(f"{host}-*.json")):
        try:
            entry = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            path.unlink(missing_ok=True)  # half written by a worker killed while writing it
            continue
        if _same_process(entry["worker_pid"], entry["worker_started"]):
            continue  # its worker (maybe this one) is alive and looks after it
        if _is_our_child(entry["pid"], entry["started"]):
            _kill_group(entry["pid"])
            ended.append(entry["pid"])
            print(f"ended pid {entry['pid']}, left running by worker pid {entry['worker_pid']}, "
                  "which is gone", flush=True)
        path.unlink(missing_ok=True)
    return ended


def start_time(pid: int) -> int | None:
    """When the process started, in clock ticks since boot (/proc/<pid>/stat field 22); None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": the name may hold spaces
    if fields[0] == "Z":
        return None  # a zombie: already dead, only waiting to be reaped
    return int(fields[19])


def _same_process(pid: int, started: int | None) -> bool:
    return started is not None and start_time(pid) == started


def _is_our_child(pid: int, started: int | None) -> bool:
    if not _same_process(pid, started):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(module.encode() in argv for module in CHILD_MODULES)


def _kill_group(pid: int) -> None:
    """SIGKILL the child's group when it leads one (it was started in its own session), else the child."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _path(pid: int) -> Path:
    return pids_dir() / f"{socket.gethostname()}-{pid}.json"
