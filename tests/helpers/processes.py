"""Real processes for tests: a `dlx worker` started and stopped, a training run in this process, polling."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest


def start_worker(home: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """A real `dlx worker` process on this test's data directory."""
    log = open(home / f"worker-{time.monotonic_ns()}.log", "wb")
    return subprocess.Popen([sys.executable, "-m", "dlx.cli", "worker", *extra],
                            env={**os.environ, "DLX_HOME": str(home), **(env or {})},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(process: subprocess.Popen, timeout: float = 20) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.2, message: str = "condition"):
    """Poll until predicate() is truthy; return its value or fail the test naming what was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {message}")


def train_in_process(values: dict) -> int:
    from dlx.tracking import start_run
    from dlx.training.fits import launch_config
    from dlx.training.train import train

    config = launch_config(values)
    with start_run(config=config.model_dump(), handle_signals=False) as run:
        train(config, run)
    return run.id
