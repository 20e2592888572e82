"""In Chromium: Markdown and HTML payloads in every field a user types (run, experiment, sweep, params, metric
keys, tags, note, error, class and column names) make no link, image, formula or request on any page, and
show as typed; a run with 10,000 metric names and a 10 MB param has a Runs page that finishes drawing."""
from __future__ import annotations

import pytest

from tests.helpers.browser import open_page, running_app
from tests.helpers.hostile_text import HOSTS, PAYLOAD, SHORT, payload_links, seed_runs, seed_table
from tests.helpers.runs import huge_run

pytestmark = [pytest.mark.browser]

SETTLE_MS = 1500  # charts and grids draw after the page's heading


def settle(page) -> None:
    page.wait_for_timeout(SETTLE_MS)
    page.get_by_test_id("stStatusWidget").wait_for(state="hidden", timeout=60_000)


def markup_from_payloads(page) -> list[str]:
    """URLs of links, images and frames in the DOM that lead to a payload's host, and any KaTeX formula."""
    urls = page.eval_on_selector_all("a[href], img[src], image, iframe[src], source[src]",
                                     "els => els.map(e => e.getAttribute('href') || e.getAttribute('src') || "
                                     "e.getAttribute('xlink:href') || '')")
    return (payload_links(urls) + (["a KaTeX formula"] if page.locator(".katex").count() else [])
            + (["Streamlit's logo"] if page.locator("img[alt='Streamlit logo']").count() else [])
            + (["an emoji"] if "\N{SMILING FACE WITH OPEN MOUTH AND SMILING EYES}" in page.inner_text("body") else []))


def test_payloads_in_every_field_stay_text_in_chromium(dlx_home, browser_page):
    first, second = seed_runs()
    seed_table()
    page = browser_page
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    with running_app(dlx_home, env={"DLX_AUTOSTART_WORKER": "0"}) as app:
        seen = {}
        for path, heading in (("/runs", "Runs"), (f"/runs?run={first}", f"Run #{first}"),
                              (f"/runs?run={second}", f"Run #{second}"), ("/compare", "Compare runs"),
                              ("/explain", "Explain"), ("/data", "Data"), ("/", "Launch a training run")):
            open_page(page, app.url + path, heading)
            settle(page)
            assert not markup_from_payloads(page), (path, markup_from_payloads(page))
            seen[path] = page.inner_text("body").replace("\u2060", "")  # invisible joiners stop autolinks
        # the Data page's browser, on the payload-named classes
        open_page(page, app.url + "/data", "Data")
        browse = page.get_by_test_id("stSelectbox").filter(has_text="Data set").last
        browse.click()
        page.keyboard.type("hostile")
        page.keyboard.press("Enter")
        page.get_by_text("Samples per class", exact=True).or_(page.get_by_text("Distribution of", exact=True)).first.wait_for()
        settle(page)
        assert not markup_from_payloads(page)
        seen["browse"] = page.inner_text("body").replace("\u2060", "")
    assert not [url for url in requested if any(host in url for host in HOSTS)]
    assert PAYLOAD in seen[f"/runs?run={first}"]  # name, experiment and error, as typed
    assert SHORT in seen["browse"]  # a class name and a column name


def test_huge_run_page_finishes_drawing_in_chromium(dlx_home, browser_page):
    huge, _ = huge_run()
    page = browser_page
    with running_app(dlx_home, env={"DLX_AUTOSTART_WORKER": "0"}) as app:
        for path, heading, drawn in (("/runs", "Runs", "stDataFrame"), (f"/runs?run={huge}", f"Run #{huge}",
                                                                           "stPlotlyChart"),
                                     ("/compare", "Compare runs", "stDataFrame")):
            open_page(page, app.url + path, heading)
            page.get_by_test_id(drawn).first.wait_for(timeout=60_000)  # the page finished drawing
            settle(page)
    assert page.evaluate("document.body.innerText.length") < 2_000_000
