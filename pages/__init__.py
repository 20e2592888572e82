"""The app's pages in navigation order, the login gate, and the hand-over that keeps every page inside streamlit_app.py.

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

from dlx import auth

FRAMED = "app.framed"  # set by streamlit_app.py before it runs a page (after the login gate)
LOGGED_IN = "auth.logged_in"


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
    and tests/test_browser_deeplinks.py tells whether first requests still get the frame.
    """
    return bool(getattr(PagesManager, "uses_pages_directory", False))


def logged_in() -> bool:
    """Whether this session may see the app: it gave the secret, or none is required."""
    return bool(st.session_state.get(LOGGED_IN)) or not auth.Secrets.from_env().required


def require_login() -> None:
    """Stop the run with a login form until the visitor gives the secret; a no-op where none is needed.

    A `?token=` in the URL logs in (the link `dlx ui` prints) and is then taken out of the address
    bar. Once in, the session stays in. An app exposed beyond this machine without any secret
    (`streamlit run` with a non-loopback `--server.address`, bypassing `dlx ui`) shows nothing.
    """
    if st.session_state.get(LOGGED_IN):
        return
    secrets = auth.Secrets.from_env()
    if not secrets.required:
        address = st.get_option("server.address")
        if address is not None and not auth.is_loopback(address):
            st.error(f"This app listens on {address or 'every interface'} without a secret, so it shows "
                     f"nothing. Start it with `dlx ui` (127.0.0.1 only), or set {auth.PASSWORD_VARIABLE} "
                     f"or {auth.TOKEN_VARIABLE}.", icon=":material/lock:")
            st.stop()
        return
    refused = False
    if "token" in st.query_params:
        token = st.query_params["token"]
        del st.query_params["token"]  # out of the address bar and the browser's history
        if secrets.accepts(token):
            st.session_state[LOGGED_IN] = True
            return
        refused = True
    st.title("dlx")
    with st.form("login"):
        given = st.text_input("Password or token", type="password", key="login.secret",
                              help=f"{auth.PASSWORD_VARIABLE}, or the token in the URL `dlx ui` printed")
        st.form_submit_button("Log in", icon=":material/login:")
    # A form's field changes only when it is submitted, so its value is the attempt (a submit's
    # trigger would not survive a hand-over rerun from enter_frame; the value does).
    if given:
        if secrets.accepts(given):
            st.session_state[LOGGED_IN] = True
            st.rerun()
        refused = True
    if refused:
        st.error("That password or token is not right.", icon=":material/lock:")
    st.stop()


def enter_frame() -> None:
    """Called first by every page: hand a page that Streamlit ran without streamlit_app.py over to it.

    st.navigation switches the server out of the folder mode (Streamlit's documented behaviour);
    the rerun then runs streamlit_app.py, which picks the same page from the URL and keeps its
    query (/runs?run=3). It reruns only once the folder mode is off, so it can never loop.
    A no-op wherever streamlit_app.py already ran in this session (it sets FRAMED only after its
    login gate); a page that runs outside the frame anyway still passes the gate first.
    """
    if FRAMED in st.session_state:
        return
    if in_folder_mode():
        st.navigation(app_pages())
        if not in_folder_mode():
            st.rerun()
    require_login()
