"""The training loop, run in-process on real data: it learns, checkpoints, stops early and fails loudly."""
from __future__ import annotations

import math
import re

import pytest
import torch
from safetensors import safe_open

from dlx.data import load_dataset
from dlx.errors import DlxError
from dlx.store import default_store
from dlx.training.checkpoints import copy_checkpoint, load_run_model, save_checkpoint
from tests.helpers.processes import train_in_process


@pytest.mark.slow
def test_digits_cnn_reaches_95_percent_in_three_epochs():
    run_id = train_in_process({"dataset": "digits", "model": "cnn", "epochs": 3})
    run = default_store().get_run(run_id)
    assert run.status == "succeeded" and run.error is None
    assert run.summary["test_acc"] >= 0.95
    assert run.device.startswith("cuda" if torch.cuda.is_available() else "cpu")
    # every step's loss and every epoch's evaluation are in the store
    steps = default_store().metric_history(run_id, "train_loss").steps.tolist()
    assert steps == list(range(1, run.summary["total_steps"] + 1))
    assert len(default_store().metric_history(run_id, "val_acc")) == 3
    # an epoch's train loss is the mean over its samples of the losses its steps logged
    losses = default_store().metric_history(run_id, "train_loss").values[:run.summary["steps_per_epoch"]]
    sizes = [32] * (len(losses) - 1) + [run.summary["train_size"] - 32 * (len(losses) - 1)]
    epoch_loss = default_store().metric_history(run_id, "train_loss_epoch").values[0]
    assert epoch_loss == pytest.approx(float((losses * sizes).sum()) / run.summary["train_size"], rel=1e-5)
    assert 0.5 < default_store().metric_history(run_id, "train_acc").values[-1] <= 1.0
    # the confusion matrix covers the whole test split
    test_size = len(load_dataset("digits").test)
    confusion = torch.tensor(run.summary["confusion_matrix"])
    assert confusion.shape == (10, 10)
    assert int(confusion.sum()) == test_size
    assert float(confusion.trace()) / test_size == pytest.approx(run.summary["test_acc"])


def test_breast_cancer_mlp_reaches_95_percent():
    run_id = train_in_process({"dataset": "breast_cancer", "model": "mlp", "epochs": 3})
    run = default_store().get_run(run_id)
    assert run.status == "succeeded"
    assert run.summary["test_acc"] >= 0.95
    assert int(torch.tensor(run.summary["confusion_matrix"]).sum()) == len(load_dataset("breast_cancer").test)


def test_same_seed_trains_the_same_model():
    values = {"dataset": "breast_cancer", "model": "mlp", "epochs": 2, "seed": 7}
    first, second = (default_store().get_run(train_in_process(values)).summary for _ in range(2))
    assert first["test_loss"] == second["test_loss"]
    assert first["confusion_matrix"] == second["confusion_matrix"]


def test_checkpoints_are_safetensors_and_reload_to_the_same_accuracy(trained_run):
    store = default_store()
    for name in ("best", "last"):
        path = store.checkpoint_path(trained_run, name)
        assert path is not None and path.suffix == ".safetensors"
        with safe_open(str(path), framework="pt") as checkpoint:
            assert checkpoint.metadata()["epoch"] in ("1", "2")
            assert any(key.startswith("features.") for key in checkpoint.keys())
    model, config = load_run_model(store, trained_run)
    assert not model.training
    test = load_dataset(config.dataset, config.seed, config.val_fraction, config.test_fraction).test
    with torch.no_grad():
        accuracy = (model(test.x).argmax(1) == test.y).float().mean().item()
    assert accuracy == pytest.approx(store.get_run(trained_run).summary["test_acc"], abs=1e-6)


def test_best_checkpoint_keeps_its_weights_when_last_is_rewritten(tmp_path):
    model = torch.nn.Linear(3, 2)
    last, best = tmp_path / "last.safetensors", tmp_path / "best.safetensors"
    save_checkpoint(model, last, {"epoch": "1"})
    copy_checkpoint(last, best)
    kept = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.weight.add_(1.0)
    save_checkpoint(model, last, {"epoch": "2"})
    with safe_open(str(best), framework="pt") as checkpoint:
        assert checkpoint.metadata()["epoch"] == "1"
        assert torch.equal(checkpoint.get_tensor("weight"), kept["weight"])
    with safe_open(str(last), framework="pt") as checkpoint:
        assert torch.equal(checkpoint.get_tensor("weight"), kept["weight"] + 1.0)
    assert not list(tmp_path.glob("*.tmp"))


def test_early_stopping_stops_when_validation_stops_improving():
    # An lr far below float32 resolution leaves the weights unchanged, so val_acc never improves.
    store = default_store()
    run_id = train_in_process({"dataset": "breast_cancer", "model": "mlp", "epochs": 20, "optimizer": "sgd",
                               "lr": 1e-12, "schedule": "constant", "early_stopping_patience": 2,
                               "early_stopping_metric": "val_acc"})
    run = store.get_run(run_id)
    assert run.status == "succeeded"
    assert run.summary["epochs_run"] == 3
    assert run.summary["best_epoch"] == 1
    assert store.metric_history(run_id, "epoch").values.tolist() == [1, 2, 3]
    best = {a.name: a.meta["epoch"] for a in store.artifacts(run_id, "checkpoint")}
    assert best == {"best": 1, "last": 3}


def test_diverging_run_fails_naming_the_step():
    store = default_store()
    with pytest.raises(DlxError, match=r"loss diverged at step \d+ ") as caught:
        train_in_process({"dataset": "breast_cancer", "model": "mlp", "epochs": 5, "optimizer": "sgd",
                          "lr": 10, "schedule": "constant"})
    assert caught.value.field == "lr"
    run = store.list_runs()[0]
    assert run.status == "failed"
    assert run.error == str(caught.value)
    assert "lower learning rate" in run.error
    step = int(re.search(r"step (\d+)", run.error).group(1))
    assert 1 <= step <= run.summary["total_steps"]
    # the losses logged before it are kept, and they are all finite
    losses = store.metric_history(run.id, "train_loss")
    assert all(s < step for s in losses.steps.tolist())
    assert all(math.isfinite(v) for v in losses.values.tolist())
