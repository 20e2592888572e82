"""Issue 32's journey in a real browser: a tiny BERT fine-tuned by Hugging Face's Trainer with DlxCallback is
opened on the Runs page (its loss curves) and explained on the Explain page (attention, coloured words),
with no exception box."""
from __future__ import annotations

import pytest

from tests.helpers.browser import open_page, snapshot
from tests.helpers.tiny_bert import make_trainer

pytestmark = [pytest.mark.browser, pytest.mark.slow]
pytest.importorskip("accelerate")


def test_trainer_run_shows_its_curves_and_is_explained(dlx_home, app_server, browser_page, artifacts_dir, tmp_path):
    from dlx.integrations.transformers import DlxCallback

    callback = DlxCallback(name="tiny-bert")
    make_trainer(str(tmp_path / "hf-out"), [callback]).train()
    run_id = callback.run.id
    page = browser_page
    open_page(page, f"{app_server.url}/runs?run={run_id}", f"Run #{run_id}")
    curves = page.locator(".js-plotly-plot g.trace").filter(visible=True)
    curves.first.wait_for(timeout=60_000)  # the curves drawn
    page.get_by_text("eval_loss").first.wait_for(state="attached")
    assert page.get_by_test_id("stException").count() == 0
    snapshot(page, artifacts_dir / "trainer-run-page.png")

    open_page(page, f"{app_server.url}/explain?run={run_id}", "Explain")
    page.get_by_text("Model view").wait_for(timeout=120_000)
    model_view = page.locator(".js-plotly-plot").first
    model_view.locator("g.hm").nth(3).wait_for(state="attached")  # 2 layers × 2 heads
    page.get_by_role("tab", name="Token attributions").click()
    page.get_by_text("Layer Integrated Gradients").first.wait_for(timeout=60_000)
    assert page.locator("span[title]").count() > 2  # the words, each coloured, with its value
    assert page.get_by_test_id("stException").count() == 0
    snapshot(page, artifacts_dir / "trainer-run-explained.png")
