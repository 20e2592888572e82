"""Faithfulness: does removing what a map calls important change the model's mind?

Deletion replaces features with the baseline in attribution order (most positive first) and
tracks the target's probability: a faithful map makes it fall fast (small area). Insertion
starts from the baseline and adds features back: it should rise fast (large area). Features are
pixels (all channels at once) for images and columns for tables. Captum's infidelity and
max-sensitivity complete the picture.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from captum.metrics import infidelity, sensitivity_max
from torch import Tensor, nn


def feature_scores(values: Tensor) -> Tensor:
    """(N, P): one score per removable feature, pixels with their channels summed for images."""
    return values.sum(dim=1).flatten(1) if values.ndim == 4 else values.flatten(1)


@dataclass
class Curves:
    fractions: np.ndarray  # (S+1,) share of features removed (deletion) or added (insertion)
    deletion: np.ndarray  # (N, S+1) target probability
    insertion: np.ndarray

    @property
    def deletion_auc(self) -> np.ndarray:
        return np.trapezoid(self.deletion, self.fractions, axis=1)

    @property
    def insertion_auc(self) -> np.ndarray:
        return np.trapezoid(self.insertion, self.fractions, axis=1)


# Perturbed copies per forward pass: at most this many, and at most this many input values in all
# (64-feature digits fill 4,096 copies; a 3×224×224 image about 20).
MAX_COPIES = 4096
MAX_VALUES = 1 << 22


@torch.no_grad()
def deletion_insertion(model: nn.Module, inputs: Tensor, values: Tensor, target: Tensor,
                       baseline: Tensor, steps: int = 20, batch: int | None = None) -> Curves:
    """Both curves for every sample: all steps of both curves of many samples go through one forward pass.

    `batch` caps the perturbed copies per pass (default: what fits MAX_COPIES and MAX_VALUES).
    To score several methods at once, stack their maps (and repeat inputs, targets, baseline).
    """
    device = next(model.parameters()).device
    fractions = np.linspace(0.0, 1.0, steps + 1)
    scores = feature_scores(values).to(device)
    n, p = scores.shape
    rank = torch.empty_like(scores, dtype=torch.long)
    rank.scatter_(1, scores.argsort(dim=1, descending=True, stable=True),
                  torch.arange(p, device=device).expand(n, p))
    counts = torch.as_tensor(np.round(fractions * p), device=device)
    spatial = inputs.shape[2:] if inputs.ndim == 4 else inputs.shape[1:]
    if batch is None:
        batch = max(1, min(MAX_COPIES, MAX_VALUES // max(1, inputs[0].numel())))
    chunk = max(1, batch // (2 * (steps + 1)))  # samples per pass; each brings 2 × (S+1) copies
    curves = []
    for start in range(0, n, chunk):
        x = inputs[start:start + chunk].to(device, torch.float32)
        base = baseline[start:start + chunk].to(device, torch.float32)
        t = target[start:start + chunk].to(device)
        removed = rank[start:start + chunk, None, :] < counts[None, :, None]  # (n, S+1, P)
        removed = removed.view(len(x), steps + 1, *([1] if inputs.ndim == 4 else []), *spatial)
        xs, bs = x[:, None], base[:, None]
        perturbed = torch.cat([torch.where(removed, bs, xs), torch.where(removed, xs, bs)], dim=1)
        probs = torch.softmax(model(perturbed.reshape(-1, *inputs.shape[1:])).float(), dim=1)
        probs = probs.view(len(x), 2 * (steps + 1), -1)
        curves.append(probs.gather(2, t.view(-1, 1, 1).expand(-1, 2 * (steps + 1), 1)).squeeze(2).cpu())
    both = torch.cat(curves).numpy()
    return Curves(fractions, both[:, :steps + 1], both[:, steps + 1:])


def deletion_insertion_many(model: nn.Module, inputs: Tensor, maps: dict[str, Tensor], target: Tensor,
                            baseline: Tensor, steps: int = 20) -> dict[str, Curves]:
    """Curves for several methods' maps of the same samples, all in the same few forward passes."""
    m = len(maps)
    curves = deletion_insertion(model, inputs.repeat(m, *[1] * (inputs.ndim - 1)),
                                torch.cat([v.to(inputs.device) for v in maps.values()]),
                                target.repeat(m), baseline.repeat(m, *[1] * (baseline.ndim - 1)), steps)
    n = len(inputs)
    return {name: Curves(curves.fractions, curves.deletion[k * n:(k + 1) * n], curves.insertion[k * n:(k + 1) * n])
            for k, name in enumerate(maps)}


def infidelity_scores(model: nn.Module, inputs: Tensor, values: Tensor, target: Tensor,
                      noise: float = 0.1, n_perturb: int = 16, seed: int = 0) -> Tensor:
    """Captum's infidelity with Gaussian perturbations, attributions rescaled to fit (lower is better)."""
    device = next(model.parameters()).device

    def perturb(x: Tensor) -> tuple[Tensor, Tensor]:
        delta = torch.randn_like(x) * noise
        return delta, x - delta

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        scores = infidelity(model, perturb, inputs.to(device), values.to(device), target=target.to(device),
                            n_perturb_samples=n_perturb, normalize=True)
    return scores.detach().cpu()


def max_sensitivity(explanation: Callable[[Tensor, Tensor], Tensor], inputs: Tensor, target: Tensor,
                    radius: float = 0.02, n_perturb: int = 5, seed: int = 0) -> Tensor:
    """Captum's max-sensitivity: the largest relative change of the map under small uniform noise.

    `explanation(inputs, target)` recomputes the attributions (lower is better).
    """
    def explain_for_captum(x, target):
        # Captum passes the unperturbed inputs as a tuple and expects a tuple back.
        if isinstance(x, tuple):
            return (explanation(x[0], target),)
        return explanation(x, target)

    device = inputs.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        scores = sensitivity_max(explain_for_captum, inputs, perturb_radius=radius,
                                 n_perturb_samples=n_perturb, target=target)
    return scores.detach().cpu()
