"""The Runs page at a glance: the curves of the runs in view overlaid above the table, one colour per run."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dlx.store import default_store
from dlx.tracking import start_run

APP = Path(__file__).resolve().parents[2] / "streamlit_app.py"


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "0")
    monkeypatch.setenv("DLX_STALE_AFTER", "86400")


def sweep_of_three() -> list[int]:
    ids = []
    for i, lr in enumerate((0.1, 0.01, 0.001)):
        run_id = default_store().create_run({"lr": lr}, sweep="grid", name=f"lr{lr}")
        with start_run(run_id=run_id, handle_signals=False) as run:
            run.log_params({"lr": lr})
            for step in range(20):
                run.log_metrics({"val_acc": (i + 1) * step / 100, "train_loss": 1 / (step + 1 + i)}, step=step)
        ids.append(run_id)
    return ids


def open_runs(**query: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params.update(query)
    at.run()
    at.switch_page("pages/runs.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def lines(at: AppTest) -> dict[str, dict[str, str]]:
    """{chart title: {run label: line colour}} of the titled line charts (the glance, the compare page's curves)."""
    out = {}
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        if "title" not in spec["layout"] or any(t.get("type") != "scatter" for t in spec["data"]):
            continue
        out[spec["layout"]["title"]["text"]] = {t["name"]: t["line"]["color"] for t in spec["data"] if "name" in t}
    return out


@pytest.mark.parametrize("query", [{}, {"sweep": "grid"}])
def test_the_runs_page_overlays_the_sweeps_curves_without_opening_a_run(query):
    ids = sweep_of_three()
    drawn = lines(open_runs(**query))
    assert set(drawn) == {"val_acc", "train_loss"}  # accuracy and loss side by side
    labels = {f"#{run_id} lr{lr}" for run_id, lr in zip(ids, (0.1, 0.01, 0.001))}
    assert set(drawn["val_acc"]) == labels
    assert drawn["val_acc"] == drawn["train_loss"]  # a run has the same colour in every chart
    assert len(set(drawn["val_acc"].values())) == 3


def test_the_glance_shows_the_newest_ten_and_hides_archived_runs():
    store = default_store()
    ids = sweep_of_three()
    for _ in range(10):
        newer = store.create_run({}, status="running")
        with start_run(run_id=newer, handle_signals=False) as run:
            run.log_metrics({"val_acc": 0.5}, step=0)
    drawn = lines(open_runs())["val_acc"]
    assert len(drawn) == 10 and not any(label.startswith(f"#{ids[-1]} ") for label in drawn)
    store.set_archived(list(range(ids[-1] + 1, ids[-1] + 11)))
    at = open_runs()
    assert set(lines(at)["val_acc"]) == {f"#{run_id} lr{lr}" for run_id, lr in zip(ids, (0.1, 0.01, 0.001))}
    assert sorted(at.dataframe[0].value["id"]) == ids
    at.toggle(key="runs.show_archived").set_value(True).run()
    assert len(at.dataframe[0].value) == 13


def test_the_glance_redraws_as_a_running_run_logs_more():
    run_id = default_store().create_run({}, name="live", status="queued")
    run = start_run(run_id=run_id, handle_signals=False)
    run.log_series("val_acc", [0.1, 0.2], 0)
    run.flush()
    at = open_runs()
    assert list(glance_y(at)) == [0.1, 0.2]
    run.log_series("val_acc", [0.3, 0.4, 0.5], 2)
    run.flush()
    at.run()
    assert list(glance_y(at)) == [0.1, 0.2, 0.3, 0.4, 0.5]
    run.__exit__(None, None, None)


def glance_y(at: AppTest) -> np.ndarray:
    """The one run's line in the first glance chart (plotly may send it as a typed array)."""
    [trace] = [t for t in json.loads(at.get("plotly_chart")[0].proto.spec)["data"] if "name" in t]
    y = trace["y"]
    if isinstance(y, dict):
        return np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"])
    return np.asarray(y)


def test_a_run_has_the_same_colour_on_the_runs_and_compare_pages():
    ids = sweep_of_three()
    on_runs = lines(open_runs())["val_acc"]
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params.update(runs=",".join(map(str, ids)), metric="val_acc")  # oldest first, the Runs page newest first
    at.run()
    at.switch_page("pages/compare.py").run()
    assert not at.exception
    assert lines(at)["val_acc"] == on_runs


def test_the_runs_page_renders_with_a_thousand_runs_and_overlays_the_newest_ten(thousand_runs):  # noqa: F811
    at = open_runs()
    assert set(lines(at)) == {"val_acc"}  # the only metric these runs have (their histories were not bulk-made)
    assert "The newest 10 runs' curves" in "\n".join(c.value for c in at.caption)
    assert len(at.dataframe[0].value) == 50  # one page of the table


def test_selected_runs_are_overlaid_tagged_and_archived_after_a_yes():
    store = default_store()
    ids = sweep_of_three()
    at = open_runs()
    at.toggle(key="runs.select_many").set_value(True).run()
    at.session_state["runs.table.0.True"] = {"selection": {"rows": [0, 2], "columns": []}}
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert set(lines(at)["val_acc"]) == {f"#{ids[2]} lr0.001", f"#{ids[0]} lr0.1"}  # newest first: rows 0 and 2
    at.text_input(key="runs.add_tags").set_value("baseline, owner=ana").run()
    at.button(key="runs.add_tags_apply").click().run()
    assert store.get_run(ids[0]).user_tags == {"baseline": "", "owner": "ana"}
    assert store.get_run(ids[1]).user_tags == {}
    at.button(key="runs.archive").click().run()
    assert store.list_runs(archived=True) == []  # it asks first
    at.button(key="runs.archive_confirmed").click().run()
    assert not at.exception
    assert sorted(r.id for r in store.list_runs(archived=True)) == [ids[0], ids[2]]
    assert list(at.dataframe[0].value["id"]) == [ids[1]]
