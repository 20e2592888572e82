"""Drive the real app in headless Chromium: start `streamlit run` on a free port, open a page, tear down.

Its fixtures (`app_server`, `browser_page`) reach every test through conftest's `pytest_plugins`;
bench scripts use `running_app` and `chromium_page`. The app auto-starts a worker; teardown stops it
too, found through `DLX_HOME/worker.spawn` and the `workers` table.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@dataclass
class App:
    url: str
    home: Path
    process: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def running_app(home: Path, env: dict[str, str] | None = None, timeout: float = 90) -> Iterator[App]:
    """The real app (`python -m streamlit run streamlit_app.py`) on `home`, until the block ends."""
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = home / f"app-{port}.log"
    command = [sys.executable, "-m", "streamlit", "run", "streamlit_app.py", "--server.headless", "true",
               "--server.port", str(port), "--server.address", "127.0.0.1",
               "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, "DLX_HOME": str(home), **(env or {})},
                                   start_new_session=True)
    app = App(f"http://127.0.0.1:{port}", home, process, log)
    try:
        deadline = time.monotonic() + timeout
        while not _healthy(app.url):
            if process.poll() is not None:
                raise RuntimeError(f"the app exited with {process.returncode}:\n{app.output()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the app did not answer /_stcore/health in {timeout:.0f} s:\n"
                                   f"{app.output()}")
            time.sleep(0.2)
        yield app
    finally:
        _stop(process)
        stop_spawned_workers(home)


def _stop(process: subprocess.Popen, timeout: float = 15) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def worker_pids(home: Path) -> set[int]:
    """Workers started for this data directory: the app's spawn marker and the workers table."""
    pids = set()
    marker = home / "worker.spawn"
    if marker.exists():
        with contextlib.suppress(ValueError, IndexError):
            pids.add(int(marker.read_text().split()[0]))
    database = home / "dlx.sqlite"
    if database.exists():
        with contextlib.closing(sqlite3.connect(database, timeout=30)) as conn:
            with contextlib.suppress(sqlite3.Error):
                for (info,) in conn.execute("SELECT info FROM workers"):
                    with contextlib.suppress(ValueError, TypeError, KeyError):
                        pids.add(int(json.loads(info)["pid"]))
    return pids


def _alive(pid: int) -> bool:
    """Running (a zombie left to a reaper that is not us counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _is_worker(pid: int) -> bool:
    """A pid from a marker or a table may have been reused: only ever signal a `dlx worker`."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"dlx.cli" in command and b"worker" in command


def stop_spawned_workers(home: Path) -> None:
    """Stop the workers of this data directory (they stop their jobs)."""
    stop_workers(worker_pids(home))


def stop_workers(pids: Iterable[int], timeout: float = 20) -> None:
    """SIGTERM these workers, SIGKILL the groups of those that linger; reap those that are our children."""
    pids = {pid for pid in pids if _alive(pid) and _is_worker(pid)}
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)  # the worker leads its own session: its jobs go too
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


VIEWPORT = {"width": 1440, "height": 1000}


def new_page(browser):
    """A page in a fresh context: its own cookies and storage, so its own Streamlit session."""
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.set_default_timeout(30_000)
    return page


def reopen(page):
    """Close the page's whole browsing session and start another, as a user closing the browser would."""
    browser = page.context.browser
    page.context.close()
    return new_page(browser)


@contextlib.contextmanager
def chromium_page():
    """A Playwright page in Debian's headless Chromium (one per process at a time: the sync API)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield new_page(browser)
        finally:
            browser.close()


@pytest.fixture
def app_server(dlx_home) -> Iterator[App]:
    """The real app with a real (auto-started) worker on this test's data directory."""
    with running_app(dlx_home) as app:
        yield app


@pytest.fixture
def browser_page():
    """A headless Chromium page; the test is skipped where Debian's chromium is not installed."""
    if not CHROMIUM.exists():
        pytest.skip(f"needs Debian's chromium at {CHROMIUM} (apt-get install -y chromium)")
    with chromium_page() as page:
        yield page


def open_page(page, url: str, heading: str) -> None:
    """Open a URL and wait until the app has drawn the page with this heading (not only its shell)."""
    page.goto(url)
    page.get_by_role("heading", name=heading).first.wait_for(timeout=60_000)


def snapshot(page, path: Path) -> None:
    """Screenshot the whole page: Streamlit scrolls inside its main block, so grow the viewport to fit it."""
    height = page.evaluate("""() => Math.max(...["stMain", "stMainBlockContainer", "stAppViewContainer"]
        .map(id => document.querySelector(`[data-testid='${id}']`))
        .filter(Boolean).map(el => el.scrollHeight + el.getBoundingClientRect().top))""")
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(max(height, VIEWPORT["height"]), 5000)})
    page.wait_for_timeout(300)  # let charts re-lay out at the new size
    page.screenshot(path=path, full_page=True)
    page.set_viewport_size(VIEWPORT)
