"""Fixtures for running the store's tests on SQLite and PostgreSQL alike.

`pg_cluster` starts one throwaway server per test session (tests/helpers/pg_cluster.py); `store_url`,
parametrised over both stores, points DLX_DATABASE_URL (read by this process and the worker
processes a test starts) at a fresh database for each test. Without PostgreSQL installed the
PostgreSQL cases are skipped with the reason, except under CI=true, where they fail: CI must
test both.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from db.engine import dispose_all
from dlx import settings
from tests.helpers.pg_cluster import Cluster, bin_dir


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    path = bin_dir()
    if path is None:
        reason = "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb, no initdb on PATH)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must run the PostgreSQL tests (.ci/run installs it)")
        pytest.skip(reason)
    cluster = Cluster(path)
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, dlx_home, monkeypatch) -> Iterator[str]:
    """The test's database URL, on each store in turn; DLX_DATABASE_URL names it for subprocesses too."""
    if request.param == "sqlite":
        yield settings.database_url()
        return
    cluster: Cluster = request.getfixturevalue("pg_cluster")
    url = cluster.create_database()
    dlx_home.mkdir(parents=True, exist_ok=True)  # SQLite's first use makes it; tests start workers there
    monkeypatch.setenv("DLX_DATABASE_URL", url)
    yield url
    dispose_all()  # this process's pooled connections first; DROP ... FORCE ends the rest
    cluster.drop_database(url)
