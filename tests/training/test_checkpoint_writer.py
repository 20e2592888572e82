"""Checkpoints written in the background: on disk and indexed once closed, the newest last and best kept,
a failed write raised in the training's thread."""
from __future__ import annotations

import pytest
import torch
from safetensors import safe_open

from dlx import settings
from dlx.store import default_store
from dlx.tracking import Run
from dlx.training.checkpoint_writer import CheckpointWriter, Weights


def _epoch_of(path) -> str:
    with safe_open(str(path), framework="pt") as checkpoint:
        return checkpoint.metadata()["epoch"]


def test_close_leaves_the_newest_last_and_best_on_disk_and_indexed():
    store = default_store()
    run = Run(default_store(), default_store().create_run({}, status="running"))
    folder = settings.run_dir(run.id) / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    model = torch.nn.Linear(3, 2)
    writer, weights = CheckpointWriter(run, folder), Weights(model)  # taken once, as the training does
    for epoch in range(1, 31):  # epochs faster than the writes: older snapshots are replaced, not queued
        with torch.no_grad():
            model.weight.fill_(epoch)  # each epoch's weights differ; the snapshot must keep its own
        improved = epoch <= 20
        writer.submit(weights.snapshot({"epoch": str(epoch)}), {"epoch": epoch},
                      {"epoch": epoch} if improved else None)
    writer.close()
    last, best = store.checkpoint_path(run.id, "last"), store.checkpoint_path(run.id, "best")
    assert _epoch_of(last) == "30" and _epoch_of(best) == "20"
    with safe_open(str(best), framework="pt") as checkpoint:
        assert checkpoint.get_tensor("weight").eq(20).all()  # epoch 20's weights, not the later ones
    entries = {a.name: a.meta["epoch"] for a in store.artifacts(run.id, "checkpoint")}
    assert entries == {"last": 30, "best": 20}
    run.finish()


def test_a_failed_write_is_raised_by_close():
    store = default_store()
    run = Run(store, store.create_run({}, status="running"))
    folder = settings.run_dir(run.id) / "missing" / "checkpoints"  # never created: the write fails
    writer = CheckpointWriter(run, folder)
    writer.submit(Weights(torch.nn.Linear(2, 2)).snapshot({"epoch": "1"}), {"epoch": 1}, {"epoch": 1})
    with pytest.raises(Exception, match="No such file|not found|os error"):
        writer.close()
    run.finish()


def test_nothing_is_written_before_a_write_is_due_and_close_writes_what_waits():
    """Epochs faster than `every` cost no write each: the newest last and best wait in memory until
    the writer is due or closed (as when a run ends, fails or is cancelled)."""
    store = default_store()
    run = Run(default_store(), default_store().create_run({}, status="running"))
    folder = settings.run_dir(run.id) / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    model = torch.nn.Linear(3, 2)
    writer, weights = CheckpointWriter(run, folder, every=3600), Weights(model)
    assert not writer.due()
    for epoch in (1, 2, 3):
        with torch.no_grad():
            model.weight.fill_(epoch)
        writer.submit(weights.snapshot({"epoch": str(epoch)}), {"epoch": epoch} if epoch != 2 else None,
                      {"epoch": epoch} if epoch <= 2 else None)  # epoch 2: a new best only
    assert not list(folder.iterdir()) and store.checkpoint_path(run.id, "last") is None
    writer.close()
    assert _epoch_of(store.checkpoint_path(run.id, "last")) == "3"
    assert _epoch_of(store.checkpoint_path(run.id, "best")) == "2"
    run.finish()
