"""What a new user sees drawn (issue 31), in Chromium: a click on a runs-table row opens the run, a launched
run's curves against epochs, the Compare scatter's log axis and legend, parallel coordinates' log lr."""
from __future__ import annotations

import pytest

from dlx.tracking import start_run
from tests.helpers.browser import open_page, running_app, snapshot

pytestmark = [pytest.mark.browser]

LAYOUT = """key => {
    const el = [...document.querySelectorAll('.js-plotly-plot')].find(e => e._fullLayout && e.closest(
        `[class*='st-key-${key.replaceAll('.', '-')}']`));
    if (!el) return null;
    const l = el._fullLayout;
    return {x: l.xaxis && l.xaxis.type, title: l.xaxis && l.xaxis.title && l.xaxis.title.text,
            legend: el.querySelectorAll('.legend .traces').length,
            labels: el.data[0].dimensions ? el.data[0].dimensions.map(d => d.label) : []};
}"""


def epoch_run(lr: float, test_acc: float) -> int:
    """A script's run that logs per batch and an `epoch` series, as the training loop does (a launched run's
    page would first count its model's size in a child process: slow on a loaded machine)."""
    with start_run(experiment="mine", name=f"lr{lr:g}", config={"lr": lr, "weight_decay": lr / 10},
                   handle_signals=False) as run:
        run.log_params({"lr": lr, "weight_decay": lr / 10})
        run.log_series("train_loss", [2.0 / (1 + s) for s in range(20)], 1)
        for epoch in (1, 2):
            run.log_metrics({"epoch": epoch, "val_loss": 1 / epoch, "val_acc": 0.5 + epoch / 10}, step=epoch * 10)
        run.log_metrics({"test_acc": test_acc}, step=20)
        return run.id


def test_a_row_click_opens_the_run_epochs_on_x_and_log_axes_with_legends(dlx_home, browser_page, artifacts_dir):
    ids = [epoch_run(lr, 0.5 + i / 10) for i, lr in enumerate((1e-4, 1e-3, 1e-2))]
    page = browser_page
    with running_app(dlx_home, env={"DLX_AUTOSTART_WORKER": "0"}) as app:
        open_page(page, app.url + "/runs", "Runs")
        table = page.get_by_test_id("stDataFrame")
        table.wait_for()
        page.wait_for_timeout(500)  # the grid sizes its columns after its first paint
        box = table.bounding_box()
        assert box is not None
        # The first data row (the newest run), on a cell half way across: not the checkbox column.
        page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + 35 + 17)
        page.wait_for_url(f"**run={ids[-1]}**")
        page.get_by_role("heading", name=f"Run #{ids[-1]}").first.wait_for()
        page.wait_for_function(f"() => ({LAYOUT})('runs.curves') !== null", timeout=60_000)
        curves = page.evaluate(LAYOUT, "runs.curves")
        assert curves["title"] == "epoch"

        open_page(page, f"{app.url}/compare?runs={','.join(map(str, ids))}&metric=val_acc", "Compare runs")
        page.get_by_label("Parameter").first.wait_for()
        page.wait_for_function(f"() => ({LAYOUT})('compare.scatter') !== null", timeout=60_000)
        scatter = page.evaluate(LAYOUT, "compare.scatter")
        compared = page.evaluate(LAYOUT, "compare.curves")
        parallel = page.evaluate(LAYOUT, "compare.parallel")
        snapshot(page, artifacts_dir / "compare-log-axes.png")
        assert page.get_by_test_id("stException").count() == 0
    assert scatter["title"] in {"lr", "weight_decay"} and scatter["x"] == "log"
    assert scatter["legend"] == 3  # one entry per run
    assert "lr (log)" in parallel["labels"]
    assert compared["title"] == "epoch"  # val_acc is logged once per epoch: drawn against epochs
