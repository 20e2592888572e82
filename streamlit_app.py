"""The app's frame: the guard, navigation over pages/ and the sidebar every page shares.

Where a secret is required, `dlx ui`'s login gate (dlx/gate/proxy.py) asks for it before any request
reaches this app; nothing of the app (sidebar, page, worker start) runs where it is not so guarded
(pages.require_gate). A session's first
visit starts a worker when none is alive (unless DLX_AUTOSTART_WORKER=0), so `dlx ui` is the one
command a user needs. Every page runs inside this frame, even when the
first request of a fresh server opens a page URL (see pages/__init__.py).
"""
import streamlit as st

from db.engine import database_label
from dlx import settings
from dlx.data import user_sets
from dlx.errors import DlxError
from dlx.jobs import ensure_worker, status
from dlx.jobs.capacity import capacity
from dlx.jobs.capacity import describe as describe_capacity
from dlx.store import StoreError, default_store, unreadable
from dlx.training import devices
from dlx.views.text import md
from pages import FRAMED, app_pages, require_gate, unguarded

st.set_page_config(page_title="dlx", page_icon=":material/science:", layout="wide")

WORKER_STATES = {  # state -> (colour, what it means)
    "alive": ("green", "alive"),
    "starting": ("orange", "starting"),
    "started": ("orange", "started just now"),
    "down": ("red", "not running"),
}


@st.cache_resource
def device_line() -> str:
    """What this machine trains on; asked once per server (CUDA discovery is slow)."""
    return devices.describe()


def start_worker_once() -> None:
    """ensure_worker() on a session's first run only: reruns must not spawn anything.

    A worker the app starts stops when the app's process ends (`dlx ui` usually starts it first).
    """
    if "worker_checked" not in st.session_state:
        st.session_state.worker_checked = True
        if settings.autostart_worker():
            ensure_worker(default_store(), stop_with_parent=True)


@st.fragment(run_every="3s")
def worker_panel() -> None:
    store = default_store()
    current = status(store)
    color, meaning = WORKER_STATES[current.state]
    st.markdown(f"**Worker** :{color}[●] {meaning}")
    runs = store.status_counts()  # runs, as the Runs page counts them (a script's too), read on every tick
    st.caption(f"{runs.get('running', 0)} running · {runs.get('queued', 0)} queued"
               + (f" · {current.workers} workers" if current.workers > 1 else ""))
    if offered := describe_capacity(capacity(store)):
        st.caption(f"Executor {md(offered)}")
    if current.state == "down":
        if st.button("Start a worker", icon=":material/play_arrow:", key="sidebar.start_worker"):
            ensure_worker(default_store(), stop_with_parent=True)
            st.rerun(scope="fragment")
        st.caption("or run `dlx worker` in a terminal")


def sidebar() -> None:
    with st.sidebar:
        worker_panel()
        st.markdown(f"**Device** {md(device_line())}")
        st.markdown("**Data directory**")
        st.code(str(settings.home()), language=None, wrap_lines=True)
        st.markdown("**Store**")
        st.code(database_label(), language=None, wrap_lines=True)


def check_database() -> None:
    """Stop with one message naming the store, not a traceback on every page, when the database cannot be
    opened or read (unreachable, damaged, not a database); a store that reads but takes no writes (a full
    disk, a read-only file) passes: pages only read, and the writes they try are best-effort."""
    try:
        default_store().status_counts()
    except DlxError as err:
        st.error(f"The database {md(database_label())} cannot be opened: {md(err)}. Check DLX_DATABASE_URL "
                 "(or DLX_HOME) and that the database is reachable.", icon=":material/database:")
        st.stop()
    except (StoreError, OSError) as err:
        st.error(md(unreadable(err)), icon=":material/database:")
        st.stop()


def check_settings() -> None:
    """A bad environment variable is named once here, not raised from the sidebar and every page."""
    try:
        for check in (settings.stale_after, settings.cpu_job_slots, settings.standby_processes):
            check()  # a call, not a bare expression: Streamlit's magic would print its value
    except DlxError as err:
        st.error(f"{md(err)} Fix it in the environment and restart the app.", icon=":material/settings:")
        st.stop()


user_sets.list_in_registry(default_store)  # the pages list users' data sets from the app's store
# Navigation comes first so the URL's page is kept; hidden where the app shows nothing.
page = st.navigation(app_pages(), position="hidden" if unguarded() else "sidebar")
require_gate()
check_settings()
check_database()
start_worker_once()
sidebar()
st.session_state[FRAMED] = True
page.run()
