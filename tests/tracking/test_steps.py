"""Steps are exact signed 64-bit integers end to end: log -> history -> reduced series -> export -> live
refresh, on SQLite and PostgreSQL (a float rounded 2**53 + 1 and turned 2**63 - 1 negative)."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from dlx.store import default_store
from dlx.tracking import Run
from dlx.views import export, live

pytestmark = pytest.mark.usefixtures("store_url")  # on SQLite and PostgreSQL

EDGES = [-(2**63), -(2**53) - 1, 0, 2**31, 2**53 + 1, 2**63 - 2, 2**63 - 1]


def _logged(steps: list[int]) -> int:
    store = default_store()
    run = Run(store, store.create_run({}, status="running"))
    for step in steps:
        run.log_metric("loss", float(len(str(step))), step)  # a value telling the steps apart
    run.finish()
    return run.id


def test_steps_at_the_edges_of_64_bits_come_back_exact_everywhere():
    store = default_store()
    run_id = _logged(EDGES)

    history = store.metric_history(run_id, "loss")
    assert history.steps.dtype == np.int64 and history.steps.tolist() == EDGES
    assert store.latest_metrics(run_id)["loss"] == (2**63 - 1, float(len(str(2**63 - 1))))

    reduced = store.reduced_history([run_id], ["loss"], buckets=1000)[(run_id, "loss")]
    assert reduced.steps.dtype == np.int64
    assert set(reduced.steps.tolist()) <= set(EDGES) and reduced.steps[-1] == 2**63 - 1
    assert reduced.first_step == -(2**63)
    zoom = store.reduced_history([run_id], ["loss"], buckets=10, step_range=(2**53, 2**53 + 5))
    assert zoom[(run_id, "loss")].steps.tolist() == [2**53 + 1]

    exported = export.selection(store, [run_id])
    assert exported[run_id]["history"]["loss"]["step"] == EDGES
    assert export.from_json(export.to_json(exported))[run_id]["history"]["loss"]["step"] == EDGES
    assert export.from_csv(export.to_csv(exported))[run_id]["history"]["loss"]["step"] == EDGES

    state = live.LiveRun(store, run_id)
    state.refresh()
    series = state.get("loss")
    assert series.steps[-1] == 2**63 - 1 and series.cursor == 2**63 - 1
    assert series.tail.steps.tolist() == EDGES


def test_a_live_refresh_folds_in_steps_across_the_whole_64_bit_range():
    store = default_store()
    run = Run(store, store.create_run({}, status="running"))
    run.log_metric("loss", 1.0, -(2**63))
    run.flush()
    state = live.LiveRun(store, run.id)
    state.refresh()
    for step in (2**53 + 1, 2**63 - 1):
        run.log_metric("loss", 2.0, step)
        run.flush()
        assert state.refresh()["loss"].steps.tolist() == [step]
    run.finish()
    series = state.get("loss")
    assert series.steps.tolist() == [-(2**63), 2**53 + 1, 2**63 - 1]  # three buckets, none merged by a wrap
    assert series.cursor == 2**63 - 1


def test_dlx_export_prints_exact_steps():
    run_id = _logged([2**53 + 1, 2**63 - 1])
    out = subprocess.run([sys.executable, "-m", "dlx.cli", "export", str(run_id), "--format", "json"],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["loss"]["step"] == [2**53 + 1, 2**63 - 1]
    csv = subprocess.run([sys.executable, "-m", "dlx.cli", "export", str(run_id)],
                         capture_output=True, text=True, check=True).stdout
    assert f"loss,{2**63 - 1}," in csv and f"loss,{2**53 + 1}," in csv
