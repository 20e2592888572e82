"""Faithfulness metrics: deletion/insertion curves, Captum's infidelity and max-sensitivity, the ranking table."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dlx.explain import explain
from dlx.explain.faithfulness import (
    deletion_insertion,
    deletion_insertion_many,
    infidelity_scores,
    max_sensitivity,
)
from dlx.explain.image.baselines import make_baseline
from dlx.explain.scoring import RANDOM, Scores
from tests.helpers.explain_fixtures import trained


@pytest.fixture(scope="module")
def cancer():
    model, bundle = trained("breast_cancer", "mlp", epochs=5)
    x = bundle.test.x[:40]
    with torch.no_grad():
        target = model(x).argmax(1)
    ig = explain("integrated_gradients", model, x, target).values
    return model, x, target, ig


def test_curves_run_from_the_input_to_the_baseline(cancer):
    model, x, target, ig = cancer
    baseline = make_baseline("zeros", x)
    curves = deletion_insertion(model, x, ig, target, baseline, steps=10)
    with torch.no_grad():
        p_input = torch.softmax(model(x), 1).gather(1, target[:, None]).squeeze(1).numpy()
        p_base = torch.softmax(model(baseline), 1).gather(1, target[:, None]).squeeze(1).numpy()
    assert curves.fractions.tolist() == pytest.approx(np.linspace(0, 1, 11).tolist())
    np.testing.assert_allclose(curves.deletion[:, 0], p_input, atol=1e-5)
    np.testing.assert_allclose(curves.deletion[:, -1], p_base, atol=1e-5)
    np.testing.assert_allclose(curves.insertion[:, 0], p_base, atol=1e-5)
    np.testing.assert_allclose(curves.insertion[:, -1], p_input, atol=1e-5)
    assert curves.deletion_auc.shape == (len(x),)


def test_attribution_order_beats_its_reverse_on_deletion_and_insertion(cancer):
    model, x, target, ig = cancer
    baseline = make_baseline("zeros", x)
    right = deletion_insertion(model, x, ig, target, baseline)
    reversed_ = deletion_insertion(model, x, -ig, target, baseline)
    assert right.deletion_auc.mean() < reversed_.deletion_auc.mean()
    assert right.insertion_auc.mean() > reversed_.insertion_auc.mean()


@pytest.fixture(scope="module")
def digits():
    model, bundle = trained("digits", "cnn", epochs=1)
    x = bundle.test.x[:12]
    with torch.no_grad():
        target = model(x).argmax(1)
    return model, x, target


def test_batched_curves_equal_one_sample_at_a_time(digits):
    """Many samples and methods stacked into few forward passes score exactly what one sample alone scores."""
    model, x, target = digits
    baseline = make_baseline("zeros", x)
    maps = {m: explain(m, model, x, target, baseline).values
            for m in ("saliency", "integrated_gradients", "occlusion", "grad_cam")}
    together = deletion_insertion_many(model, x, maps, target, baseline, steps=10)
    tiny_batches = deletion_insertion(model, x, maps["occlusion"], target, baseline, steps=10, batch=1)
    for method, values in maps.items():
        for i in range(len(x)):
            alone = deletion_insertion(model, x[i:i + 1], values[i:i + 1], target[i:i + 1], baseline[i:i + 1],
                                       steps=10)
            np.testing.assert_allclose(together[method].deletion[i], alone.deletion[0], atol=1e-5)
            np.testing.assert_allclose(together[method].insertion[i], alone.insertion[0], atol=1e-5)
    np.testing.assert_allclose(tiny_batches.deletion, together["occlusion"].deletion, atol=1e-5)
    np.testing.assert_allclose(tiny_batches.insertion, together["occlusion"].insertion, atol=1e-5)


def test_image_deletion_removes_whole_pixels_across_channels():
    """A model that reads one pixel of one channel: deleting that pixel first drops it at once."""
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(2 * 4 * 4, 2))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.zero_()
        model[1].weight[0, 16 + 5] = 10.0  # channel 1, pixel (1, 1)
    x = torch.ones(1, 2, 4, 4)
    attribution = torch.zeros_like(x)
    attribution[0, 0, 1, 1] = 1.0  # points at the pixel through the *other* channel
    curves = deletion_insertion(model, x, attribution, torch.tensor([0]), torch.zeros_like(x), steps=16)
    assert curves.deletion[0, 0] > 0.99 and curves.deletion[0, 1] == pytest.approx(0.5)


def test_infidelity_and_max_sensitivity_prefer_ig_to_a_random_map(cancer):
    model, x, target, ig = cancer
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    assert infidelity_scores(model, x, ig, target).mean() < infidelity_scores(model, x, noise, target).mean()

    def ig_map(inputs, target):
        return explain("integrated_gradients", model, inputs, target).values

    def random_map(inputs, target):
        return torch.randn(inputs.shape)

    stable = max_sensitivity(ig_map, x, target)
    jumpy = max_sensitivity(random_map, x, target)
    assert stable.shape == (len(x),) and (stable >= 0).all()
    assert stable.mean() < 0.5 < jumpy.mean()


def test_scores_table_ranks_methods_by_mean_rank_and_round_trips():
    fractions = np.linspace(0, 1, 3)
    scores = Scores(fractions)
    for method, deletion, insertion in (("saliency", 0.3, 0.6), ("integrated_gradients", 0.1, 0.8),
                                        (RANDOM, 0.5, 0.5)):
        scores.deletion[method] = np.full((2, 3), deletion)
        scores.insertion[method] = np.full((2, 3), insertion)
        scores.metrics[method] = {"deletion_auc": np.array([deletion, deletion]),
                                  "insertion_auc": np.array([insertion, insertion]),
                                  "infidelity": np.array([1.0, 1.0])}
    table = scores.table()
    assert [row["method"] for row in table] == ["Integrated Gradients", "Saliency", "Random (reference)"]
    assert [row["rank"] for row in table] == [1, 2, 3]
    assert table[0]["Deletion AUC ↓"] == pytest.approx(0.1)
    again = Scores.from_tensors(scores.to_tensors())
    assert again.table() == table
    np.testing.assert_array_equal(again.deletion["saliency"], scores.deletion["saliency"])
