"""Executors start a job's entry point somewhere and let the worker poll, stop and kill it.

`local` runs `python -m dlx.jobs.entry <job_id>` as a child process of the worker. A Ray
executor would submit the same entry point to a cluster; nothing else changes.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Protocol


class Handle(Protocol):
    pid: int | None

    def poll(self) -> int | None: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...


class LocalHandle:
    def __init__(self, process: subprocess.Popen, log):
        self._process, self._log = process, log
        self.pid = process.pid

    def poll(self) -> int | None:
        code = self._process.poll()
        if code is not None and not self._log.closed:
            self._log.close()
        return code

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self._process.pid, sig)  # the job's own process group: its loaders too
        except ProcessLookupError:
            pass


class LocalExecutor:
    """One child process per job, in its own process group, output appended to the job's log."""

    name = "local"

    def start(self, job_id: int, log_path: Path, env: dict[str, str]) -> Handle:
        log = open(log_path, "ab", buffering=0)
        process = subprocess.Popen([sys.executable, "-u", "-m", "dlx.jobs.entry", str(job_id)],
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env={**os.environ, **env}, start_new_session=True)
        return LocalHandle(process, log)


EXECUTORS = {LocalExecutor.name: LocalExecutor}


def get_executor(name: str | None = None):
    name = name or os.environ.get("DLX_EXECUTOR", "local")
    if name not in EXECUTORS:
        from dlx.errors import DlxError

        raise DlxError(f"DLX_EXECUTOR: unknown executor {name!r}; choose one of {sorted(EXECUTORS)}",
                       field="executor")
    return EXECUTORS[name]()
