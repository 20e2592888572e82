"""Deep links on a fresh server: the first request may open any page URL and still get the whole app.

Each test's server is new and its first request is the page URL itself, the case where Streamlit
used to run the page on its own (its legacy pages/ folder mode, see pages/__init__.py).
"""
from __future__ import annotations

import re

import pytest

from dlx.tracking import start_run
from tests.helpers.browser import open_page, worker_pids
from tests.helpers.processes import wait_for

pytestmark = [pytest.mark.browser]

PAGE_LINKS = ["Launch", "Runs", "Compare", "Explain", "Data"]


def assert_framed(page, app) -> None:
    """The page sits in streamlit_app.py's frame: its navigation, its sidebar, its worker start."""
    sidebar = page.get_by_test_id("stSidebar")
    sidebar.get_by_text("Data directory").wait_for()
    sidebar.get_by_text(str(app.home), exact=True).wait_for()
    sidebar.get_by_text(re.compile(r"^Worker")).wait_for()
    links = sidebar.get_by_test_id("stSidebarNavLink").all_inner_texts()
    assert [text.split("\n")[-1].strip() for text in links] == PAGE_LINKS
    wait_for(lambda: worker_pids(app.home), message="the worker the app starts")
    assert page.get_by_role("button", name="Deploy").count() == 0  # .streamlit/config.toml: viewer toolbar


@pytest.mark.parametrize(("path", "heading"), [("/runs", "Runs"), ("/compare", "Compare runs"),
                                               ("/explain", "Explain")])
def test_first_request_to_a_page_url_gets_the_app_frame(app_server, browser_page, path, heading):
    open_page(browser_page, app_server.url + path, heading)
    assert_framed(browser_page, app_server)
    assert browser_page.url == app_server.url + path


def test_first_request_to_a_run_link_opens_that_run(app_server, browser_page):
    with start_run(name="linked", config={"dataset": "digits", "model": "cnn"}, handle_signals=False) as run:
        run.log_metrics({"train_loss": 0.5}, step=1)
    open_page(browser_page, f"{app_server.url}/runs?run={run.id}", f"Run #{run.id}")
    assert_framed(browser_page, app_server)
    assert browser_page.url == f"{app_server.url}/runs?run={run.id}"
    browser_page.get_by_role("button", name="All runs").wait_for()
