"""The one-file report in headless Chromium, opened from disk: it draws every figure and asks for nothing."""
from __future__ import annotations

import pytest

from dlx.explain.image.gallery import build_gallery
from dlx.explain.models_cache import get_loaded_run
from dlx.explain.samples import sample_inputs
from dlx.store import default_store
from dlx.views.report import report_html
from tests.helpers.browser import chromium_page

pytestmark = [pytest.mark.browser]


def test_report_opens_offline_and_plotly_draws_every_figure(trained_run, tmp_path, artifacts_dir):
    store = default_store()
    loaded = get_loaded_run(store, trained_run)
    build_gallery(loaded, sample_inputs(loaded.bundle.test, [0, 1]), ["a", "b"], ["saliency", "grad_cam"])
    store.set_tags(trained_run, {"owner": '<img src="https://evil.example/x.png"><script>alert(1)</script>'})
    path = tmp_path / "run.html"
    text = report_html(store, trained_run)
    path.write_text(text, encoding="utf-8")
    figures = text.count('class="plotly-graph-div"')
    with chromium_page() as page:
        requests, errors, dialogs = [], [], []
        page.on("request", lambda request: requests.append(request.url))
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(path.as_uri())
        page.locator(".js-plotly-plot").nth(figures - 1).wait_for(state="attached")
        page.wait_for_load_state("load")
        assert page.locator(".js-plotly-plot").count() == figures == 4  # curves, other metrics, confusion matrix, maps
        assert page.locator(".js-plotly-plot g.hm").count() >= 2 * 2 + 1  # the maps and the confusion matrix
        page.screenshot(path=artifacts_dir / "report.png", full_page=True)
    assert requests == [path.as_uri()]
    assert errors == [] and dialogs == []
