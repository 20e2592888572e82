"""The app's pages in navigation order, and the hand-over that keeps every page inside streamlit_app.py.

Why the hand-over: Streamlit (1.67) still has its legacy `pages/` folder mode. The first session of
a server process turns it on because `pages/` sits next to the main script
(`PagesManager.__init__` sets `PagesManager.uses_pages_directory`), and only a call to
`st.navigation` turns it off, for all sessions. While it is on, `ScriptRunner._run_script` calls
`_mpa_v1`, which runs the page a URL names on its own: a fresh server's first request to /runs
got that page without streamlit_app.py's navigation, sidebar and worker start. No config option
changes this. (Streamlit skips `__init__.py` when it lists the folder's pages.)
"""
from __future__ import annotations

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

FRAMED = "app.framed"  # set by streamlit_app.py before it runs a page
HANDED_OVER = "app.handed_over"


def app_pages() -> list[st.Page]:
    """New Page objects on every run: st.navigation marks the one it picks runnable, so sessions cannot share them."""
    return [
        st.Page("pages/launch.py", title="Launch", icon=":material/rocket_launch:", default=True),
        st.Page("pages/runs.py", title="Runs", icon=":material/monitoring:"),
        st.Page("pages/explain.py", title="Explain", icon=":material/insights:"),
    ]


def in_folder_mode() -> bool:
    """Whether Streamlit runs the legacy folder mode now (never for a page run on its own, as in AppTest).

    Reads (never sets) an internal of Streamlit 1.67; should a release drop it, this reads False,
    and tests/test_browser_deeplinks.py tells whether first requests still get the frame.
    """
    return bool(getattr(PagesManager, "uses_pages_directory", False))


def enter_frame() -> None:
    """Called first by every page: hand a page that Streamlit ran without streamlit_app.py over to it.

    st.navigation switches the server out of the folder mode (Streamlit's documented behaviour);
    the rerun then runs streamlit_app.py, which picks the same page from the URL and keeps its
    query (/runs?run=3). At most once per session, so it can never loop.
    A no-op wherever streamlit_app.py already ran in this session.
    """
    if FRAMED in st.session_state or HANDED_OVER in st.session_state or not in_folder_mode():
        return
    st.session_state[HANDED_OVER] = True
    st.navigation(app_pages())
    st.rerun()
