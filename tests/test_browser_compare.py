"""The Compare page in Chromium: three trained runs of a sweep, their differing parameters and parallel coordinates."""
from __future__ import annotations

import pytest

from tests.browser import open_page, snapshot
from tests.conftest import train_in_process

pytestmark = [pytest.mark.browser]


def test_compare_shows_the_sweeps_curves_differing_params_and_parallel_coordinates(app_server, browser_page,
                                                                                    artifacts_dir):
    ids = [train_in_process({"dataset": "digits", "model": "mlp", "epochs": 1, "lr": lr, "sweep": "lr-grid"})
           for lr in (0.01, 0.003, 0.001)]
    page = browser_page
    open_page(page, f"{app_server.url}/compare?runs={','.join(map(str, ids))}&metric=val_acc", "Compare runs")
    page.get_by_text("1 of", exact=False).filter(has_text="parameters differ between these runs").wait_for()
    parallel = page.locator(".js-plotly-plot").filter(has=page.locator(".parcoords"))
    parallel.wait_for()
    assert "lr" in parallel.inner_text() and "val_acc" in parallel.inner_text()  # the differing param -> the metric
    assert page.locator(".js-plotly-plot").count() >= 3  # curves, parallel coordinates, scatter
    snapshot(page, artifacts_dir / "compare-page.png")
    assert page.get_by_test_id("stException").count() == 0
