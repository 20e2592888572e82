"""The Compare page under streamlit.testing with 1,000 runs: paging, filters, the view from the URL, no exception."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from sqlalchemy import insert
from streamlit.testing.v1 import AppTest

from db.engine import get_engine
from db.models import Param, RunSummary
from db.models import Run as RunRow
from dlx.tracking import Run, create_run

APP = Path(__file__).resolve().parent.parent / "streamlit_app.py"


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "0")
    monkeypatch.setenv("DLX_STALE_AFTER", "86400")


@pytest.fixture
def thousand_runs() -> list[int]:
    """1,000 finished runs (bulk inserted) with lr, optimizer and final metrics; the first three have curves."""
    first = create_run({"dataset": "digits", "model": "cnn"}, status="succeeded")
    rng = random.Random(1)
    table = RunRow.__table__
    with get_engine().begin() as conn:
        conn.execute(insert(table), [{"experiment_id": 1, "status": "succeeded", "dataset": "digits",
                                      "model": rng.choice(("cnn", "mlp")), "config": {}, "summary": {}}
                                     for _ in range(999)])
        ids = list(range(first, first + 1000))
        conn.execute(insert(Param), [{"run_id": i, "key": key, "value": json.dumps(value)} for i in ids
                                     for key, value in (("lr", rng.choice((0.1, 0.01, 0.001))),
                                                        ("layers", rng.randint(1, 4)), ("epochs", 3))])
        conn.execute(insert(RunSummary), [{"run_id": i, "key": "val_acc", "step": 3, "last": v, "min": v, "max": v}
                                          for i in ids for v in [rng.random()]])
    for run_id in ids[:3]:
        run = Run(run_id)
        run.log_series("val_acc", [0.1 * run_id, 0.5, 1.0 - 0.1 * run_id], 0)
        run.flush()
        run._stop.set()
    return ids


def open_compare(**query: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params.update(query)
    at.run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def captions(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("caption", "info", "error") for e in getattr(at, kind))


def test_compare_pages_a_thousand_runs_and_compares_the_first_ten(thousand_runs):
    at = open_compare()
    assert "Runs 1–50 of 1,000" in captions(at)
    assert len(at.get("plotly_chart")) >= 1  # the overlaid curves of the default selection
    assert "parameters that differ" in captions(at)


def test_the_url_reopens_a_filtered_sorted_view_of_chosen_runs(thousand_runs):
    a, b, c = thousand_runs[:3]
    at = open_compare(filter="lr <= 0.01 and val_acc >= 0", sort="val_acc", runs=f"{a},{b},{c}", metric="val_acc")
    assert at.text_input(key="compare.filter").value == "lr <= 0.01 and val_acc >= 0"
    assert at.selectbox(key="compare.metric").value == "val_acc"
    assert at.query_params["runs"] == f"{a},{b},{c}"
    assert len(at.get("plotly_chart")) == 3  # curves, parallel coordinates, scatter
    assert " of 1,000" not in captions(at)  # filtered


def test_a_bad_filter_says_where_without_an_exception(thousand_runs):
    at = open_compare(filter="lr < 0.01 and")
    assert "filter: expected a name (a run field, parameter or metric), found the end at position 14" in captions(at)
