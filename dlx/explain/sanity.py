"""Sanity checks for attribution methods (Adebayo et al. 2018, "Sanity Checks for Saliency Maps").

Model-parameter randomisation: each layer's parameters are re-initialised (on a deep copy, each layer
from its own seed) cascading from the output layer down, and one layer at a time; a method's maps of
the trained model are compared with the randomised model's over a fixed set of test samples.
Data randomisation: the maps of a run are compared with a run trained on permuted labels
(`label_permutation`). A method whose maps stay similar when the model has forgotten what it learnt
explains the input, not the model: it fails.

Similarities, per sample, then their mean with a 95% bootstrap percentile interval over the samples:
Spearman rank correlation of the absolute and of the signed maps, and (images) SSIM and HOG similarity
of the absolute maps scaled to [0, 1]. Channels are summed (the absolute map sums absolute values).
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from scipy.stats import rankdata
from torch import Tensor, nn

from dlx.explain.image.baselines import make_baseline
from dlx.explain.image.methods import explain
from dlx.explain.methods import get_method

# A method fails when the Spearman rank correlation of its absolute maps, after every layer is
# randomised, is above this: more than a weak correlation (|r| < 0.3) with the trained model's maps
# is left once nothing the model learnt is. On the digits CNN, Saliency stays at 0.05-0.15 and Guided
# Backprop at 0.45-0.61 over weight seeds and training lengths (BENCHMARKS.md, "Sanity checks").
THRESHOLD = 0.3
MEASURES = ("spearman", "spearman_signed", "ssim", "hog")
BOOTSTRAP = 1000  # resamples of the samples for the 95% interval
INTERVAL = "95% bootstrap percentile interval of the mean over samples (1000 resamples, seeded)"


def parameter_layers(model: nn.Module) -> list[str]:
    """The modules that hold parameters of their own, by qualified name, input to output (registration
    order, which is forward order for dlx's models); these are what the checks randomise."""
    return [name for name, module in model.named_modules()
            if name and any(True for _ in module.parameters(recurse=False))]


def cascade(layers: list[str]) -> list[list[str]]:
    """The cascading steps: the output layer, then it and the one below, ... down to every layer."""
    return [layers[len(layers) - k:] for k in range(1, len(layers) + 1)]


def randomised(model: nn.Module, layers: list[str], seed: int = 0) -> nn.Module:
    """A deep copy of `model` with these layers' parameters re-initialised and everything else identical.

    Layer i of `parameter_layers` always draws from seed `seed + i`, so a layer gets the same random
    weights in every step of the cascade and in the independent check. The draw is made on a CPU copy
    of the layer (its own `reset_parameters`, else N(0, 0.02)), so it is the same on any device.
    """
    order = {name: i for i, name in enumerate(parameter_layers(model))}
    unknown = [name for name in layers if name not in order]
    if unknown:
        raise ValueError(f"no parameter layer named {unknown[0]!r}; the model has {list(order)}")
    copied = copy.deepcopy(model)
    modules = dict(copied.named_modules())
    for name in layers:
        fresh = copy.deepcopy(modules[name]).cpu()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + order[name])
            reset = getattr(fresh, "reset_parameters", None)
            if callable(reset):
                reset()
            else:
                for parameter in fresh.parameters(recurse=False):
                    nn.init.normal_(parameter, 0.0, 0.02)
        with torch.no_grad():
            for (_, target), (_, source) in zip(modules[name].named_parameters(recurse=False),
                                                fresh.named_parameters(recurse=False)):
                target.copy_(source)
            for (_, target), (_, source) in zip(modules[name].named_buffers(recurse=False),
                                                fresh.named_buffers(recurse=False)):
                target.copy_(source)
    return copied


# -- similarity of two batches of maps -------------------------------------------------------------
def _flat(maps: np.ndarray) -> np.ndarray:
    return maps.reshape(len(maps), -1)


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per sample, the Spearman rank correlation of two maps (0 where a map is constant: no ranking)."""
    ra, rb = (rankdata(_flat(m), axis=1) for m in (a, b))
    ra, rb = ra - ra.mean(1, keepdims=True), rb - rb.mean(1, keepdims=True)
    norm = np.sqrt((ra * ra).sum(1) * (rb * rb).sum(1))
    return np.where(norm > 0, (ra * rb).sum(1) / np.where(norm > 0, norm, 1.0), 0.0)


def _unit(maps: np.ndarray) -> np.ndarray:
    """Absolute maps scaled to [0, 1] by each one's maximum (a zero map stays zero)."""
    top = maps.reshape(len(maps), -1).max(1).reshape(-1, *[1] * (maps.ndim - 1))
    return maps / np.where(top > 0, top, 1.0)


def ssim(a: np.ndarray, b: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """Per sample, the mean structural similarity (Wang et al. 2004, Gaussian window of `sigma`) of two
    (N, H, W) absolute maps scaled to [0, 1]."""
    a, b = _unit(a), _unit(b)
    c1, c2 = 0.01**2, 0.03**2

    def blur(x: np.ndarray) -> np.ndarray:
        return gaussian_filter(x, sigma=(0, sigma, sigma), mode="reflect")

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return index.reshape(len(a), -1).mean(1)


def hog(maps: np.ndarray, bins: int = 9) -> np.ndarray:
    """(N, features): histograms of oriented gradients of (N, H, W) maps: unsigned orientations in
    `bins` bins weighted by gradient magnitude, over a 4 x 4 grid of cells, each cell L2-normalised."""
    gy, gx = np.gradient(maps, axis=(1, 2))
    magnitude = np.hypot(gx, gy)
    angle = np.mod(np.arctan2(gy, gx), np.pi)
    which = np.minimum((angle / np.pi * bins).astype(int), bins - 1)
    n, h, w = maps.shape
    rows, cols = np.minimum(np.arange(h) * 4 // h, 3), np.minimum(np.arange(w) * 4 // w, 3)
    cell = (rows[:, None] * 4 + cols[None, :])[None].repeat(n, 0)
    index = (np.arange(n)[:, None, None] * 16 + cell) * bins + which
    histogram = np.bincount(index.ravel(), magnitude.ravel(), n * 16 * bins).reshape(n, 16, bins)
    norm = np.linalg.norm(histogram, axis=2, keepdims=True)
    return (histogram / np.where(norm > 0, norm, 1.0)).reshape(n, -1)


def hog_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per sample, the Pearson correlation of two maps' HOG features (0 where one is constant), as in
    the paper."""
    fa, fb = hog(_unit(a)), hog(_unit(b))
    fa, fb = fa - fa.mean(1, keepdims=True), fb - fb.mean(1, keepdims=True)
    norm = np.sqrt((fa * fa).sum(1) * (fb * fb).sum(1))
    return np.where(norm > 0, (fa * fb).sum(1) / np.where(norm > 0, norm, 1.0), 0.0)


def similarities(a: Tensor, b: Tensor) -> dict[str, np.ndarray]:
    """Every measure, per sample, of two batches of maps of one shape ((N, C, H, W) images, (N, F) tables:
    tables get the two Spearman correlations only)."""
    x, y = a.double().numpy(), b.double().numpy()
    image = x.ndim == 4
    signed = (x.sum(1), y.sum(1)) if image else (x, y)
    absolute = (np.abs(x).sum(1), np.abs(y).sum(1)) if image else (np.abs(x), np.abs(y))
    found = {"spearman": spearman(*absolute), "spearman_signed": spearman(*signed)}
    if image:
        found["ssim"] = ssim(*absolute)
        found["hog"] = hog_similarity(*absolute)
    return found


def interval(values: np.ndarray, seed: int = 0) -> tuple[float, float, float]:
    """The mean of per-sample values and its 95% bootstrap percentile interval."""
    values = np.asarray(values, dtype=float)
    draws = np.random.default_rng(seed).integers(0, len(values), (BOOTSTRAP, len(values)))
    means = values[draws].mean(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(values.mean()), float(low), float(high)


def summary(per_sample: dict[str, np.ndarray], seed: int = 0) -> dict[str, Any]:
    """Each measure's mean with its interval under `<measure>_ci`; image-only measures are None for tables."""
    out: dict[str, Any] = {}
    for measure in MEASURES:
        if measure in per_sample:
            mean, low, high = interval(per_sample[measure], seed)
            out[measure], out[f"{measure}_ci"] = round(mean, 4), [round(low, 4), round(high, 4)]
        else:
            out[measure], out[f"{measure}_ci"] = None, None
    return out


# -- the checks -------------------------------------------------------------------------------------
Progress = Callable[[float], None]


def check_methods(model: nn.Module, inputs: Tensor, targets: list[int], methods: list[str],
                  params: dict[str, dict[str, Any]], baseline: str = "zeros", mean: Sequence[float] = (),
                  seed: int = 0, against: nn.Module | None = None,
                  progress: Progress | None = None) -> dict[str, Any]:
    """Model-parameter randomisation (cascading and independent) of every method on these samples, and
    data randomisation against `against` (the model of a run trained on permuted labels) when given.

    Every model explains the same targets (the trained model's). Returns the JSON-able result:
    `{"methods": {name: {spearman, spearman_signed, ssim, hog (each with `_ci`), passed, curve,
    independent, data}}, "layers": [...], ...}`; `curve` holds a step per cascading randomisation.
    """
    model = model.eval()
    device = next(model.parameters()).device
    layers = parameter_layers(model)
    steps = cascade(layers)
    singles = [[name] for name in layers]
    variants: list[tuple[str, ...]] = list(dict.fromkeys(tuple(s) for s in [*steps, *singles]))
    total = len(methods) * (1 + len(variants) + (against is not None))
    done = 0

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done / total)

    base = make_baseline(baseline, inputs, mean) if any(get_method(m).on_tensors.uses_baseline
                                                          for m in methods) else None

    def maps(net: nn.Module) -> dict[str, Tensor]:
        out = {}
        for method in methods:
            uses = get_method(method).on_tensors.uses_baseline
            out[method] = explain(method, net, inputs, targets, base if uses else None, **params.get(method, {})).values
            tick()
        return out

    trained = maps(model)
    scores: dict[tuple[str, ...], dict[str, dict[str, np.ndarray]]] = {}
    for variant in variants:
        net = randomised(model, list(variant), seed).to(device).eval()
        scores[variant] = {m: similarities(trained[m], v) for m, v in maps(net).items()}
        del net
    data = None
    if against is not None:
        data = {m: similarities(trained[m], v) for m, v in maps(against.eval()).items()}

    result: dict[str, Any] = {}
    for method in methods:
        full = summary(scores[tuple(steps[-1])][method], seed)
        entry: dict[str, Any] = {
            "label": get_method(method).label, **full,
            "threshold": THRESHOLD,
            "rule": f"fails when the Spearman rank correlation of absolute maps after randomising every layer "
                    f"is above {THRESHOLD}",
            "curve": [{"layer": step[0], "randomised": list(step), **summary(scores[tuple(step)][method], seed)}
                      for step in steps],
            "independent": [{"layer": name, **summary(scores[(name,)][method], seed)} for name in layers],
        }
        passed = full["spearman"] <= THRESHOLD
        entry["model_passed"] = passed
        if data is not None:
            entry["data"] = summary(data[method], seed)
            entry["data"]["passed"] = entry["data"]["spearman"] <= THRESHOLD
            passed = passed and entry["data"]["passed"]
        entry["passed"] = bool(passed)
        result[method] = entry
    return {"methods": result, "layers": layers, "samples": len(inputs), "seed": seed,
            "threshold": THRESHOLD, "interval": INTERVAL}
