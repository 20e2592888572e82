"""Fixtures that build real things: a data directory with its SQLite file, worker processes, trained runs."""
from __future__ import annotations

from pathlib import Path

import pytest

from db.engine import dispose_all
from dlx.data import user_sets
from dlx.data.registry import load_dataset
from dlx.store import default_store
from tests.helpers.processes import start_worker, stop_process, train_in_process

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
user_sets.list_in_registry(default_store)  # the tests' own processes list their store's data sets, as the app does
pytest_plugins = [
    "tests.helpers.browser",  # app_server, browser_page
    "tests.helpers.postgres",  # pg_cluster, store_url
    "tests.helpers.runs",  # thousand_runs, shared_home
]


@pytest.fixture(autouse=True)
def dlx_home(tmp_path, monkeypatch) -> Path:
    """Every test gets its own data directory and SQLite database."""
    home = tmp_path / "dlx-data"
    monkeypatch.setenv("DLX_HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "user-data"))  # a test without DLX_HOME: not ~/.local/share
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


@pytest.fixture
def worker(dlx_home):
    """One worker process for the test; stopped (and its jobs with it) at the end."""
    dlx_home.mkdir(parents=True, exist_ok=True)
    process = start_worker(dlx_home)
    yield process
    stop_process(process)


@pytest.fixture
def trained_run(dlx_home):
    """A digits CNN trained in this process for two epochs (about 3 s on 2 cores): returns its run id."""
    return train_in_process({"dataset": "digits", "model": "cnn", "epochs": 2})


@pytest.fixture
def spawned_workers():
    """Pids of workers started by ensure_worker(); stopped at the end of the test."""
    from tests.helpers.browser import stop_workers  # a plugin module (pytest_plugins): imported by pytest first

    pids: list[int] = []
    yield pids
    stop_workers(pids)
