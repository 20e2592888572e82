"""The command line's own cost: parsing `dlx --help` imports no database library, and `dlx runs` on a store at
the latest schema imports neither Alembic (the schema's revision is one query) nor torch, Streamlit or Plotly.
Checked in fresh processes, by what they imported; a store one migration behind is still brought up to date."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from db.engine import alembic_config, dispose_all, get_engine, head_revision, schema_revision, upgrade
from dlx.store import default_store
from dlx.tracking import Run

ROOT = Path(__file__).resolve().parent.parent
RUN_CLI = """
import contextlib, io, json, sys
from dlx import cli
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        code = cli.main(sys.argv[2:])
    except SystemExit as ended:  # --help exits
        code = ended.code
heavy = ("sqlalchemy", "alembic", "torch", "streamlit", "plotly", "numpy", "pydantic")
print(json.dumps({"code": code, "out": out.getvalue(), "imported": [m for m in heavy if m in sys.modules]}))
"""


def _dlx(home: Path, *args: str) -> dict:
    """Run `dlx ARGS` in a fresh Python; its exit code, output, and which heavy libraries it imported."""
    env = {**os.environ, "DLX_HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.pop("DLX_DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-c", RUN_CLI, "dlx", *args], capture_output=True, text=True,
                          env=env, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_dlx_help_imports_no_database_library(dlx_home):
    shown = _dlx(dlx_home, "--help")
    assert shown["code"] == 0 and "runs" in shown["out"]
    assert shown["imported"] == []


def test_dlx_runs_on_an_up_to_date_store_imports_no_alembic_torch_streamlit_or_plotly(dlx_home):
    store = default_store()
    run = Run(store, store.create_run({"dataset": "digits", "model": "mlp"}, status="running"))
    run.log_params({"lr": 0.01})
    run.log_metric("test_acc", 0.5, 1)
    run.finish()
    shown = _dlx(dlx_home, "runs", "--limit", "50", "--filter", "lr < 0.1", "--sort", "test_acc")
    assert shown["code"] == 0
    assert f"\n{run.id:>5}  succeeded" in shown["out"] and "0.5000" in shown["out"]
    assert shown["imported"] == ["sqlalchemy"]  # the store's own library, nothing else heavy


def test_a_store_one_migration_behind_is_upgraded_on_open(dlx_home):
    from alembic.script import ScriptDirectory

    dlx_home.mkdir(parents=True)
    url = f"sqlite:///{dlx_home / 'old.sqlite'}"
    engine = get_engine(url, upgrade_schema=False)
    scripts = ScriptDirectory.from_config(alembic_config(engine))
    assert head_revision() == scripts.get_current_head()  # the file names' reading agrees with Alembic's
    behind = scripts.get_revision(head_revision()).down_revision
    upgrade(engine, behind)
    assert schema_revision(engine) == behind
    dispose_all()
    assert schema_revision(get_engine(url)) == head_revision()


def test_a_new_database_has_no_revision_until_it_is_created(dlx_home):
    dlx_home.mkdir(parents=True)
    engine = get_engine(f"sqlite:///{dlx_home / 'new.sqlite'}", upgrade_schema=False)
    assert schema_revision(engine) is None


def test_dlx_runs_newest_first_on_a_sqlite_store_imports_no_sqlalchemy(dlx_home):
    store = default_store()
    run = Run(store, store.create_run({"dataset": "digits", "model": "mlp"}, status="running"))
    run.log_params({"lr": 0.01})
    run.log_metric("test_acc", 0.5, 1)
    run.finish()
    shown = _dlx(dlx_home, "runs", "--limit", "50")
    assert shown["code"] == 0
    assert "runs 1-1 of 1\n" in shown["out"] and f"\n{run.id:>5}  succeeded" in shown["out"]
    assert "0.5000" in shown["out"] and "lr=0.01" in shown["out"]
    assert shown["imported"] == []  # read in plain SQL (dlx.store.plain)
