"""Read-only commands and pages on a store that cannot be written (a full disk) or read (a damaged file):
they list what they can, or say in one line which file is wrong; never a traceback."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from db.engine import dispose_all
from db.models import utcnow
from dlx.store import default_store
from dlx.tracking import Run

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "streamlit_app.py"
READERS = (["runs"], ["runs", "--json"], ["export", "1"])


def dlx(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlx.cli", *args], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    if not at.error:
        at.switch_page(page).run()
    return at


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "0")
    monkeypatch.setenv("DLX_STALE_AFTER", "6")


def stale_and_finished_runs() -> tuple[int, int]:
    """A script's run whose process died an hour ago (listing it reaps it: a write) and a finished run with points."""
    store = default_store()
    stale = store.create_run({"dataset": "digits", "model": "cnn"}, status="running")
    long_ago = utcnow() - timedelta(hours=1)
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE runs SET heartbeat_at = :t, started_at = :t WHERE id = :r"),
                     {"t": long_ago, "r": stale})
    with Run(store, store.create_run({"dataset": "digits", "model": "mlp"}, status="running")) as run:
        run.log_series("loss", [1.0, 0.5, 0.25], first_step=0)
    return stale, run.id


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """A store on a small tmpfs filled to the last byte, opened by another process as a running app
    would hold it (so SQLite's shared-memory file exists): reads work, every write fails."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root) to fill a disk")
    holder = None
    try:
        home = mount / "dlx-data"
        home.mkdir()
        monkeypatch.setenv("DLX_HOME", str(home))
        runs = stale_and_finished_runs()
        dispose_all()
        holder = sqlite3.connect(home / "dlx.sqlite")
        holder.execute("SELECT count(*) FROM runs").fetchall()
        filler = os.open(mount / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(filler, b"\0" * 65536)
        except OSError:
            pass  # ENOSPC: the disk is full
        finally:
            os.close(filler)
        yield runs
    finally:
        if holder is not None:
            holder.close()
        dispose_all()
        subprocess.run(["umount", str(mount)], check=True)


@pytest.fixture
def not_a_database(dlx_home) -> Path:
    dlx_home.mkdir(parents=True)
    database = dlx_home / "dlx.sqlite"
    database.write_bytes(os.urandom(64 * 1024))
    return database


def test_read_only_commands_work_on_a_full_disk_and_log_the_reap_they_could_not_write(full_disk):
    stale, finished = full_disk
    listed = dlx("runs")
    assert listed.returncode == 0, listed.stderr
    assert f"{stale:>5}  running" in listed.stdout and f"{finished:>5}  succeeded" in listed.stdout
    assert "could not mark stale runs failed" in listed.stderr and "disk is full" in listed.stderr
    assert "Traceback" not in listed.stderr
    as_json = dlx("runs", "--json")
    assert as_json.returncode == 0 and '"status": "running"' in as_json.stdout
    exported = dlx("export", str(finished))
    assert exported.returncode == 0
    assert [line.rsplit(",", 1)[0] for line in exported.stdout.splitlines()[1:]] == [
        "loss,0,1.0", "loss,1,0.5", "loss,2,0.25"]


def test_runs_and_compare_pages_work_on_a_full_disk(full_disk):
    stale, finished = full_disk
    for page in ("pages/runs.py", "pages/compare.py"):
        at = open_page(page)
        assert not at.exception, [e.value for e in at.exception]
        assert not at.error, [e.value for e in at.error]


@pytest.mark.parametrize("args", READERS, ids=lambda a: " ".join(a))
def test_read_only_commands_name_a_file_that_is_not_a_database_in_one_line(not_a_database, args):
    result = dlx(*args)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"error: database: the SQLite file {not_a_database} cannot be read: file is not a database. Restore it "
        "from a backup if it is damaged, free space if its disk is full, or point DLX_DATABASE_URL (or "
        "DLX_HOME) at another store"]
    assert result.stdout == ""


def test_read_only_commands_name_a_folder_in_place_of_the_file(dlx_home):
    (dlx_home / "dlx.sqlite").mkdir(parents=True)
    result = dlx("runs")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"the SQLite file {dlx_home / 'dlx.sqlite'} cannot be read" in result.stderr


@pytest.mark.parametrize("page", ["pages/runs.py", "pages/compare.py"])
def test_pages_show_one_error_naming_a_file_that_is_not_a_database(not_a_database, page):
    at = open_page(page)
    assert not at.exception, [e.value for e in at.exception]
    assert [e.value for e in at.error] == [
        f"database: the SQLite file {not_a_database} cannot be read: file is not a database. Restore it from "
        "a backup if it is damaged, free space if its disk is full, or point DLX_DATABASE_URL (or DLX_HOME) "
        "at another store"]
