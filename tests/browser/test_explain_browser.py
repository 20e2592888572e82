"""The Explain page in a real browser: a trained digits run's heatmaps are drawn."""
from __future__ import annotations

import pytest

from tests.helpers.browser import open_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_explain_page_draws_heatmaps_for_a_trained_digits_run(trained_run, app_server, browser_page,
                                                               artifacts_dir):
    page = browser_page
    open_page(page, app_server.url, "Launch a training run")
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Explain").click()
    page.get_by_role("heading", name="Explain").first.wait_for(timeout=60_000)
    page.get_by_text(f"Run #{trained_run}, time per sample").wait_for(timeout=120_000)
    grid = page.locator(".js-plotly-plot").first
    grid.wait_for()
    heatmaps = grid.locator("g.hm")
    heatmaps.nth(11).wait_for(state="attached")  # four samples × three default methods
    assert heatmaps.count() == 12
    for title in ("Saliency", "Integrated Gradients", "Grad-CAM", "top-k"):
        assert grid.get_by_text(title).count() >= 4
    page.screenshot(path=artifacts_dir / "explain-page.png", full_page=True)
