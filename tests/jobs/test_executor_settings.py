"""Executor settings are checked before anything is queued: by `dlx run`, the library's plan and
re-run, and the Launch page; a worker that could not start would leave the runs queued for ever."""
from __future__ import annotations

import pytest

from dlx.errors import DlxError
from dlx.jobs.executors import check_settings
from dlx.store import default_store
from dlx.views import launch
from tests.helpers.pages import form, open_app


@pytest.fixture
def ray_without_address(monkeypatch):
    monkeypatch.setenv("DLX_EXECUTOR", "ray")
    monkeypatch.delenv("DLX_RAY_ADDRESS", raising=False)
    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "0")


def test_each_executor_checks_its_settings_without_starting(monkeypatch):
    monkeypatch.delenv("DLX_EXECUTOR", raising=False)
    assert check_settings() == "local"
    monkeypatch.setenv("DLX_EXECUTOR", "kubernetes")
    with pytest.raises(DlxError, match="DLX_EXECUTOR: unknown executor 'kubernetes'; choose one of"):
        check_settings()
    monkeypatch.setenv("DLX_EXECUTOR", "ray")
    monkeypatch.setenv("DLX_RAY_ADDRESS", "127.0.0.1:1")
    assert check_settings() == "ray"  # checked, not connected to


def test_plan_and_rerun_refuse_ray_without_an_address_queueing_nothing(ray_without_address, monkeypatch):
    store = default_store()
    with pytest.raises(DlxError, match="DLX_RAY_ADDRESS: the ray executor needs the address"):
        launch.plan(store, form())
    monkeypatch.setenv("DLX_EXECUTOR", "local")
    run_id = launch.submit_plan(store, launch.plan(store, form()))[0]
    monkeypatch.setenv("DLX_EXECUTOR", "ray")
    with pytest.raises(DlxError, match="DLX_RAY_ADDRESS"):
        launch.rerun(store, run_id)
    assert [r.id for r in store.list_runs()] == [run_id]


def test_the_launch_page_says_why_and_queues_nothing(ray_without_address):
    at = open_app("pages/launch.py")
    assert not at.exception
    assert any("DLX_RAY_ADDRESS" in e.value and "nothing has been queued" in e.value for e in at.error)
    assert at.button(key="launch.submit").disabled
    assert default_store().list_runs() == []
