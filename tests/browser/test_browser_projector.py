"""The Projector in a real browser: 1,000 digits points (a seeded sample of a run's training split) computed by
the app's worker, drawn as WebGL points coloured by correctness; a click on a point opens that sample's
explanation, with no exception."""
from __future__ import annotations

import pytest

from tests.helpers.browser import open_page, snapshot
from tests.helpers.processes import train_in_process

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# The most isolated point of the scatter (so the click cannot land on a neighbour) and its pixel position in
# the page: plotly's axes map data to the plot area (d2p), offset by the area's place in the plot's div.
ISOLATED_POINT = """gd => {
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
  const points = [];
  gd._fullData.forEach(t => t.x.forEach((x, i) => points.push(
    {px: box.left + xa._offset + xa.d2p(x), py: box.top + ya._offset + ya.d2p(t.y[i]),
     sample: t.customdata[i][0], name: t.name})));
  let best = null, far = -1;
  for (const p of points) {
    let near = Infinity;
    for (const q of points) if (q !== p) near = Math.min(near, Math.hypot(p.px - q.px, p.py - q.py));
    if (near > far) { far = near; best = p; }
  }
  return {...best, count: points.length, names: gd._fullData.map(t => t.name), types: gd._fullData.map(t => t.type)};
}"""


def _choose(page, label: str, option: str) -> None:
    page.get_by_test_id("stSelectbox").filter(has_text=label).last.click()
    page.get_by_role("option", name=option, exact=True).click()


def test_projector_of_1000_digits_points_coloured_by_correctness_opens_a_clicked_sample(
        app_server, browser_page, artifacts_dir):
    run_id = train_in_process({"dataset": "digits", "model": "cnn", "epochs": 1,
                               "model_options": {"width": 8, "hidden": 32}})
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    open_page(page, f"{app_server.url}/explain?run={run_id}", "Explain")
    page.get_by_text(f"Run #{run_id}, time per sample").wait_for(timeout=120_000)
    page.get_by_role("tab", name="Projector").click()
    _choose(page, "Split", "train")
    points = page.get_by_test_id("stNumberInput").filter(has_text="Points").locator("input")
    points.fill("1000")
    points.press("Enter")
    projections = page.get_by_test_id("stMultiSelect").filter(has_text="Projections").locator("input")
    projections.click()
    projections.press("Backspace")  # UMAP off (PCA stays): the test pays no numba compile
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Compute the projection of 1000 train samples on the worker").click()
    scatter = page.locator(".js-plotly-plot").filter(has=page.locator("canvas"))
    page.get_by_text("1000 train samples of run").wait_for(timeout=180_000)
    _choose(page, "Colour by", "correct")
    page.wait_for_function("""() => [...document.querySelectorAll('.js-plotly-plot')].some(gd =>
        gd._fullData && gd._fullData.some(t => t.name === 'wrong' || t.name === 'correct'))""")
    gd = page.locator(".js-plotly-plot").filter(has=page.locator("canvas")).first
    gd.scroll_into_view_if_needed()
    point = gd.evaluate(ISOLATED_POINT)
    assert point["count"] == 1000 and set(point["types"]) == {"scattergl"}
    assert set(point["names"]) <= {"correct", "wrong"}
    page.mouse.move(point["px"], point["py"])
    page.mouse.click(point["px"], point["py"])
    sample = page.get_by_test_id("stNumberInput").filter(has_text="Sample explained").locator("input")
    page.wait_for_function("""want => [...document.querySelectorAll('[data-testid=stNumberInput] input')]
                           .some(i => i.value === want)""", arg=str(point["sample"]), timeout=60_000)
    assert sample.input_value() == str(point["sample"])
    page.locator(".js-plotly-plot").get_by_text(f"train #{point['sample']}").first.wait_for(timeout=120_000)
    assert scatter.count() >= 1
    assert page.get_by_test_id("stException").count() == 0 and errors == []
    snapshot(page, artifacts_dir / "explain-projector.png")
