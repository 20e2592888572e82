"""The data set with a known answer: a trained CNN's IG and Grad-CAM find the pattern, a random map does not."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dlx.data import DATASETS, load_dataset
from dlx.data.patterns import PATTERNS, generate
from dlx.explain import explain
from dlx.explain.faithfulness import deletion_insertion
from dlx.explain.image.baselines import make_baseline
from dlx.explain.image.localisation import mask_mass, pointing_game
from tests.helpers.explain_fixtures import accuracy, trained

N = 128  # test samples scored


@pytest.fixture(scope="module")
def patterns_cnn():
    model, bundle = trained("patterns", "cnn", epochs=6, lr=5e-3, batch=64)
    assert accuracy(model, bundle) > 0.85
    x = bundle.test.x[:N]
    with torch.no_grad():
        target = model(x).argmax(1)
    maps = {method: explain(method, model, x, target, make_baseline("zeros", x)).values
            for method in ("integrated_gradients", "grad_cam")}
    maps["random"] = torch.rand(x.shape, generator=torch.Generator().manual_seed(0))
    return model, bundle, x, target, maps


def test_patterns_data_set_is_seeded_balanced_and_ships_its_masks():
    assert DATASETS["patterns"].kind == "image"
    images, labels, masks = generate(seed=3, per_class=50)
    again, _, _ = generate(seed=3, per_class=50)
    assert np.array_equal(images, again)
    assert not np.array_equal(images, generate(seed=4, per_class=50)[0])
    assert images.shape == (200, 1, 16, 16) and np.bincount(labels).tolist() == [50] * len(PATTERNS)
    assert (masks.sum(axis=(1, 2)) == 9).all()  # the pattern's 3×3 box
    for image, label, mask in zip(images[::37], labels[::37], masks[::37]):
        box = image[0][mask].reshape(3, 3)
        stamp = np.array([[c == "#" for c in row] for row in list(PATTERNS.values())[label]])
        assert (box[stamp] > 0.8).all()  # the pattern's pixels are the bright ones, where the mask says
    bundle = load_dataset("patterns")
    assert bundle.meta.classes == tuple(PATTERNS) and bundle.meta.input_shape == (1, 16, 16)
    assert bundle.test.extras["mask"].shape == (len(bundle.test), 16, 16)


def test_ig_and_grad_cam_put_their_evidence_on_the_pattern_unlike_a_random_map(patterns_cnn):
    _, bundle, _, _, maps = patterns_cnn
    masks = bundle.test.extras["mask"][:N]
    mass = {name: mask_mass(values, masks).mean().item() for name, values in maps.items()}
    pointing = {name: pointing_game(values, masks).mean().item() for name, values in maps.items()}
    assert mass["random"] < 0.08  # about the mask's share of the image, 9/256
    assert pointing["random"] < 0.1
    for method in ("integrated_gradients", "grad_cam"):
        assert mass[method] > 3 * mass["random"], mass
        assert pointing[method] > 0.3, pointing


def test_ig_and_grad_cam_have_a_smaller_deletion_area_than_a_random_map(patterns_cnn):
    model, _, x, target, maps = patterns_cnn
    baseline = make_baseline("zeros", x)
    area = {name: deletion_insertion(model, x, values, target, baseline).deletion_auc.mean()
            for name, values in maps.items()}
    for method in ("integrated_gradients", "grad_cam"):
        assert area[method] < 0.9 * area["random"], area
