"""A search in a real browser: six trials launched from the Launch form's Search, followed to the Compare
page, whose study view draws the history and the importances once trials finish; no exception on the way."""
from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from dlx.search import study as studies
from dlx.store import default_store
from tests.helpers.browser import open_page, snapshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_search_launched_from_the_form_is_drawn_on_the_compare_page(app_server, browser_page, artifacts_dir):
    page = browser_page
    open_page(page, app_server.url, "Launch a training run")
    page.get_by_text("This queues 1 run: digits / cnn.").wait_for(timeout=120_000)  # the form, counted
    epochs = page.get_by_role("textbox", name="Epochs")
    epochs.fill("1")
    epochs.press("Enter")
    expect(epochs).to_have_value("1")
    page.get_by_test_id("stButtonGroup").get_by_text("Search", exact=True).click()
    space = page.get_by_role("textbox", name="Search space")
    space.fill("lr=log:1e-3:3e-2\nbatch_size=choice:32,64")
    space.press("Control+Enter")
    trials = page.get_by_role("spinbutton", name="Trials")
    trials.fill("6")
    trials.press("Enter")
    name = page.get_by_role("textbox", name="Search name")
    name.fill("in-the-browser")
    name.press("Enter")
    page.get_by_text("6 trials, 1 at a time").wait_for()
    snapshot(page, artifacts_dir / "launch-search.png")
    page.get_by_role("button", name="Launch search").click()
    page.get_by_role("link", name="Follow the search").click()
    page.get_by_role("heading", name="Compare runs").wait_for()
    page.get_by_text("Search", exact=True).first.wait_for()
    store = default_store()
    deadline = time.monotonic() + 420  # a guard against a hung search, not a speed check
    while sum(t.state.name == "COMPLETE" for t in studies.load(store, "in-the-browser")[0].get_trials()) < 2:
        assert time.monotonic() < deadline, "fewer than 2 trials finished"
        expect(page.get_by_test_id("stException")).to_have_count(0)
        page.wait_for_timeout(2000)
    page.reload()  # once: drawing the figures the first time imports plotting and fANOVA (seconds)
    page.get_by_role("heading", name="Compare runs").wait_for()
    page.get_by_text("Parameter importance (fANOVA)").wait_for(timeout=180_000)
    expect(page.locator(".js-plotly-plot")).not_to_have_count(0, timeout=60_000)
    assert page.get_by_text("drawn once 2 trials have finished").count() == 0
    page.get_by_text("Best: run #").first.wait_for()
    expect(page.get_by_test_id("stException")).to_have_count(0)
    snapshot(page, artifacts_dir / "compare-study.png")
    page.get_by_role("button", name="Extend").click()  # 4 more trials: the search is active again
    wait = time.monotonic() + 60
    while studies.load(store, "in-the-browser")[1].trials != 10:
        assert time.monotonic() < wait, "the extension did not reach the study"
        page.wait_for_timeout(200)
    stop = page.get_by_role("button", name="Stop the search")
    expect(stop).to_be_enabled(timeout=120_000)
    stop.click()
    deadline = time.monotonic() + 60
    while not studies.load(default_store(), "in-the-browser")[0].user_attrs.get(studies.STOPPED_ATTR):
        assert time.monotonic() < deadline, "the stop did not reach the study"
        page.wait_for_timeout(200)
    expect(page.get_by_test_id("stException")).to_have_count(0)
