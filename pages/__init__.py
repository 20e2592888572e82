"""The app's pages in navigation order, the guard against running unprotected, and the hand-over that keeps every page inside streamlit_app.py.

Why the hand-over: Streamlit (1.67) still has its legacy `pages/` folder mode. The first session of
a server process turns it on because `pages/` sits next to the main script
(`PagesManager.__init__` sets `PagesManager.uses_pages_directory`), and only a call to
`st.navigation` turns it off, for all sessions. While it is on, `ScriptRunner._run_script` calls
`_mpa_v1`, which runs the page a URL names on its own: a fresh server's first request to /runs
got that page without streamlit_app.py's navigation, sidebar and worker start. No config option
changes this. (Streamlit skips `__init__.py` when it lists the folder's pages.)
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

from db.models import Job
from dlx import settings
from dlx.errors import DlxError
from dlx.gate import auth
from dlx.jobs import ensure_worker
from dlx.jobs.failures import failure_reason
from dlx.store import Store
from dlx.store.queue import ACTIVE
from dlx.views.text import md

T = TypeVar("T")
FRAMED = "app.framed"  # set by streamlit_app.py before it runs a page (after its guard)


def app_pages() -> list[st.Page]:
    """New Page objects on every run: st.navigation marks the one it picks runnable, so sessions cannot share them."""
    return [
        st.Page("pages/launch.py", title="Launch", icon=":material/rocket_launch:", default=True),
        st.Page("pages/runs.py", title="Runs", icon=":material/monitoring:"),
        st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
        st.Page("pages/explain.py", title="Explain", icon=":material/insights:"),
        st.Page("pages/data.py", title="Data", icon=":material/dataset:"),
    ]


def in_folder_mode() -> bool:
    """Whether Streamlit runs the legacy folder mode now (never for a page run on its own, as in AppTest).

    Reads (never sets) an internal of Streamlit 1.67; should a release drop it, this reads False,
    and tests/browser/test_browser_deeplinks.py tells whether first requests still get the frame.
    """
    return bool(getattr(PagesManager, "uses_pages_directory", False))


def unguarded() -> str | None:
    """Why this app must show nothing, or None where it may: behind `dlx ui`'s login gate, or on loopback.

    The secret is asked for by the gate (dlx/gate/proxy.py) in front of Streamlit, never by a page: a form
    here could not guard Streamlit's own endpoints. So a Streamlit process listening beyond this
    machine (`streamlit run --server.address 0.0.0.0`, bypassing `dlx ui`) shows nothing, and neither
    does one that sees DLX_PASSWORD or DLX_TOKEN (`dlx ui` keeps them from the app behind its gate).
    """
    address = st.get_option("server.address")
    if address is not None and not auth.is_loopback(address):
        return (f"This app listens on {address or 'every interface'} directly, where Streamlit's own endpoints "
                f"answer anyone, so it shows nothing. Start it with `dlx ui --host {address or '0.0.0.0'}`, "
                "which asks for a secret at its login gate, or with `dlx ui` (127.0.0.1 only).")
    if auth.Secrets.from_env().required:
        return (f"{auth.PASSWORD_VARIABLE} or {auth.TOKEN_VARIABLE} is set, but this app was not started by "
                "`dlx ui`, whose login gate asks for it, so it shows nothing. Start it with `dlx ui`.")
    return None


def require_gate() -> None:
    """Stop the run with the reason where the app is not guarded (see `unguarded`); a no-op where it is."""
    if reason := unguarded():
        st.error(reason, icon=":material/lock:")
        st.stop()


def enter_frame() -> None:
    """Called first by every page: hand a page that Streamlit ran without streamlit_app.py over to it.

    st.navigation switches the server out of the folder mode (Streamlit's documented behaviour);
    the rerun then runs streamlit_app.py, which picks the same page from the URL and keeps its
    query (/runs?run=3). It reruns only once the folder mode is off, so it can never loop.
    A no-op wherever streamlit_app.py already ran in this session (it sets FRAMED only after its
    guard); a page that runs outside the frame anyway still passes the guard first.
    """
    if FRAMED in st.session_state:
        return
    if in_folder_mode():
        st.navigation(app_pages())
        if not in_folder_mode():
            st.rerun()
    require_gate()


def follow_job(store: Store, job_id: int, what: str = "job") -> None:
    """A job's progress bar, refreshed each second, with a button that cancels it; the page reruns when the job
    ends."""
    if st.button(f"Cancel the {what}", key=f"job.cancel.{job_id}", icon=":material/cancel:"):
        store.queue.cancel_job(job_id)  # a queued job ends now; the worker stops a running one within a second

    @st.fragment(run_every="1s")
    def progress() -> None:
        job = store.queue.get_job(job_id)
        if job is None or job.status not in ACTIVE:
            st.rerun()
        st.progress(job.progress, text=f"{what} #{job.id} {job.status}: {job.progress:.0%}")

    progress()


def show_job(store: Store, job: Job | None, what: str = "job") -> bool:
    """True while the job is queued or running (its progress is followed); a failed or cancelled one says why."""
    if job is not None and job.status in ACTIVE:
        follow_job(store, job.id, what)
        return True
    if job is not None and job.status in ("failed", "cancelled"):
        st.error(f"Job #{job.id} {job.status}: {md(failure_reason(job))}")
    return False


def queue_button(store: Store, label: str, key: str, submit: Callable[[], object]) -> None:
    """A button that queues a job (and starts a worker where the app may) and reruns the page."""
    if st.button(label, key=key):
        submit()
        if settings.autostart_worker():
            ensure_worker(store)
        st.rerun()


def queued_result(store: Store, stored: Callable[[], T | None], find: Callable[[], Job | None],
                     submit: Callable[[], object], button: str, key: str, what: str = "job") -> T | None:
    """A worker job's stored result; else its job's progress or failure and a button that queues it (None then).
    The Explain page's jobs (maps, scores, over training, sanity checks, influence) all go this way."""
    try:
        result = stored()
        if result is not None:
            return result
        if not show_job(store, find(), what):
            queue_button(store, button, key, submit)
    except DlxError as err:
        st.error(md(err), icon=":material/error:")
    return None
