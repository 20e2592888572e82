"""The attribution registry: every method equals a direct Captum call; IG is complete; models are made safe."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import (
    DeepLift,
    FeatureAblation,
    GradientShap,
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
)

from dlx.data import DatasetMeta
from dlx.errors import DlxError
from dlx.explain import METHODS, available_methods, explain, methods_for
from dlx.explain.image import methods as methods_module
from dlx.explain.image.baselines import baselines_for, blur, make_baseline
from dlx.explain.image.layers import explainable_copy, find_layer
from dlx.models import build_model
from tests.helpers.explain_fixtures import accuracy, trained


@pytest.fixture(scope="module")
def digits_cnn():
    model, bundle = trained("digits", "cnn", epochs=2)
    return model, bundle


@pytest.fixture(scope="module")
def cancer_mlp():
    model, bundle = trained("breast_cancer", "mlp", epochs=5)
    assert accuracy(model, bundle) > 0.9
    return model, bundle


def direct_captum(method: str, model, x, target, baseline):
    """What a user would write with Captum alone, with the registry's default parameters."""
    if method == "saliency":
        return Saliency(model).attribute(x, target=target, abs=True)
    if method == "input_x_gradient":
        return InputXGradient(model).attribute(x, target=target)
    if method == "integrated_gradients":
        return IntegratedGradients(model).attribute(x, baselines=baseline, target=target, n_steps=50,
                                                    method="gausslegendre", internal_batch_size=256)
    if method == "smoothgrad":
        torch.manual_seed(0)
        np.random.seed(0)
        return NoiseTunnel(Saliency(model)).attribute(x, nt_type="smoothgrad", nt_samples=20, stdevs=0.15,
                                                      target=target, abs=False)
    if method == "gradient_shap":
        torch.manual_seed(0)
        np.random.seed(0)
        return GradientShap(model).attribute(x, baselines=baseline, n_samples=20, stdevs=0.1, target=target)
    if method == "deeplift":
        return DeepLift(model).attribute(x, baselines=baseline, target=target)
    if method == "guided_backprop":
        return GuidedBackprop(model).attribute(x, target=target)
    if method == "occlusion":  # 8×8 digits: the automatic window is 2×2 with stride 1
        return Occlusion(model).attribute(x, sliding_window_shapes=(1, 2, 2), strides=(1, 1, 1),
                                          baselines=baseline, target=target, perturbations_per_eval=64)
    if method == "grad_cam":
        cam = LayerGradCam(model, model.features[2]).attribute(x, target=target, relu_attributions=True)
        return LayerAttribution.interpolate(cam, (8, 8), interpolate_mode="bilinear")
    if method == "feature_ablation":
        return FeatureAblation(model).attribute(x, baselines=baseline, target=target, perturbations_per_eval=64)
    raise AssertionError(f"no direct Captum call written for {method}")


TENSOR_METHODS = sorted({*methods_for("image"), *methods_for("table")})


def test_registry_lists_every_method_of_the_issue():
    assert set(TENSOR_METHODS) == {"saliency", "input_x_gradient", "integrated_gradients", "smoothgrad",
                            "gradient_shap", "deeplift", "guided_backprop", "occlusion", "grad_cam",
                            "feature_ablation", "attention_rollout", "cls_attention"}
    for entry in METHODS.values():
        assert entry.label and entry.ways
        for way in entry.ways.values():
            assert way.description
            way.resolve({})  # every default passes its own checks


@pytest.mark.parametrize("method", [m for m in TENSOR_METHODS if not METHODS[m].on_tensors.needs_attention])
def test_each_method_equals_a_direct_captum_call(method, digits_cnn, cancer_mlp):
    model, bundle = digits_cnn if "image" in METHODS[method].kinds else cancer_mlp
    x = bundle.test.x[:1]
    target = int(model(x).argmax())
    baseline = make_baseline("mean", x, bundle.meta.mean)
    ours = explain(method, model, x, target, baseline)
    direct = direct_captum(method, model, x, target, baseline).detach()
    assert ours.values.shape == x.shape
    torch.testing.assert_close(ours.values, direct.expand_as(x), rtol=1e-4, atol=1e-6)


NOISY = [("smoothgrad", {"nt_type": "smoothgrad"}), ("smoothgrad", {"nt_type": "smoothgrad_sq"}),
         ("smoothgrad", {"nt_type": "vargrad"}), ("gradient_shap", {})]


@pytest.mark.parametrize("method,params", NOISY)
def test_a_batch_of_noisy_maps_equals_one_sample_at_a_time_whatever_the_batch(method, params, digits_cnn):
    """SmoothGrad and GradientSHAP draw each sample's noise from its own seed: a map never depends on
    the batch it was computed in (so it caches), nor on how many samples go in one pass."""
    model, bundle = digits_cnn
    x = bundle.test.x[:5]
    target = model(x).argmax(1)
    base = make_baseline("mean", x, bundle.meta.mean)
    batch = explain(method, model, x, target, base, seed=3, **params).values
    for rows in ([4], [3, 0], [1, 4, 2]):
        other = explain(method, model, x[rows], target[rows], base[rows], seed=3, **params).values
        torch.testing.assert_close(other, batch[rows], rtol=1e-5, atol=1e-7)
    other_seed = explain(method, model, x, target, base, seed=4, **params).values
    assert not torch.allclose(other_seed, batch)


def test_noisy_maps_split_over_several_passes_are_the_same(digits_cnn, monkeypatch):
    """A large batch is cut into passes by input size; the cut changes no sample's map."""
    model, bundle = digits_cnn
    x = bundle.test.x[:7]
    base = make_baseline("zeros", x)
    whole = {m: explain(m, model, x, 2, base).values for m in ("smoothgrad", "gradient_shap")}
    monkeypatch.setattr(methods_module, "_NOISY_ELEMENTS_PER_PASS", 3 * 20 * 64)  # 3 samples a pass
    for method, values in whole.items():
        torch.testing.assert_close(explain(method, model, x, 2, base).values, values, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("method,params", NOISY)
def test_a_batch_of_noisy_maps_equals_captum_on_each_sample_with_the_same_seed(method, params, digits_cnn):
    """Each row equals NoiseTunnel / GradientShap called by hand on that sample after seeding torch
    and numpy with the method's seed; the global generators are left as they were."""
    model, bundle = digits_cnn
    x = bundle.test.x[:4]
    target = model(x).argmax(1)
    base = make_baseline("mean", x, bundle.meta.mean)
    torch.manual_seed(123)
    np.random.seed(123)
    ours = explain(method, model, x, target, base, seed=9, **params).values
    assert torch.rand(1).item() == torch.rand(1, generator=torch.Generator().manual_seed(123)).item()
    assert np.random.rand() == np.random.RandomState(123).rand()
    for i in range(len(x)):
        torch.manual_seed(9)
        np.random.seed(9)
        if method == "smoothgrad":
            direct = NoiseTunnel(Saliency(model)).attribute(x[i:i + 1], nt_samples=20, stdevs=0.15,
                                                            target=target[i:i + 1], abs=False, **params)
        else:
            direct = GradientShap(model).attribute(x[i:i + 1], baselines=base[i:i + 1], n_samples=20,
                                                   stdevs=0.1, target=target[i:i + 1])
        torch.testing.assert_close(ours[i:i + 1], direct.detach(), rtol=1e-5, atol=1e-7)


def test_integrated_gradients_are_complete_on_a_trained_mlp(cancer_mlp):
    """Sum of attributions = f(x) - f(baseline) within 1e-2, for zeros and mean baselines."""
    model, bundle = cancer_mlp
    x = bundle.test.x[:20]
    target = model(x).argmax(1)
    for kind in ("zeros", "mean"):
        baseline = make_baseline(kind, x, bundle.meta.mean)
        result = explain("integrated_gradients", model, x, target, baseline)
        with torch.no_grad():
            gap = (model(x).gather(1, target[:, None]) - model(baseline).gather(1, target[:, None])).squeeze(1)
        assert (result.values.sum(1) - gap).abs().max() < 1e-2
        assert result.delta.abs().max() < 1e-2  # Captum's own convergence delta agrees


def test_signed_and_absolute_methods_say_which_they_are(digits_cnn):
    model, bundle = digits_cnn
    x = bundle.test.x[:2]
    assert not explain("saliency", model, x, 0).signed
    assert explain("saliency", model, x, 0, abs=False).signed
    assert explain("integrated_gradients", model, x, 0).signed
    cam = explain("grad_cam", model, x, 0)
    assert not cam.signed and (cam.values >= 0).all()


def test_grad_cam_reads_the_last_conv_layer_and_upsamples_to_the_input(digits_cnn):
    model, bundle = digits_cnn
    assert find_layer(model) is model.features[2]
    x = bundle.test.x[:2]
    by_name = explain("grad_cam", model, x, 3, layer="features.0")
    assert by_name.values.shape == x.shape
    with pytest.raises(DlxError, match="no conv layer named 'conv9'.*features.0"):
        explain("grad_cam", model, x, 3, layer="conv9")


def test_mistakes_name_the_method_and_parameter(digits_cnn):
    model, bundle = digits_cnn
    x = bundle.test.x[:1]
    with pytest.raises(DlxError, match="unknown attribution method 'lime'") as err:
        explain("lime", model, x, 0)
    assert err.value.field == "method"
    with pytest.raises(DlxError, match="integrated_gradients.n_steps: 1 is outside"):
        explain("integrated_gradients", model, x, 0, n_steps=1)
    with pytest.raises(DlxError, match="unknown parameter.*'steps'"):
        explain("integrated_gradients", model, x, 0, steps=10)
    with pytest.raises(DlxError, match="integrated_gradients.method: 'simpson' is not one of"):
        explain("integrated_gradients", model, x, 0, method="simpson")
    with pytest.raises(DlxError, match="target: 3 targets for 1 inputs"):
        explain("saliency", model, x, [0, 1, 2])


def test_methods_offered_fit_the_model_and_the_data():
    images = DatasetMeta("d", "image", ("a", "b"), (1, 8, 8))
    table = DatasetMeta("t", "table", ("a", "b"), (5,), ("f1", "f2", "f3", "f4", "f5"))
    cnn = available_methods(build_model("cnn", images), "image")
    assert "grad_cam" in cnn and "occlusion" in cnn and "feature_ablation" not in cnn
    mlp_on_images = available_methods(build_model("mlp", images), "image")
    assert "grad_cam" not in mlp_on_images and "occlusion" in mlp_on_images
    on_table = available_methods(build_model("mlp", table), "table")
    assert "feature_ablation" in on_table and "grad_cam" not in on_table and "occlusion" not in on_table
    with pytest.raises(DlxError, match="has no Conv2d layer"):
        explain("grad_cam", build_model("mlp", images), torch.rand(1, 1, 8, 8), 0)


def test_baselines_zeros_mean_and_blur():
    x = torch.rand(2, 3, 16, 16)
    assert (make_baseline("zeros", x) == 0).all()
    mean = make_baseline("mean", x, (0.1, 0.2, 0.3))
    assert mean.shape == x.shape and torch.allclose(mean[1, :, 5, 5], torch.tensor([0.1, 0.2, 0.3]))
    blurred = make_baseline("blur", x)
    assert blurred.shape == x.shape
    assert blurred.std() < x.std() / 2  # shapes are gone...
    assert abs(blurred.mean() - x.mean()) < 0.05  # ...colours stay
    assert torch.equal(blur(x), blurred)
    table = torch.rand(4, 5)
    assert make_baseline("mean", table, (1, 2, 3, 4, 5))[3].tolist() == [1, 2, 3, 4, 5]
    with pytest.raises(DlxError, match="blur is for images"):
        make_baseline("blur", table)
    with pytest.raises(DlxError, match="unknown baseline 'noise'"):
        make_baseline("noise", x)
    assert baselines_for("table") == ["zeros", "mean"]


def reused_modules(model, example) -> list[str]:
    """Leaf modules called more than once in one forward pass."""
    calls: dict[str, int] = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, n=name: calls.__setitem__(n, calls.get(n, 0) + 1))
             for name, m in model.named_modules() if not list(m.children())]
    model(example)
    for hook in hooks:
        hook.remove()
    return sorted(name for name, count in calls.items() if count > 1)


def test_resnet_copy_gets_a_fresh_relu_per_use_so_deeplift_works():
    meta = DatasetMeta("c", "image", tuple("abcdefghij"), (3, 16, 16))
    torch.manual_seed(0)
    resnet = build_model("resnet18", meta).eval()
    x = torch.rand(2, 3, 16, 16)
    assert "layer1.0.relu" in reused_modules(resnet, x)
    with pytest.raises(RuntimeError, match="DeepLift"):
        explain("deeplift", resnet, x, 1)
    safe = explainable_copy(resnet)
    assert reused_modules(safe, x) == []
    assert not any(getattr(m, "inplace", False) for m in safe.modules())
    with torch.no_grad():
        torch.testing.assert_close(safe(x), resnet(x))
    for method in ("deeplift", "guided_backprop"):
        result = explain(method, safe, x, 1, make_baseline("zeros", x))
        assert result.values.shape == x.shape and torch.isfinite(result.values).all()
    assert "layer1.0.relu" in reused_modules(resnet, x)  # the original is left as it was
