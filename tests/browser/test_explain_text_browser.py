"""The Explain page in a real browser for a text run (a small transformer, and MiniLM with its default
freezing) and a ViT run: model view grid, head view, coloured words, and the rollout over the image,
with no exception box."""
from __future__ import annotations

import re

import pytest

from tests.helpers.browser import open_page, snapshot
from tests.helpers.processes import train_in_process

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def open_explain(page, url: str, run_id: int) -> None:
    open_page(page, url, "Launch a training run")
    open_page(page, f"{url}/explain?run={run_id}", "Explain")


def test_text_run_shows_model_view_head_view_and_coloured_words(dlx_home, app_server, browser_page, artifacts_dir):
    run_id = train_in_process({"dataset": "sentiment", "model": "transformer", "epochs": 1, "batch_size": 64,
                               "model_options": {"layers": 2, "heads": 2, "hidden": 16, "max_length": 24},
                               "device": "cpu"})
    page = browser_page
    open_explain(page, app_server.url, run_id)
    page.get_by_text("Model view").wait_for(timeout=120_000)
    model_view = page.locator(".js-plotly-plot").first
    model_view.locator("g.hm").nth(3).wait_for(state="attached")  # 2 layers × 2 heads
    assert model_view.locator("g.hm").count() == 4
    page.get_by_text("Head view").wait_for()
    assert page.locator(".js-plotly-plot").filter(has_text="head 0").count() >= 1
    page.get_by_role("tab", name="Token attributions").click()
    page.get_by_text("Layer Integrated Gradients").first.wait_for(timeout=60_000)
    assert page.locator("span[title]").count() > 3  # the words, each coloured, with its value
    assert page.get_by_test_id("stException").count() == 0
    snapshot(page, artifacts_dir / "explain-text-page.png")


def test_vit_run_shows_rollout_over_the_image(dlx_home, app_server, browser_page, artifacts_dir):
    run_id = train_in_process({"dataset": "digits", "model": "vit", "epochs": 1, "device": "cpu",
                               "model_options": {"layers": 2, "heads": 2, "hidden": 16, "mlp": 32}})
    page = browser_page
    open_explain(page, app_server.url, run_id)
    # show_vit's overlays (rollout and each head), not the grid's "Attention rollout" map
    overlays = page.locator(".js-plotly-plot").filter(has_text="rollout").filter(has_text=re.compile(r"L\d+ H0"))
    overlays.first.locator("g.hm").first.wait_for(timeout=180_000)  # drawn under the per-head maps' layer choice
    assert page.get_by_test_id("stException").count() == 0
    snapshot(page, artifacts_dir / "explain-vit-page.png")


def test_minilm_run_with_its_default_freezing_shows_72_maps_rollout_and_coloured_tokens(
        dlx_home, app_server, browser_page, artifacts_dir):
    """Issue 25's journey: `dlx run --dataset sentiment --model minilm --epochs 1`, then the Explain page.
    MiniLM's embeddings and four lower layers are frozen by default; the page must not care."""
    run_id = train_in_process({"dataset": "sentiment", "model": "minilm", "epochs": 1, "device": "cpu"})
    page = browser_page
    open_explain(page, app_server.url, run_id)
    page.get_by_text("Model view").wait_for(timeout=120_000)
    model_view = page.locator(".js-plotly-plot").first
    model_view.locator("g.hm").nth(71).wait_for(state="attached", timeout=60_000)
    assert model_view.locator("g.hm").count() == 6 * 12
    flows = page.locator(".js-plotly-plot").filter(has_text="rollout").filter(has_text="relevance")
    flows.first.locator("g.trace.bars").first.wait_for(state="attached")
    assert flows.first.locator("g.trace.bars").count() == 2  # rollout and relevance over the tokens
    page.get_by_role("tab", name="Token attributions").click()
    sentences = page.locator("div:has(> span[title])")  # one per default method, its words coloured
    sentences.nth(2).wait_for(timeout=120_000)
    assert sentences.count() == 3 and page.locator("span[title]").count() > 3 * 3
    assert page.get_by_test_id("stException").count() == 0
    assert "require grad" not in page.content() and "RuntimeError" not in page.content()
    snapshot(page, artifacts_dir / "explain-minilm-page.png")
