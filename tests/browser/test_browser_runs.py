"""The runs table in a real browser at 1400 px: it uses the width, shows what a sweep varies, grows."""
from __future__ import annotations

import pytest

from dlx.store import default_store
from dlx.tracking import start_run
from dlx.views import launch
from tests.helpers.browser import open_page, running_app

pytestmark = [pytest.mark.browser]


def finished_seed_sweep(seeds: int) -> None:
    """A sweep over seeds as the form queues it, each run then finished with results (no training)."""
    form = {**launch.to_form(launch.defaults_for("digits", "cnn")), "seed": ",".join(map(str, range(seeds)))}
    store = default_store()
    for n, run_id in enumerate(launch.submit_plan(store, launch.plan(store, form), sweep="seeds")):
        with start_run(run_id=run_id, handle_signals=False) as run:
            run.update_summary({"test_acc": 0.95 + n / 1000, "val_acc": 0.96, "total_steps": 135})


def test_runs_table_fits_1400_px_shows_the_seed_and_grows_with_its_rows(dlx_home, browser_page, artifacts_dir):
    finished_seed_sweep(12)
    with start_run(experiment="mine", config={"lr": 0.1}, handle_signals=False) as run:  # the README's
        run.log_metrics({"loss": 0.5}, step=1)
    page = browser_page
    page.set_viewport_size({"width": 1400, "height": 1000})
    with running_app(dlx_home, env={"DLX_AUTOSTART_WORKER": "0"}) as app:
        open_page(page, app.url + "/runs", "Runs")
        table = page.get_by_test_id("stDataFrame")
        table.wait_for()
        page.wait_for_timeout(500)  # the grid sizes its columns after its first paint
        page.screenshot(path=artifacts_dir / "runs-table-1400.png", full_page=True)
        # The grid paints on a canvas; its accessibility table holds the same headers and cells.
        headers = table.locator("th[role=columnheader]").all_text_contents()
        cells = table.locator("td").all_text_contents()
        scroller = table.locator(".dvn-scroller").first
        width, visible_width, height, visible_height = scroller.evaluate(
            "e => [e.scrollWidth, e.clientWidth, e.scrollHeight, e.clientHeight]")
    assert {"seed", "experiment", "lr", "test acc", "status", "started"} <= set(headers)
    assert not {"optimizer", "batch", "epochs"} & set(headers)  # the same for every run: no column
    assert width <= visible_width + 1, "columns behind a horizontal scroll"  # +1: sub-pixel rounding
    assert height <= visible_height + 1, "rows behind a vertical scroll"
    assert len(cells) >= 13 * len(headers) - 13 and "None" not in cells
