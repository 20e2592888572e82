"""Memory before any job: the app's pages and an idle worker do not import torch (hundreds of MB each);
only the pages that compute (Launch counts a model's parameters, Explain runs it) do. Nor do they import
Ray: only the ray executor does. Checked in fresh
processes: the app's pages under streamlit.testing in a subprocess, a real `dlx worker`'s mapped libraries."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dlx.jobs import standby
from dlx.store import default_store
from dlx.tracking import Run
from tests.helpers.jobs import children, looped
from tests.helpers.processes import start_worker, stop_process, wait_for

ROOT = Path(__file__).resolve().parent.parent
OPEN_PAGE = """
import json, sys
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=120)
at.switch_page(sys.argv[2])
at.query_params.update(json.loads(sys.argv[3]))
at.run()
print(json.dumps({"errors": [str(e.value) for e in at.exception], "titles": [t.value for t in at.title],
                  "torch": "torch" in sys.modules, "ray": "ray" in sys.modules}))
"""


def _open_page(home: Path, page: str, query: dict[str, str] | None = None) -> dict:
    """A fresh Python that opens `page` (with `query` parameters) in the app's frame (sidebar, login
    gate, worker check) and says what it imported."""
    env = {**os.environ, "DLX_HOME": str(home), "DLX_AUTOSTART_WORKER": "0", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", OPEN_PAGE, str(ROOT / "streamlit_app.py"), page,
                           json.dumps(query or {})],
                          capture_output=True, text=True, env=env, timeout=180, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("page, title", [("pages/runs.py", "Runs"), ("pages/compare.py", "Compare runs"),
                                         ("pages/data.py", "Data")])  # Data: until a set is chosen to browse
def test_the_runs_compare_and_data_pages_do_not_import_torch(dlx_home, page, title):
    store = default_store()
    run = Run(store, store.create_run({"dataset": "digits", "model": "cnn"}, status="running"))
    run.log_metric("train_loss", 1.0, 0)
    run.finish()
    shown = _open_page(dlx_home, page)
    assert shown["errors"] == [] and shown["titles"] == [title]
    assert shown["torch"] is False
    assert shown["ray"] is False  # the sidebar's executor line comes from the workers table, not from Ray


def test_the_explain_page_imports_torch_where_it_computes(dlx_home):
    shown = _open_page(dlx_home, "pages/explain.py")
    assert shown["errors"] == [] and shown["torch"] is True  # the check above sees an import when there is one


def test_an_idle_worker_does_not_load_torch(dlx_home):
    dlx_home.mkdir(parents=True, exist_ok=True)
    worker = start_worker(dlx_home)
    try:
        wait_for(lambda: any(w.id.endswith(f":{worker.pid}") for w in default_store().workers.alive()),
                 message="the worker to register")
        maps = Path(f"/proc/{worker.pid}/maps").read_text()
        assert "libtorch" not in maps and "libc10" not in maps
        assert "_raylet" not in maps  # only the ray executor imports Ray
    finally:
        stop_process(worker)


def test_the_launch_page_does_not_import_torch_and_still_refuses_an_oversize_model(dlx_home):
    """Listing data sets and models, their options, and counting parameters (in a child process)."""
    shown = _open_page(dlx_home, "pages/launch.py")
    assert shown["errors"] == [] and shown["titles"] == ["Launch a training run"]
    assert shown["torch"] is False


def test_the_runs_page_with_a_run_opened_does_not_import_torch(dlx_home):
    """Its Re-run check reads the data set and model registries."""
    store = default_store()
    run = Run(store, store.create_run({"dataset": "digits", "model": "cnn", "epochs": 1}, status="running"))
    run.log_metric("train_loss", 1.0, 0)
    run.finish()
    shown = _open_page(dlx_home, "pages/runs.py", {"run": str(run.id)})
    assert shown["errors"] == [] and shown["torch"] is False


def test_an_idle_worker_has_no_standby_until_one_is_requested(dlx_home):
    dlx_home.mkdir(parents=True, exist_ok=True)
    worker = start_worker(dlx_home, env={"DLX_PREWARM": "1"})
    try:
        looped(worker)
        assert children(worker) == []
        standby.request()
        wait_for(lambda: children(worker), timeout=30, message="the requested standby")
        assert "libtorch" not in Path(f"/proc/{worker.pid}/maps").read_text()  # the standby holds it
    finally:
        stop_process(worker)

