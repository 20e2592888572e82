"""Executors start a job's entry point somewhere and let the worker poll, stop and kill it.

`local` runs each job in a child process of the worker: a standby that imported torch and the
job code before the job existed (see `dlx.jobs.standby`), or a fresh `python -m dlx.jobs.entry
<job_id>` when prewarming is off or no standby is alive. Each child is bound to the worker
(`dlx.jobs.lifeline`: it ends when the worker does) and recorded under DLX_HOME
(`dlx.jobs.orphans`: a later worker ends any that outlived theirs). `ray` (`dlx.jobs.ray_executor`)
submits the same entry point to a Ray cluster as a task; nothing else changes.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import BinaryIO, Protocol

from dlx import settings
from dlx.errors import DlxError
from dlx.jobs import lifeline, orphans
from dlx.jobs.ray_executor import RayExecutor
from dlx.jobs.standby import requested_at

STANDBY_RETRY = 30.0  # seconds before replacing a standby that died without a job
STANDBY_STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL for standbys at shutdown
# Seconds after a job starts before a new standby may: its imports take 2-3 s of CPU, which on a
# small machine doubled the time to the job's first metric when they ran during its setup.
STANDBY_AFTER_START = 5.0


class Handle(Protocol):
    @property
    def pid(self) -> int | None: ...

    def poll(self) -> int | None: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...


class Executor(Protocol):
    name: str

    def start(self, job_id: int, log_path: Path, env: dict[str, str]) -> Handle: ...
    def keep_ready(self, slots: int) -> None: ...
    def shutdown(self) -> None: ...


class LocalHandle:
    def __init__(self, process: subprocess.Popen, log: BinaryIO | None = None):
        self._process, self._log = process, log
        self.pid = process.pid

    def poll(self) -> int | None:
        code = self._process.poll()
        if code is not None:
            orphans.forget(self.pid)
            if self._log is not None and not self._log.closed:
                self._log.close()
        return code

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        _signal_group(self._process, sig)  # the job's own process group: its loaders too


class LocalExecutor:
    """One child process per job, in its own process group, output appended to the job's log.

    `keep_ready(n)` keeps n standbys alive (at most `max_standbys`, `DLX_PREWARM`) and `start`
    hands a job to one of them; with none ready, or a standby that died, the job starts cold.
    Standbys are kept only while one is likely to be used (each holds ~0.9 GB, issue 18): from a
    job's start until `DLX_STANDBY_IDLE` seconds after the last job ended, and for as long after
    a request (`standby.request()`: the Launch page, when opened); an idle worker holds none.
    """

    name = "local"

    @staticmethod
    def check_settings() -> None:
        """Nothing to check: every setting it reads is checked where it is read."""

    def __init__(self, max_standbys: int | None = None):
        self.max_standbys = settings.standby_processes() if max_standbys is None else max_standbys
        self._standbys: list[subprocess.Popen] = []
        self._not_before = 0.0  # no new standby before this time (monotonic seconds)
        self._jobs: list[subprocess.Popen] = []  # the job processes started here that may still run
        self._wanted_at = 0.0  # wall-clock time a standby was last likely to be used

    def keep_ready(self, slots: int) -> None:
        """Have `slots` standbys started, or as many as allowed (none with DLX_PREWARM=0), while
        one is wanted; stop them once none has been for `DLX_STANDBY_IDLE` seconds."""
        self._standbys = [p for p in self._standbys if self._alive(p)]
        if not self._wanted():
            if self._standbys:
                print(f"standby pids {[p.pid for p in self._standbys]} stopped: unused for "
                      f"{settings.standby_idle()} s", flush=True)
                self.shutdown()
            return
        while len(self._standbys) < min(slots, self.max_standbys) and time.monotonic() >= self._not_before:
            # Until it gets a job, a standby writes to the worker's output; its own session and
            # group, like a cold job's, so cancelling a job signals exactly its processes.
            standby = subprocess.Popen([sys.executable, "-u", "-m", "dlx.jobs.standby"],
                                       stdin=subprocess.PIPE, bufsize=0, env=_bound_env({}),
                                       start_new_session=True)
            orphans.record(standby.pid)
            self._standbys.append(standby)

    def _wanted(self) -> bool:
        """Whether a job ran, or a standby was requested, within the last `DLX_STANDBY_IDLE` seconds."""
        now = time.time()
        self._jobs = [p for p in self._jobs if p.poll() is None]
        if self._jobs:  # the idle time counts from the last job's end
            self._wanted_at = now
        self._wanted_at = max(self._wanted_at, requested_at())
        return now - self._wanted_at < settings.standby_idle()

    def start(self, job_id: int, log_path: Path, env: dict[str, str]) -> Handle:
        handle = self._start(job_id, log_path, env)
        self._jobs.append(handle._process)
        return handle

    def _start(self, job_id: int, log_path: Path, env: dict[str, str]) -> LocalHandle:
        self._not_before = max(self._not_before, time.monotonic() + STANDBY_AFTER_START)
        order = json.dumps({"job_id": job_id, "log_path": str(log_path), "env": env}).encode() + b"\n"
        while self._standbys:
            standby = self._standbys.pop(0)
            if not self._alive(standby):
                continue
            assert standby.stdin is not None  # a standby is started with stdin=PIPE
            try:
                standby.stdin.write(order)
                standby.stdin.close()
            except BrokenPipeError:
                print(f"standby pid {standby.pid} closed its input before job {job_id}; "
                      "trying another", flush=True)
                standby.wait()
                orphans.forget(standby.pid)
                continue
            return LocalHandle(standby)
        if self.max_standbys:
            print(f"job {job_id} starts cold: no standby process is ready", flush=True)
        return self._start_cold(job_id, log_path, env)

    def shutdown(self) -> None:
        """Stop every standby (they also end on their own when the worker's end of stdin closes)."""
        for standby in self._standbys:
            assert standby.stdin is not None  # a standby is started with stdin=PIPE
            standby.stdin.close()
            _signal_group(standby, signal.SIGTERM)
        deadline = time.monotonic() + STANDBY_STOP_GRACE
        for standby in self._standbys:
            try:
                standby.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(standby, signal.SIGKILL)
                standby.wait()
            orphans.forget(standby.pid)
        self._standbys = []

    def _alive(self, standby: subprocess.Popen) -> bool:
        code = standby.poll()
        if code is None:
            return True
        assert standby.stdin is not None  # a standby is started with stdin=PIPE
        standby.stdin.close()
        orphans.forget(standby.pid)
        self._not_before = time.monotonic() + STANDBY_RETRY
        print(f"standby pid {standby.pid} exited with code {code} before getting a job; jobs start "
              f"cold until a new one is up (in {STANDBY_RETRY:.0f} s)", flush=True)
        return False

    def _start_cold(self, job_id: int, log_path: Path, env: dict[str, str]) -> LocalHandle:
        log = open(log_path, "ab", buffering=0)
        process = subprocess.Popen([sys.executable, "-u", "-m", "dlx.jobs.entry", str(job_id)],
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=_bound_env(env), start_new_session=True)
        orphans.record(process.pid)
        return LocalHandle(process, log)


def _bound_env(env: dict[str, str]) -> dict[str, str]:
    """The worker's environment plus `env`, naming this process as the child's lifeline."""
    return {**os.environ, **env, lifeline.ENV: str(os.getpid())}


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass


EXECUTORS: dict[str, type[LocalExecutor] | type[RayExecutor]] = {LocalExecutor.name: LocalExecutor,
                                                                 RayExecutor.name: RayExecutor}


def check_settings(name: str | None = None) -> str:
    """The executor `DLX_EXECUTOR` names, its settings checked without starting it; called before a
    job is queued, since a worker that cannot start its executor leaves the job waiting for ever."""
    name = name or os.environ.get("DLX_EXECUTOR", "").strip() or "local"
    if name not in EXECUTORS:
        raise DlxError(f"DLX_EXECUTOR: unknown executor {name!r}; choose one of {sorted(EXECUTORS)}",
                       field="DLX_EXECUTOR")
    EXECUTORS[name].check_settings()
    return name


def get_executor(name: str | None = None) -> Executor:
    return EXECUTORS[check_settings(name)]()
