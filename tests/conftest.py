"""Fixtures that build real things: a data directory with its SQLite file, worker processes, trained runs."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from db.engine import dispose_all
from dlx.data.registry import load_dataset

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
pytest_plugins = ["tests.browser", "tests.postgres"]  # app_server/browser_page; pg_cluster/store_url


@pytest.fixture(autouse=True)
def dlx_home(tmp_path, monkeypatch) -> Path:
    """Every test gets its own data directory and SQLite database."""
    home = tmp_path / "dlx-data"
    monkeypatch.setenv("DLX_HOME", str(home))
    monkeypatch.delenv("DLX_DATABASE_URL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    yield home
    dispose_all()
    load_dataset.cache_clear()  # a data set's name means another set in the next test's directory


@pytest.fixture
def artifacts_dir() -> Path:
    """Where tests leave files worth looking at (screenshots); CI keeps this folder."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


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


@pytest.fixture
def worker(dlx_home):
    """One worker process for the test; stopped (and its jobs with it) at the end."""
    dlx_home.mkdir(parents=True, exist_ok=True)
    process = start_worker(dlx_home)
    yield process
    stop_process(process)


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.2, message: str = "condition"):
    """Poll until predicate() is truthy; return its value or fail the test naming what was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {message}")


@pytest.fixture
def trained_run(dlx_home):
    """A digits CNN trained in this process for two epochs (about 3 s on 2 cores): returns its run id."""
    return train_in_process({"dataset": "digits", "model": "cnn", "epochs": 2})


def train_in_process(values: dict) -> int:
    from dlx.config import parse_config
    from dlx.tracking import start_run
    from dlx.training.train import train

    config = parse_config(values)
    with start_run(config=config.model_dump(), handle_signals=False) as run:
        train(config, run)
    return run.id


@pytest.fixture
def spawned_workers():
    """Pids of workers started by ensure_worker(); stopped at the end of the test."""
    from tests.browser import stop_workers  # a plugin module (pytest_plugins): imported by pytest first

    pids: list[int] = []
    yield pids
    stop_workers(pids)
