"""Planted label noise (`label_noise`): exactly the recorded training labels flipped, each to another class."""
from __future__ import annotations

import json

import pytest
import torch

from dlx import settings
from dlx.cli import main
from dlx.config import parse_config
from dlx.data import load_dataset
from dlx.errors import DlxError
from dlx.store import default_store
from dlx.training.label_noise import plant_label_noise, recorded_label_noise, with_recorded_labels
from tests.helpers.processes import train_in_process

BUILT_IN = ["digits", "breast_cancer", "wine", "iris", "patterns", "sentiment"]  # every one that loads offline


@pytest.mark.parametrize("dataset", BUILT_IN)
def test_label_noise_flips_exactly_the_recorded_training_labels_each_to_another_class(dataset):
    bundle = load_dataset(dataset, 0, 0.15, 0.2)
    noisy, noise = plant_label_noise(bundle, 0.1, seed=0)
    before, after = bundle.train.y, noisy.train.y
    changed = torch.nonzero(before != after).flatten().tolist()
    assert changed == noise.indices and len(changed) == round(0.1 * len(before)) > 0
    assert noise.original == before[changed].tolist() and noise.labels == after[changed].tolist()
    assert noisy.val is bundle.val and noisy.test is bundle.test  # validation and test untouched
    assert torch.equal(load_dataset(dataset, 0, 0.15, 0.2).train.y, before)  # the cached set is not changed
    assert plant_label_noise(bundle, 0.1, seed=0)[1] == noise  # seeded
    assert plant_label_noise(bundle, 0.1, seed=1)[1].indices != noise.indices


def test_a_run_with_label_noise_records_its_flipped_indices_and_a_default_run_none():
    noisy = train_in_process({"dataset": "digits", "model": "mlp", "epochs": 1, "label_noise": 0.1})
    plain = train_in_process({"dataset": "digits", "model": "mlp", "epochs": 1})
    store = default_store()
    noise = recorded_label_noise(store, noisy)
    bundle = load_dataset("digits", 0, 0.15, 0.2)
    assert noise == plant_label_noise(bundle, 0.1, 0)[1]
    saved = json.loads((settings.run_dir(noisy) / "label_noise.json").read_text())
    assert saved["indices"] == noise.indices
    assert store.get_run(noisy).summary["label_noise_flipped"] == len(noise.indices)
    assert torch.equal(with_recorded_labels(bundle, noise).train.y, plant_label_noise(bundle, 0.1, 0)[0].train.y)
    assert recorded_label_noise(store, plain) is None
    assert "label_noise_flipped" not in store.get_run(plain).summary
    assert with_recorded_labels(bundle, None) is bundle


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
def test_label_noise_outside_0_to_1_is_refused_naming_the_field(value):
    with pytest.raises(DlxError, match="^label_noise: Input should be") as err:
        parse_config({"label_noise": value})
    assert err.value.field == "label_noise"


def test_cli_run_accepts_label_noise(capsys):
    assert main(["run", "--set", "label_noise=0.1", "--no-worker"]) == 0
    run, = default_store().list_runs()
    assert run.config["label_noise"] == 0.1
    assert main(["run", "--set", "label_noise=1", "--no-worker"]) != 0
    assert "label_noise: Input should be less than 1" in capsys.readouterr().err
