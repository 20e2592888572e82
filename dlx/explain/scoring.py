"""Scoring methods on a run's samples: faithfulness, localisation, and a table ranking them.

A random attribution is scored alongside as the reference a useful method must beat.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from dlx.explain.baselines import make_baseline
from dlx.explain.cache import digest, explain_cached, tensor_digest
from dlx.explain.faithfulness import deletion_insertion_many, infidelity_scores, max_sensitivity
from dlx.explain.localisation import mask_mass, pointing_game
from dlx.explain.methods import METHODS, explain
from dlx.explain.models_cache import LoadedRun

RANDOM = "random"

# metric -> (column title, True when higher is better)
METRICS: dict[str, tuple[str, bool]] = {
    "deletion_auc": ("Deletion AUC ↓", False),
    "insertion_auc": ("Insertion AUC ↑", True),
    "infidelity": ("Infidelity ↓", False),
    "max_sensitivity": ("Max-sensitivity ↓", False),
    "mask_mass": ("Mass in mask ↑", True),
    "pointing_game": ("Pointing game ↑", True),
}


@dataclass
class Scores:
    """Per method and metric, one value per sample; curves for the deletion/insertion chart."""

    fractions: np.ndarray
    deletion: dict[str, np.ndarray] = field(default_factory=dict)  # method -> (N, S+1)
    insertion: dict[str, np.ndarray] = field(default_factory=dict)
    metrics: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # method -> metric -> (N,)

    def table(self) -> list[dict[str, Any]]:
        """One row per method, mean of each metric, ranked by the mean of its per-metric ranks."""
        methods = list(self.metrics)
        names = [m for m in METRICS if all(m in self.metrics[k] for k in methods)]
        means = {k: {m: float(np.mean(self.metrics[k][m])) for m in names} for k in methods}
        ranks = {k: [] for k in methods}
        for metric in names:
            higher = METRICS[metric][1]
            order = sorted(methods, key=lambda k: -means[k][metric] if higher else means[k][metric])
            for position, k in enumerate(order, 1):
                ranks[k].append(position)
        rows = [{"method": label(k), **{METRICS[m][0]: means[k][m] for m in names},
                 "mean rank": float(np.mean(ranks[k])) if ranks[k] else 0.0} for k in methods]
        rows.sort(key=lambda row: (row["mean rank"], row["method"]))  # ties: by name, whatever the order stored
        for position, row in enumerate(rows, 1):
            row["rank"] = position
        return rows

    def to_tensors(self) -> dict[str, Tensor]:
        tensors = {"fractions": torch.as_tensor(self.fractions)}
        for k in self.metrics:
            tensors[f"deletion/{k}"] = torch.as_tensor(self.deletion[k])
            tensors[f"insertion/{k}"] = torch.as_tensor(self.insertion[k])
            for metric, values in self.metrics[k].items():
                tensors[f"metric/{k}/{metric}"] = torch.as_tensor(values)
        return tensors

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor]) -> "Scores":
        scores = cls(tensors["fractions"].numpy())
        for name, value in tensors.items():
            kind, _, rest = name.partition("/")
            if kind == "deletion":
                scores.deletion[rest] = value.numpy()
            elif kind == "insertion":
                scores.insertion[rest] = value.numpy()
            elif kind == "metric":
                method, _, metric = rest.partition("/")
                scores.metrics.setdefault(method, {})[metric] = value.numpy()
        return scores


def label(method: str) -> str:
    return "Random (reference)" if method == RANDOM else METHODS[method].label


def score_methods(loaded: LoadedRun, inputs: Tensor, targets: list[int], methods: list[str],
                  baseline: str = "zeros", params: dict[str, dict[str, Any]] | None = None,
                  masks: Tensor | None = None, sensitivity: bool = True, steps: int = 20,
                  progress: Callable[[float], None] | None = None) -> Scores:
    """Score each method (and a random map) on these samples; attributions come through the cache.

    Each method explains all samples in one call; the deletion/insertion curves of every method
    go through the model together, in a few large forward passes.
    """
    params = params or {}
    model, device = loaded.model, loaded.device
    x = inputs.to(device, torch.float32)
    target = torch.as_tensor(targets, dtype=torch.long, device=device)
    base = make_baseline(baseline, x, loaded.meta.mean)
    scores = Scores(np.linspace(0.0, 1.0, steps + 1))
    generator = torch.Generator().manual_seed(0)
    everything = [*methods, RANDOM]
    work = 2 * len(everything) + 1  # maps, one pass of curves, then the per-method metrics
    maps: dict[str, Tensor] = {}
    for done, method in enumerate(everything, 1):
        if method == RANDOM:
            maps[method] = torch.rand(inputs.shape, generator=generator)
        else:
            maps[method] = explain_cached(loaded, inputs, targets, method, baseline, params.get(method)).values
        if progress is not None:
            progress(done / work)
    with loaded.lock:
        curves = deletion_insertion_many(model, x, maps, target, base, steps)
    for done, method in enumerate(everything, len(everything) + 1):
        values = maps[method]
        found = {"deletion_auc": curves[method].deletion_auc, "insertion_auc": curves[method].insertion_auc}
        with loaded.lock:
            found["infidelity"] = infidelity_scores(model, x, values, target).numpy()
            if sensitivity:
                found["max_sensitivity"] = max_sensitivity(
                    _recompute(loaded, method, baseline, params.get(method) or {}, generator), x, target).numpy()
        scores.deletion[method], scores.insertion[method] = curves[method].deletion, curves[method].insertion
        if masks is not None:
            found["mask_mass"] = mask_mass(values, masks).numpy()
            found["pointing_game"] = pointing_game(values, masks).numpy()
        scores.metrics[method] = found
        if progress is not None:
            progress((done + 1) / work)
    return scores


def _recompute(loaded: LoadedRun, method: str, baseline: str, params: dict[str, Any],
               generator: torch.Generator) -> Callable[[Tensor, Tensor], Tensor]:
    """The explanation function max-sensitivity calls on perturbed copies (never cached: they are new)."""
    def explanation(x: Tensor, target: Tensor) -> Tensor:
        if method == RANDOM:
            return torch.rand(x.shape, generator=generator).to(x.device)
        base = make_baseline(baseline, x, loaded.meta.mean) if METHODS[method].uses_baseline else None
        return explain(method, loaded.model, x, target, base, **params).values.to(x.device)

    return explanation


def scores_cached(loaded: LoadedRun, inputs: Tensor, targets: list[int], methods: list[str],
                  baseline: str = "zeros", params: dict[str, dict[str, Any]] | None = None,
                  masks: Tensor | None = None, sensitivity: bool = True, compute: bool = True) -> Scores | None:
    """`score_methods` on these samples, read back from the cache when it was computed before.

    With `compute=False` only the cache is looked at (None when it holds no answer).
    """
    params = {m: METHODS[m].resolve((params or {}).get(m) or {}) for m in methods}
    key = digest({"scores": methods, "run": loaded.run_id, "checkpoint": loaded.checkpoint_id,
                  "samples": [tensor_digest(x) for x in inputs], "targets": [int(t) for t in targets],
                  "params": params, "baseline": baseline, "masks": masks is not None,
                  "sensitivity": sensitivity})
    stored = loaded.store.explanations.load(key)
    if stored is not None:
        return Scores.from_tensors(stored[1])
    if not compute:
        return None
    scores = score_methods(loaded, inputs, targets, methods, baseline, params, masks, sensitivity)
    loaded.store.explanations.save(key, loaded.run_id, "scores", {"methods": methods, "n": len(inputs)},
                                   scores.to_tensors())
    return scores
