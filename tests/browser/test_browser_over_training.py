"""Explanations over training in a real browser: a run trained with checkpoint_every=1, its over-training
view computed by the app's worker and drawn, then its sanity checks' badges and curves, with no exception."""
from __future__ import annotations

import pytest

from tests.helpers.browser import open_page
from tests.helpers.processes import train_in_process

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_over_training_view_of_a_run_with_kept_checkpoints(app_server, browser_page, artifacts_dir):
    run_id = train_in_process({"dataset": "digits", "model": "cnn", "epochs": 2, "checkpoint_every": 1})
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    open_page(page, f"{app_server.url}/explain?run={run_id}", "Explain")
    page.get_by_text(f"Run #{run_id}, time per sample").wait_for(timeout=120_000)
    page.get_by_role("tab", name="Over training").click()
    page.get_by_role("button", name="Explain these samples under every kept checkpoint on the worker").click()
    page.get_by_text("Spearman with the final map").first.wait_for(timeout=180_000)
    maps = page.locator(".js-plotly-plot").last
    maps.locator("g.hm").nth(7).wait_for(state="attached")  # four samples × two kept checkpoints
    assert maps.get_by_text("epoch 2").count() >= 4
    assert page.get_by_test_id("stException").count() == 0 and errors == []
    page.screenshot(path=artifacts_dir / "explain-over-training.png", full_page=True)

    page.get_by_role("tab", name="Sanity checks").click()
    page.get_by_role("button", name="Run the sanity checks on the worker").click()
    page.get_by_text("Saliency: passed").wait_for(timeout=240_000)  # a badge per method, as the paper found
    assert page.get_by_text("Guided Backprop: failed").count() == 1
    page.get_by_text("is above 0.3").first.wait_for()  # the rule, stated
    assert page.get_by_test_id("stException").count() == 0 and errors == []
    page.screenshot(path=artifacts_dir / "explain-sanity.png", full_page=True)
