"""Checkpoints over training on the pages (streamlit.testing): the run page lists them, Explain picks one
and shows the over-training view."""
from __future__ import annotations

import pytest

from dlx.explain.over_training import OverTrainingTask, over_training
from dlx.store import default_store
from tests.helpers.explain_page import charts, open_page, texts, traces
from tests.helpers.pages import open_app
from tests.helpers.processes import train_in_process


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "0")


@pytest.fixture
def kept_run(dlx_home) -> int:
    return train_in_process({"dataset": "digits", "model": "cnn", "epochs": 2, "checkpoint_every": 1})


def test_run_page_lists_kept_checkpoints_with_epoch_metrics_and_size(kept_run):
    at = open_app("pages/runs.py", run=str(kept_run))
    assert not at.exception, [e.value for e in at.exception]
    table = next(t.value for t in at.dataframe if "size (MB)" in t.value.columns)
    assert table["epoch"].tolist() == [1, 2]
    assert {"val_loss", "val_acc", "size (MB)"} <= set(table.columns) and (table["size (MB)"] > 0).all()


def test_explain_page_picks_a_checkpoint_and_shows_the_over_training_view(kept_run):
    at = open_page()
    slider = at.select_slider(key=f"explain.checkpoint.{kept_run}")
    assert slider.options == ["epoch 1", "epoch 2", "last", "best"] and slider.value == "best"
    slider.set_value("epoch-0001").run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="explain.pick").set_value("index").run()  # samples 0, 1, 2, 3
    assert "kept checkpoints" in texts(at) and at.button(key="explain.over.submit")  # the job waits for its button
    task = OverTrainingTask(run_id=kept_run, methods=at.multiselect[0].value, indices=[0, 1, 2, 3])
    over_training(default_store(), task)  # what the job computes, in this process
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    curves, maps = charts(at)[-2:]
    assert traces(maps, "heatmap") == 4 * 2  # four samples, two kept checkpoints
    assert "Spearman with the final map" in str(curves["layout"]["annotations"])
    assert len(curves["data"]) == len(task.methods) * 3  # Spearman, deletion and insertion AUC per method
