"""Where runs go: one store per user by default, named in one line by `dlx runs`, `dlx ui` and a script's first run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from db.engine import store_notice
from dlx import settings
from dlx.store import Store

SCRIPT = """import dlx
for lr in (0.1, 0.01):
    with dlx.start_run(experiment="elsewhere", config={"lr": lr}) as run:
        run.log_metrics({"loss": lr}, step=1)
"""


def _env(user_home: Path) -> dict[str, str]:
    """The environment of a new user: no DLX_HOME or DLX_DATABASE_URL, a home folder of its own."""
    env = {k: v for k, v in os.environ.items() if k not in ("DLX_HOME", "DLX_DATABASE_URL", "XDG_DATA_HOME")}
    return {**env, "HOME": str(user_home)}


def _dlx(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlx.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_a_scripts_runs_are_listed_from_another_folder(tmp_path):
    user_home, script_folder, other_folder = (tmp_path / name for name in ("home", "a", "b"))
    for folder in (user_home, script_folder, other_folder):
        folder.mkdir()
    env = _env(user_home)
    store = user_home / ".local" / "share" / "dlx"
    script = subprocess.run([sys.executable, "-c", SCRIPT], cwd=script_folder, env=env, capture_output=True,
                            text=True, timeout=120)
    assert script.returncode == 0, script.stderr
    assert script.stderr.count("dlx store:") == 1  # the first run of the process names it, once
    assert f"dlx store: {store} (sqlite)\n" in script.stderr
    assert not (script_folder / "dlx-data").exists()  # nothing written where the script ran

    listed = _dlx("runs", "--json", cwd=other_folder, env=env)
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)  # the notice stays off the JSON
    assert sorted(r["metrics"]["loss"] for r in runs) == [0.01, 0.1]
    assert {r["status"] for r in runs} == {"succeeded"}
    assert listed.stderr == f"dlx store: {store} (sqlite)\n"


def test_a_dlx_data_folder_left_here_is_named_with_how_to_use_it(tmp_path):
    user_home, here = tmp_path / "home", tmp_path / "project"
    user_home.mkdir()
    (here / "dlx-data").mkdir(parents=True)
    Store(f"sqlite:///{here / 'dlx-data' / 'dlx.sqlite'}").create_run(None, "old", "an older run")  # an older store
    env = _env(user_home)

    listed = _dlx("runs", cwd=here, env=env)
    assert listed.returncode == 0, listed.stderr
    line, = listed.stderr.splitlines()
    assert line.startswith(f"dlx store: {user_home / '.local/share/dlx'} (sqlite); {here / 'dlx-data'} holds "
                           "another store, not used: set DLX_HOME=./dlx-data to use it, or move its contents")
    assert listed.stdout.startswith("no runs here (0 match)")

    chosen = _dlx("runs", "--json", cwd=here, env={**env, "DLX_HOME": "./dlx-data"})
    assert chosen.stderr == f"dlx store: {here / 'dlx-data'} (sqlite)\n"  # the one chosen: no hint
    assert [r["id"] for r in json.loads(chosen.stdout)] == [1]


def test_the_default_home_follows_the_platforms_user_data_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("DLX_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert settings.home() == tmp_path / "data" / "dlx"
    assert settings.database_url() == f"sqlite:///{tmp_path / 'data' / 'dlx' / 'dlx.sqlite'}"
    assert store_notice() == f"dlx store: {tmp_path / 'data' / 'dlx'} (sqlite)"
    monkeypatch.setenv("DLX_HOME", str(tmp_path / "mine"))  # DLX_HOME overrides it, as before
    assert settings.home() == tmp_path / "mine"


def test_a_store_url_is_named_with_its_password_hidden(monkeypatch):
    monkeypatch.setenv("DLX_DATABASE_URL", "postgresql+psycopg://dlx:s3cret@db.example:5432/dlx")
    assert store_notice() == "dlx store: postgresql+psycopg://dlx:***@db.example:5432/dlx"
