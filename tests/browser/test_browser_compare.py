"""Comparing in Chromium: a sweep of three trained runs overlaid on the Runs page without opening one, and the
Compare page's differing parameters, parallel coordinates and export."""
from __future__ import annotations

from pathlib import Path

import pytest

from dlx.store import default_store
from dlx.views import export
from tests.helpers.browser import open_page, snapshot
from tests.helpers.processes import train_in_process

pytestmark = [pytest.mark.browser]


@pytest.fixture
def sweep_of_three(dlx_home) -> list[int]:
    return [train_in_process({"dataset": "digits", "model": "mlp", "epochs": 1, "lr": lr, "sweep": "lr-grid"})
            for lr in (0.01, 0.003, 0.001)]


def drawn_runs(page, title: str) -> list[str]:
    """The run lines (named traces) of the chart with this title, read from Plotly's own data."""
    return page.evaluate("""title => {
        const plain = text => (text || '').replace(/<[^>]+>/g, '');  // Streamlit wraps titles in <b>
        const charts = [...document.querySelectorAll('.js-plotly-plot')]
            .filter(el => el.layout && el.layout.title && plain(el.layout.title.text) === title);
        return charts.length ? charts[0].data.filter(t => t.name).map(t => t.name) : [];
    }""", title)


def test_runs_page_overlays_the_sweeps_curves_without_opening_a_run(app_server, browser_page, artifacts_dir,
                                                                   sweep_of_three):
    page = browser_page
    open_page(page, f"{app_server.url}/runs", "Runs")
    page.wait_for_function("""() => [...document.querySelectorAll('.js-plotly-plot')]
        .some(el => el.layout && el.layout.title && el.layout.title.text.replace(/<[^>]+>/g, '') === 'val_acc'
                    && el.data.filter(t => t.name).length === 3)""")
    assert sorted(drawn_runs(page, "val_acc")) == sorted(f"#{run_id} digits/mlp" for run_id in sweep_of_three)
    assert sorted(drawn_runs(page, "train_loss")) == sorted(drawn_runs(page, "val_acc"))
    assert "run=" not in page.url  # no run was opened
    snapshot(page, artifacts_dir / "runs-glance.png")
    assert page.get_by_test_id("stException").count() == 0


def test_compare_shows_the_sweeps_curves_differing_params_and_parallel_coordinates(app_server, browser_page,
                                                                                    artifacts_dir, sweep_of_three,
                                                                                    tmp_path: Path):
    ids = sweep_of_three
    page = browser_page
    open_page(page, f"{app_server.url}/compare?runs={','.join(map(str, ids))}&metric=val_acc", "Compare runs")
    page.get_by_text("1 of", exact=False).filter(has_text="parameters differ between these runs").wait_for()
    parallel = page.locator(".js-plotly-plot").filter(has=page.locator(".parcoords"))
    parallel.wait_for()
    assert "lr" in parallel.inner_text() and "val_acc" in parallel.inner_text()  # the differing param -> the metric
    assert page.locator(".js-plotly-plot").count() >= 3  # curves, parallel coordinates, scatter
    snapshot(page, artifacts_dir / "compare-page.png")
    assert page.get_by_test_id("stException").count() == 0

    page.get_by_text("Prepare an export of these runs", exact=False).click()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    saved = tmp_path / "runs.csv"
    download.value.save_as(saved)
    assert export.from_csv(saved.read_text()) == export.from_csv(export.to_csv(export.selection(default_store(), ids)))
    assert page.get_by_test_id("stException").count() == 0
