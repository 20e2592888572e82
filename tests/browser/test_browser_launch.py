"""The first journey in a real browser: launch digits + CNN from the Launch page, watch it succeed."""
from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from dlx.store import default_store
from tests.helpers.browser import open_page, reopen, snapshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

def metric_value(page, label: str) -> str:
    metric = page.get_by_test_id("stMetric").filter(has_text=label).first
    return metric.get_by_test_id("stMetricValue").inner_text()


def test_run_launched_from_the_browser_succeeds_on_the_runs_page(app_server, browser_page, artifacts_dir):
    page = browser_page
    open_page(page, app_server.url, "Launch a training run")
    page.get_by_text("This queues 1 run: digits / cnn.").wait_for()
    expect(page.get_by_role("textbox", name="Learning rate")).to_have_value("0.003")  # the recipe's default
    snapshot(page, artifacts_dir / "launch-page.png")
    # Three epochs train in about 3 s, less than a cold first load of the Runs page can take: twelve
    # keep the run going long enough for the live view to be seen on any machine.
    epochs = page.get_by_role("textbox", name="Epochs")
    epochs.fill("12")
    epochs.press("Enter")
    expect(epochs).to_have_value("12")

    page.get_by_role("button", name="Launch", exact=True).click()  # the page follows the run it queued at once
    title = page.get_by_role("heading", name=re.compile(r"Run #\d+"))
    title.wait_for()
    run_id = int(re.search(r"#(\d+)", title.inner_text()).group(1))
    assert run_id == default_store().list_runs()[0].id
    seen: list[str] = []  # the progress bar's texts while the run trains, in order
    deadline = time.monotonic() + 300  # a guard against a hung run, not a speed check
    while "succeeded" not in title.inner_text():
        assert not re.search("failed|cancelled", title.inner_text()), \
            page.get_by_test_id("stAlert").all_inner_texts()
        assert time.monotonic() < deadline, f"run #{run_id} did not finish; progress seen: {seen}"
        for text in page.get_by_test_id("stProgress").all_inner_texts():
            if text not in seen:
                seen.append(text)
                if len(seen) == 1:  # a picture of the live run
                    snapshot(page, artifacts_dir / "runs-page-running.png")
        page.wait_for_timeout(100)
    assert seen, "no progress bar while the run was running"  # e.g. "Epoch 2 of 12 · step 74 of 444 ·…"
    page.locator(".js-plotly-plot g.trace").first.wait_for()  # the curves

    accuracy = float(metric_value(page, "Test accuracy"))
    assert accuracy >= 0.95
    assert accuracy == pytest.approx(default_store().get_run(run_id).summary["test_acc"], abs=1e-4)
    page.get_by_text("Confusion matrix").wait_for()
    snapshot(page, artifacts_dir / "runs-page-succeeded.png")

    # Closing the browser and opening it again finds the run finished, in the list and in its detail.
    again = reopen(page)
    open_page(again, f"{app_server.url}/runs", "Runs")
    again.get_by_text("succeeded 1").wait_for()
    snapshot(again, artifacts_dir / "runs-page-list.png")
    open_page(again, f"{app_server.url}/runs?run={run_id}", f"Run #{run_id}")
    assert float(metric_value(again, "Test accuracy")) == accuracy
