"""Influence in a real browser: a digits run with planted label noise, the Influence tab's job computed by the
app's worker, then proponents and opponents, the self-influence review and the noise table, with no exception."""
from __future__ import annotations

import pytest

from tests.helpers.browser import open_page
from tests.helpers.processes import train_in_process

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_influence_tab_of_a_digits_run_with_planted_noise(app_server, browser_page, artifacts_dir):
    run_id = train_in_process({"dataset": "digits", "model": "cnn", "epochs": 3, "checkpoint_every": 1,
                               "label_noise": 0.1})
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    open_page(page, f"{app_server.url}/explain?run={run_id}", "Explain")
    page.get_by_text(f"Run #{run_id}, time per sample").wait_for(timeout=120_000)
    page.get_by_role("tab", name="Influence").click()
    page.get_by_role("button", name="Compute influence on the worker").click()
    page.get_by_text("Self-influence review").wait_for(timeout=180_000)
    page.get_by_text("Opponents").first.wait_for()
    page.get_by_text("Planted label noise").wait_for()
    assert page.get_by_text("flipped").count() >= 1  # planted noise in the review's captions
    images = page.get_by_test_id("stImage").locator("img")
    images.nth(8 * 4 * 2).wait_for(state="attached")  # k = 8: proponents and opponents of four samples, the review
    first = images.first
    first.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=first.element_handle())
    assert page.get_by_test_id("stException").count() == 0 and errors == []
    page.screenshot(path=artifacts_dir / "explain-influence.png", full_page=True)
