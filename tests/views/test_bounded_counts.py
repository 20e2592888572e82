"""Counts on the pages stop at a bound, as `dlx runs` does: "of 10,000+" rather than an exact count of a huge match
(the bound lowered here so that 1,000 runs pass it)."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dlx.store import run_info

APP = Path(__file__).resolve().parents[2] / "streamlit_app.py"


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "0")
    monkeypatch.setenv("DLX_STALE_AFTER", "86400")


def _open(page: str) -> str:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return "\n".join(str(e.value) for e in at.caption)


def test_the_counts_say_the_bound_with_a_plus_past_it(thousand_runs, monkeypatch):
    assert "The newest 500 of 1,000 runs are listed here" in _open("pages/runs.py")
    assert "Runs 1–50 of 1,000." in _open("pages/compare.py")
    monkeypatch.setattr(run_info, "COUNT_BOUND", 100)
    assert "The newest 500 of 100+ runs are listed here" in _open("pages/runs.py")
    assert "Runs 1–50 of 100+." in _open("pages/compare.py")
    assert run_info.counted(5_000, bound=10_000) == "5,000" and run_info.counted(10_001) == "100+"
