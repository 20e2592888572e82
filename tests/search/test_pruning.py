"""Pruning: a trial's training reports each epoch to its study and stops where the pruner says, ending
`pruned` with everything it logged kept (trained here, in this process, through the real hook)."""
from __future__ import annotations

import pytest

from dlx.config import RunConfig
from dlx.errors import Pruned
from dlx.search import driver
from dlx.search import study as studies
from dlx.search.pruning import epoch_hook
from dlx.search.results import result
from dlx.search.spec import parse_spec
from dlx.store import default_store
from dlx.tracking import start_run
from dlx.training.train import train


def test_a_trial_stops_at_the_epoch_the_pruner_says_and_keeps_its_points():
    store = default_store()
    spec = parse_spec({"base": {"dataset": "digits", "model": "mlp", "epochs": 4, "device": "cpu"},
                       "space": {"lr": "log:1e-3:1e-2"}, "objectives": ["val_acc"], "directions": ["maximize"],
                       "pruner": "median", "trials": 3})
    driver.submit(store, "p", spec)
    study, _ = studies.load(store, "p")
    for _ in range(2):  # two finished trials that were perfect at every epoch: the median to beat
        trial = study.ask({"lr": spec.dimensions()["lr"].distribution()})
        for epoch in range(1, 5):
            trial.report(1.0, epoch)
        study.tell(trial, 1.0)
    driver.step(store, "p")
    run = driver.trial_runs(store, "p")[2]
    job = store.queue.latest_job(run.id)
    assert job is not None and job.payload == {"study": "p", "trial": 2}
    hook = epoch_hook(store, "p", 2)
    assert hook is not None
    with pytest.raises(Pruned, match="after epoch 1 by the median pruner"):
        with start_run(run_id=run.id, store=store, handle_signals=False) as handle:
            train(RunConfig(**run.config), handle, hook)
    ended = store.get_run(run.id)
    assert ended is not None and ended.status == "pruned" and "after epoch 1" in (ended.error or "")
    assert len(store.metric_history(run.id, "val_acc")) == 1  # one epoch of four, kept
    assert len(store.metric_history(run.id, "train_loss")) > 0
    assert ended.summary["epochs_run"] == 1 and "test_acc" in ended.metrics
    assert store.checkpoint_path(run.id, "best") is not None
    trial = studies.load(store, "p")[0].get_trials()[2]
    assert list(trial.intermediate_values) == [1]
    assert trial.intermediate_values[1] == pytest.approx(ended.metrics["val_acc"])
    driver.step(store, "p")  # told: the trial is pruned in the study too
    assert result(store, "p").trials[2]["state"] == "pruned"
    assert studies.load(store, "p")[0].get_trials()[2].state.name == "PRUNED"


def test_no_hook_without_a_pruner_or_for_several_objectives():
    store = default_store()
    values = {"base": {"dataset": "digits", "model": "mlp", "epochs": 1}, "space": {"lr": "log:1e-3:1e-2"},
              "objectives": ["val_acc"], "directions": ["maximize"], "trials": 2}
    driver.submit(store, "n", parse_spec(values))
    driver.step(store, "n")
    assert epoch_hook(store, "n", 0) is None
