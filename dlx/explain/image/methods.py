"""How the methods run on images and tables: Captum on the input tensors, one call shape for all of them.

`explain(method, model, inputs, target, baseline=..., **params)` returns attributions of the
inputs' shape whatever the method, so pages, faithfulness metrics and the cache never branch
on a method's name.
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from captum.attr import (
    DeepLift,
    FeatureAblation,
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    Occlusion,
    Saliency,
)
from torch import Tensor, nn

from dlx.errors import DlxError
from dlx.explain.attention.vit import vit_rollout_pixels
from dlx.explain.image.layers import find_layer
from dlx.explain.methods import Param, get_method, has_attentions, register_method

Target = int | list[int] | Tensor

# Captum says these on every call; they describe what it does on purpose, not a problem.
warnings.filterwarnings(
    "ignore", category=UserWarning,
    message=r"(Input Tensor \d+ did not already require gradients|Setting (forward, )?backward hooks)")


@dataclass
class Attribution:
    """What one method said about a batch of inputs."""

    method: str
    values: Tensor  # the inputs' shape, on the CPU
    delta: Tensor | None  # convergence delta per sample (IG, DeepLift), else None
    seconds: float  # compute time of these samples (for cached ones: when they were computed)
    signed: bool  # whether the sign means something (diverging colours) or not (sequential)
    params: dict[str, Any] = field(default_factory=dict)
    cached: bool = False


def as_target(target: Target, n: int, device: torch.device) -> Tensor:
    """One class index per sample, as Captum accepts it."""
    t = torch.as_tensor(target, dtype=torch.long, device=device).flatten()
    if t.numel() == 1:
        t = t.expand(n)
    if t.numel() != n:
        raise DlxError(f"target: {t.numel()} targets for {n} inputs; give one per input or one for all",
                       field="target")
    return t


def explain(method: str, model: nn.Module, inputs: Tensor, target: Target, /,
            baseline: Tensor | None = None, **params: Any) -> Attribution:
    """Attribute `model`'s output for `target` to `inputs` with one registered method.

    The first four arguments are positional only, so a method's own parameter may be called
    `method` (Integrated Gradients' quadrature rule is).
    """
    entry = get_method(method).on_tensors
    params = entry.resolve(params)
    device = next(model.parameters()).device
    inputs = inputs.detach().to(device, torch.float32)
    target_t = as_target(target, len(inputs), device)
    if entry.uses_baseline:
        if baseline is None:
            baseline = torch.zeros_like(inputs)
        baseline = baseline.detach().to(device, torch.float32).expand_as(inputs).contiguous()
    start = time.perf_counter()
    values, delta = entry.run(model, inputs, target_t, baseline, params)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    values = values.detach().float().expand_as(inputs).cpu().contiguous()
    return Attribution(method, values, None if delta is None else delta.detach().float().cpu().flatten(),
                       seconds, entry.signed(params), params)


# Noisy copies per forward pass (counted in input elements) for SmoothGrad and GradientSHAP: all
# 20 copies of 100 digits samples go in one pass, a 224×224 image's 20 copies in one pass each.
_NOISY_ELEMENTS_PER_PASS = 1 << 22


def _seeded_noise(inputs: Tensor, copies: int, stdev: float, seed: int) -> Tensor:
    """`copies` noisy versions of each input, sample-major as NoiseTunnel lays them out.

    Each sample's noise comes from its own generator seeded with `seed`, drawn exactly as Captum
    draws it for a batch of one (`torch.normal` against a per-element deviation), so a sample's map
    never depends on its batch (it caches) and equals NoiseTunnel called on that sample alone
    after `torch.manual_seed(seed)`.
    """
    deviation = torch.tensor(stdev, device=inputs.device).repeat((copies, *inputs.shape[1:]))
    noise = []
    for _ in range(len(inputs)):
        generator = torch.Generator(device=inputs.device).manual_seed(seed)
        noise.append(torch.normal(0, deviation, generator=generator))
    return inputs.repeat_interleave(copies, dim=0) + torch.cat(noise)


def _seeded_alphas(n: int, copies: int, seed: int, like: Tensor) -> Tensor:
    """GradientSHAP's points between baseline and noisy input: per sample, numpy's uniform draw from
    `seed`, as Captum's InputBaselineXGradient makes it after `np.random.seed(seed)`. (Captum first
    draws the baseline indices with `np.random.choice(1, copies)`, which takes nothing from the
    generator for a single baseline, so it is not repeated here.)"""
    draws = np.concatenate([np.random.RandomState(seed).uniform(0.0, 1.0, copies) for _ in range(n)])
    return torch.tensor(draws, device=like.device, dtype=like.dtype).view(-1, *[1] * (like.dim() - 1))


def _noisy_gradients(inputs: Tensor, copies: int, stdev: float, seed: int,
                     mix: Callable[[Tensor, int, int], Tensor]) -> Tensor:
    """Gradients at `copies` seeded noisy points per sample, in as few passes as memory allows.

    `mix(noisy, start, stop)` turns the noisy copies of samples start..stop into the per-copy
    attributions (SmoothGrad: the gradient itself; GradientSHAP: (input - baseline) × gradient at a
    random point between them); the result is (samples, copies, *input shape).
    """
    per_pass = max(1, _NOISY_ELEMENTS_PER_PASS // (copies * inputs[0].numel()))
    parts = []
    for start in range(0, len(inputs), per_pass):
        stop = min(start + per_pass, len(inputs))
        noisy = _seeded_noise(inputs[start:stop], copies, stdev, seed)
        parts.append(mix(noisy, start, stop).view(stop - start, copies, *inputs.shape[1:]))
    return torch.cat(parts)


def _gradients(model: nn.Module, points: Tensor, target: Tensor) -> Tensor:
    """Captum's own gradient of the target's score (what Saliency and GradientShap compute)."""
    return Saliency(model).attribute(points, target=target, abs=False)


# -- the entries ---------------------------------------------------------------------------------
_SEED = Param("seed", 0, "random seed of the noise, so a result repeats (and can be cached)", 0, 2**31 - 1)


@register_method("saliency", "Saliency", ("image", "table"),
                 "gradient of the target's score with respect to each input",
                 params=(Param("abs", True, "take the absolute value of the gradient"),),
                 signed=lambda p: not p["abs"])
def _saliency(model, inputs, target, baseline, p):
    return Saliency(model).attribute(inputs, target=target, abs=p["abs"]), None


@register_method("input_x_gradient", "Input × Gradient", ("image", "table"),
                 "input times gradient: a first-order estimate of each input's contribution")
def _input_x_gradient(model, inputs, target, baseline, p):
    return InputXGradient(model).attribute(inputs, target=target), None


@register_method("integrated_gradients", "Integrated Gradients", ("image", "table"),
                 "gradients averaged along the straight path from the baseline to the input; "
                 "they sum to f(input) - f(baseline) (the convergence delta is how far from that)",
                 params=(Param("n_steps", 50, "points on the path", 2, 1000),
                         Param("method", "gausslegendre", "quadrature rule",
                               choices=("gausslegendre", "riemann_trapezoid", "riemann_left",
                                        "riemann_right", "riemann_middle")),
                         Param("internal_batch_size", 256, "path points per forward pass", 1, 65536)),
                 uses_baseline=True)
def _integrated_gradients(model, inputs, target, baseline, p):
    return IntegratedGradients(model).attribute(
        inputs, baselines=baseline, target=target, n_steps=p["n_steps"], method=p["method"],
        internal_batch_size=p["internal_batch_size"], return_convergence_delta=True)


@register_method("smoothgrad", "SmoothGrad", ("image", "table"),
                 "gradients averaged over noisy copies of the input (Captum's NoiseTunnel over Saliency)",
                 params=(Param("nt_samples", 20, "noisy copies", 1, 1000),
                         Param("stdevs", 0.15, "standard deviation of the noise", 0.0, 10.0),
                         Param("nt_type", "smoothgrad", "how the copies are combined",
                               choices=("smoothgrad", "smoothgrad_sq", "vargrad")),
                         _SEED),
                 signed=lambda p: p["nt_type"] == "smoothgrad")
def _smoothgrad(model, inputs, target, baseline, p):
    # NoiseTunnel over Saliency, on the whole batch at once with each sample's noise from its own seed.
    copies = p["nt_samples"]

    def gradients(noisy, start, stop):
        return _gradients(model, noisy, target[start:stop].repeat_interleave(copies))

    grads = _noisy_gradients(inputs, copies, p["stdevs"], int(p["seed"]), gradients)
    with torch.no_grad():
        mean = grads.sum(1) / copies
        if p["nt_type"] == "smoothgrad":
            return mean, None
        mean_sq = grads.pow(2).sum(1) / copies
        return (mean_sq if p["nt_type"] == "smoothgrad_sq" else mean_sq - mean * mean), None


@register_method("gradient_shap", "GradientSHAP", ("image", "table"),
                 "expected gradients × (input - baseline) over random points between noisy "
                 "inputs and the baseline: an approximation of SHAP values",
                 params=(Param("n_samples", 20, "random points per input", 1, 1000),
                         Param("stdevs", 0.1, "standard deviation of the noise on the input", 0.0, 10.0),
                         _SEED),
                 uses_baseline=True)
def _gradient_shap(model, inputs, target, baseline, p):
    # GradientShap with one baseline per input (not another input's blur), on the whole batch at
    # once, each sample's noise and alphas from its own seed.
    copies, seed = p["n_samples"], int(p["seed"])

    def shap(noisy, start, stop):
        base = baseline[start:stop].repeat_interleave(copies, dim=0)
        alpha = _seeded_alphas(stop - start, copies, seed, noisy)
        points = (alpha * noisy + (1.0 - alpha) * base).requires_grad_()
        grads = _gradients(model, points, target[start:stop].repeat_interleave(copies))
        return ((noisy - base) * grads).detach()

    with torch.no_grad():
        return _noisy_gradients(inputs, copies, p["stdevs"], seed, shap).sum(1) / copies, None


@register_method("deeplift", "DeepLift", ("image", "table"),
                 "contributions relative to the baseline, propagated with the rescale rule",
                 uses_baseline=True)
def _deeplift(model, inputs, target, baseline, p):
    return DeepLift(model).attribute(inputs, baselines=baseline, target=target,
                                     return_convergence_delta=True)


@register_method("guided_backprop", "Guided Backprop", ("image", "table"),
                 "gradients where ReLUs also block negative gradients on the way back")
def _guided_backprop(model, inputs, target, baseline, p):
    return GuidedBackprop(model).attribute(inputs, target=target), None


def occlusion_window(side: int, window: int, stride: int) -> tuple[int, int]:
    """Window and stride in pixels; 0 picks about an eighth of the image side (half of it as stride)."""
    window = window or max(2, round(side / 8))
    stride = stride or max(1, window // 2)
    return min(window, side), stride


@register_method("occlusion", "Occlusion", ("image",),
                 "the drop in the target's score when a square patch is replaced by the baseline",
                 params=(Param("window", 0, "patch side in pixels (0: about 1/8 of the image)", 0, 4096),
                         Param("stride", 0, "step between patches (0: half the window)", 0, 4096),
                         Param("perturbations_per_eval", 64, "patches per forward pass", 1, 4096)),
                 uses_baseline=True)
def _occlusion(model, inputs, target, baseline, p):
    window, stride = occlusion_window(min(inputs.shape[-2:]), p["window"], p["stride"])
    channels = inputs.shape[1]
    return Occlusion(model).attribute(inputs, sliding_window_shapes=(channels, window, window),
                                      strides=(channels, stride, stride), baselines=baseline,
                                      target=target,
                                      perturbations_per_eval=p["perturbations_per_eval"]), None


@register_method("grad_cam", "Grad-CAM", ("image",),
                 "the last conv layer's activations weighted by their mean gradient, upsampled "
                 "(bilinear) to the input",
                 params=(Param("layer", "auto", "conv layer by name (auto: the last Conv2d)"),
                         Param("relu_attributions", True, "keep only positive evidence (as in the paper)")),
                 needs_conv=True, signed=lambda p: not p["relu_attributions"])
def _grad_cam(model, inputs, target, baseline, p):
    layer = find_layer(model, p["layer"])
    cam = LayerGradCam(model, layer).attribute(inputs, target=target,
                                               relu_attributions=p["relu_attributions"])
    return LayerAttribution.interpolate(cam, tuple(inputs.shape[-2:]), interpolate_mode="bilinear"), None


@register_method("feature_ablation", "Feature Ablation", ("table",),
                 "the change in the target's score when each feature is set to the baseline",
                 params=(Param("perturbations_per_eval", 64, "ablated copies per forward pass", 1, 4096),),
                 uses_baseline=True)
def _feature_ablation(model, inputs, target, baseline, p):
    return FeatureAblation(model).attribute(inputs, baselines=baseline, target=target,
                                            perturbations_per_eval=p["perturbations_per_eval"]), None


# Attention of a ViT, on the patch grid, upsampled to the pixels: no gradients, one forward pass.
_HEAD_FUSION = Param("head_fusion", "mean", "how each layer's heads are combined", choices=("mean", "max", "min"))


def _check_attends(model: nn.Module, method: str) -> None:
    if not has_attentions(model):
        raise DlxError(f"method: {method} needs a vision transformer (a model with attention layers); "
                       f"this is a {type(model).__name__}", field="method")


@register_method("attention_rollout", "Attention rollout", ("image",),
                 "what [CLS] takes from each patch through all layers, attention times the residual "
                 "connection, layer after layer (Abnar & Zuidema 2020); the same for every class",
                 params=(_HEAD_FUSION,), needs_attention=True, signed=lambda p: False)
def _attention_rollout(model, inputs, target, baseline, p):
    _check_attends(model, "attention_rollout")
    return vit_rollout_pixels(model, inputs, "rollout", p["head_fusion"]).to(inputs.device), None


@register_method("cls_attention", "CLS attention, last layer", ("image",),
                 "the last layer's attention from [CLS] (which the ViT classifies from) to each patch; "
                 "the same for every class",
                 params=(_HEAD_FUSION,), needs_attention=True, signed=lambda p: False)
def _cls_attention(model, inputs, target, baseline, p):
    _check_attends(model, "cls_attention")
    return vit_rollout_pixels(model, inputs, "last_layer", p["head_fusion"]).to(inputs.device), None
