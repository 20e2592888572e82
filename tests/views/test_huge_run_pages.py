"""A run with 10,000 metric names and a 10 MB param froze its Runs page (32 s, 6.9 MB sent): the Runs table,
the run's own page and Compare stay small and quick with it (AppTest: a bounded run time, a bounded number
of charts, no element near the param's size), and its other charts are a pager away."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers.runs import NAMES, huge_run

APP = Path(__file__).resolve().parents[2] / "streamlit_app.py"
LARGEST_ELEMENT = 1_000_000  # bytes any one element may take: a tenth of the param


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "0")
    monkeypatch.setenv("DLX_STALE_AFTER", "86400")


def open_page(page: str, **query: str) -> tuple[AppTest, float]:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params.update(query)
    at.run()
    started = time.perf_counter()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at, time.perf_counter() - started


def _walk(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _walk(child)


def sizes(at: AppTest) -> list[int]:
    """Bytes of each element's message, as the browser would receive it."""
    return [node.proto.ByteSize() for node in _walk(at._tree) if getattr(node, "proto", None) is not None]


def metric_traces(at: AppTest) -> int:
    return sum(len(json.loads(chart.proto.spec)["data"]) for chart in at.get("plotly_chart"))


def titles(at: AppTest) -> str:
    return json.dumps([json.loads(chart.proto.spec)["layout"].get("annotations") for chart in at.get("plotly_chart")])


def test_huge_run_pages_stay_small_and_page_their_charts():
    huge, _ = huge_run()
    for page, query in (("pages/runs.py", {}), ("pages/runs.py", {"run": str(huge)}),
                        ("pages/compare.py", {})):
        at, seconds = open_page(page, **query)
        elements = sizes(at)
        assert max(elements) < LARGEST_ELEMENT, (page, query, max(elements))
        assert sum(elements) < 3 * LARGEST_ELEMENT, (page, query, sum(elements))
        assert len(elements) < 400, (page, query, len(elements))
        assert seconds < 60, (page, query, seconds)  # 32 s in the browser before; a bound, not a benchmark
    at, _ = open_page("pages/runs.py", run=str(huge))
    assert metric_traces(at) <= 12
    assert "metric_00000" in titles(at) and "metric_00012" not in titles(at)
    pager = at.number_input(key="runs.charts_page")
    assert pager.max == -(-NAMES // 12)
    pager.set_value(pager.max).run()
    assert "metric_09999" in titles(at) and "metric_00000" not in titles(at)
    assert at.get("download_button")  # the whole error (and config) are a download away
