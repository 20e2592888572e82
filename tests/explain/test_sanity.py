"""Sanity checks (Adebayo et al. 2018): randomised layers, the paper's outcome on a trained digits CNN, the
permuted-label run, and the `sanity` job on a real worker through `dlx sanity --json`."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dlx.cli import main
from dlx.data import load_dataset
from dlx.explain.jobs import SanityTask, sanity_result, sanity_results
from dlx.explain.models_cache import get_loaded_run
from dlx.explain.sanity import (
    THRESHOLD,
    cascade,
    check_methods,
    hog_similarity,
    parameter_layers,
    randomised,
    spearman,
    ssim,
)
from dlx.models import build_model
from dlx.store import default_store
from dlx.training.train import permute_labels
from tests.helpers.processes import train_in_process

CNN_LAYERS = ["features.0", "features.2", "classifier.2", "classifier.4"]


def weights(model: torch.nn.Module) -> dict[str, dict[str, torch.Tensor]]:
    return {name: {k: v.detach().clone() for k, v in model.get_submodule(name).named_parameters()}
            for name in parameter_layers(model)}


def changed(before: dict, after: dict) -> set[str]:
    return {name for name in before if any(not torch.equal(before[name][k], after[name][k]) for k in before[name])}


def test_the_cascade_randomises_exactly_the_layers_it_says_and_leaves_the_model_alone():
    model = build_model("cnn", load_dataset("digits").meta).eval()
    layers = parameter_layers(model)
    assert layers == CNN_LAYERS
    steps = cascade(layers)
    assert steps == [CNN_LAYERS[3:], CNN_LAYERS[2:], CNN_LAYERS[1:], CNN_LAYERS]  # from the output layer down
    trained = weights(model)
    for step in steps:
        assert changed(trained, weights(randomised(model, step))) == set(step)
    for name in layers:  # independent: that layer alone
        assert changed(trained, weights(randomised(model, [name]))) == {name}
    assert changed(trained, weights(model)) == set()  # a copy was randomised, never the model
    # a layer draws the same weights in every step (its own seed), another seed draws others
    full, alone = weights(randomised(model, layers, seed=3)), weights(randomised(model, ["features.2"], seed=3))
    assert changed(full, alone) == set(layers) - {"features.2"}
    assert changed(full, weights(randomised(model, layers, seed=4))) == set(layers)


def test_similarities_are_one_for_equal_maps_and_low_for_unrelated_ones():
    rng = np.random.default_rng(0)
    a, b = rng.random((6, 8, 8)), rng.random((6, 8, 8))
    np.testing.assert_allclose(spearman(a, a), 1.0)
    np.testing.assert_allclose(ssim(a, a), 1.0)
    np.testing.assert_allclose(hog_similarity(a, a), 1.0)
    assert abs(spearman(a, b).mean()) < 0.2 and ssim(a, b).mean() < 0.3 and hog_similarity(a, b).mean() < 0.5
    assert spearman(a, np.zeros_like(a)).tolist() == [0.0] * 6  # a constant map ranks nothing


@pytest.fixture(scope="module")
def trained_cnn(tmp_path_factory):
    """A digits CNN trained two epochs through dlx's own train path, and its first 32 test samples."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DLX_HOME", str(tmp_path_factory.mktemp("sanity-home")))
        run_id = train_in_process({"dataset": "digits", "model": "cnn", "epochs": 2})
        store = default_store()
        loaded = get_loaded_run(store, run_id)
        accuracy = store.get_run(run_id).summary["test_acc"]
    inputs = loaded.bundle.test.x[:32]
    return loaded.model, inputs, loaded.predict(inputs).argmax(1).tolist(), accuracy


@pytest.fixture(scope="module")
def paper_check(trained_cnn):
    model, inputs, targets, _ = trained_cnn
    seen: list[float] = []
    result = check_methods(model, inputs, targets, ["saliency", "guided_backprop"], {}, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == 1.0
    return result


def test_guided_backprop_is_insensitive_to_randomisation_and_fails_while_saliency_passes(trained_cnn, paper_check):
    assert trained_cnn[3] > 0.85  # trained well enough for its maps to mean something
    saliency, guided = paper_check["methods"]["saliency"], paper_check["methods"]["guided_backprop"]
    assert guided["spearman"] > saliency["spearman"] + 0.25  # Adebayo et al.'s Figure 2, on digits
    assert guided["ssim"] > saliency["ssim"] and guided["spearman_signed"] > saliency["spearman_signed"]
    assert saliency["passed"] and saliency["spearman"] <= THRESHOLD
    assert not guided["passed"] and guided["spearman"] > THRESHOLD
    assert saliency["spearman_ci"][0] <= saliency["spearman"] <= saliency["spearman_ci"][1]


def test_the_curves_name_each_randomised_layer_and_end_at_the_full_randomisation(paper_check):
    assert paper_check["layers"] == CNN_LAYERS
    for entry in paper_check["methods"].values():
        assert [p["layer"] for p in entry["curve"]] == CNN_LAYERS[::-1]
        assert [p["randomised"] for p in entry["curve"]] == cascade(CNN_LAYERS)
        assert entry["curve"][-1]["spearman"] == entry["spearman"]
        assert [p["layer"] for p in entry["independent"]] == CNN_LAYERS
        assert entry["independent"][-1]["spearman"] == entry["curve"][0]["spearman"]  # the output layer alone
        assert all(-1 <= p["hog"] <= 1 and p["ssim"] <= 1 for p in entry["curve"])


def test_label_permutation_permutes_only_the_training_labels_and_trains_to_chance():
    bundle = load_dataset("digits")
    permuted = permute_labels(bundle, seed=0)
    assert sorted(permuted.train.y.tolist()) == sorted(bundle.train.y.tolist())
    assert (permuted.train.y != bundle.train.y).float().mean() > 0.8
    assert torch.equal(permuted.val.y, bundle.val.y) and torch.equal(permuted.test.y, bundle.test.y)
    run_id = train_in_process({"dataset": "digits", "model": "cnn", "epochs": 2, "label_permutation": True})
    run = default_store().get_run(run_id)
    assert run.config["label_permutation"] is True
    assert run.summary["test_acc"] < 0.2  # ten classes: chance is 0.1


def test_dlx_sanity_json_runs_the_job_on_a_worker_and_stores_what_the_report_reads(worker, trained_run, capsys):
    permuted = train_in_process({"dataset": "digits", "model": "cnn", "epochs": 1, "label_permutation": True})
    capsys.readouterr()  # the training's lines
    code = main(["sanity", str(trained_run), "--methods", "saliency,grad_cam", "--samples", "6",
                 "--against", str(permuted), "--json", "--no-worker"])
    out = capsys.readouterr()
    assert code == 0, out.err
    printed = json.loads(out.out)
    assert list(printed) == ["methods"] and list(printed["methods"]) == ["saliency", "grad_cam"]
    for entry in printed["methods"].values():
        assert {"spearman", "ssim", "hog", "spearman_signed", "passed", "curve", "threshold", "data"} <= set(entry)
        assert isinstance(entry["passed"], bool) and len(entry["curve"]) == len(CNN_LAYERS)
        assert entry["curve"][0]["layer"] == "classifier.4" and entry["data"]["spearman"] is not None
    store = default_store()
    stored = sanity_results(store, trained_run)
    assert stored["methods"] == printed["methods"] and stored["against"] == permuted and stored["samples"] == 6
    assert sanity_results(store, permuted) is None


def test_dlx_sanity_refuses_an_unknown_run_method_or_against_naming_the_field(trained_run, capsys):
    assert main(["sanity", "99", "--no-worker"]) == 2
    assert "run: there is no run #99" in capsys.readouterr().err
    assert main(["sanity", str(trained_run), "--methods", "lime", "--no-worker"]) == 2
    assert "method: unknown attribution method 'lime'" in capsys.readouterr().err
    assert main(["sanity", str(trained_run), "--methods", "attention_rollout", "--no-worker"]) == 2
    assert "methods: attention_rollout does not apply to run" in capsys.readouterr().err
    assert main(["sanity", str(trained_run), "--against", str(trained_run), "--no-worker"]) == 2
    assert "against: run #1 must be a run of digits trained with label_permutation=true" in capsys.readouterr().err
    loaded = get_loaded_run(default_store(), trained_run)
    assert sanity_result(loaded, SanityTask(run_id=trained_run, methods=["saliency"])) is None
