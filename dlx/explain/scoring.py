"""Scoring methods on a run's samples (images and tables) or sentences (text): faithfulness,
localisation or rationales, and a table ranking them.

A random attribution is scored alongside as the reference a useful method must beat.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from dlx.errors import DlxError
from dlx.explain.cache import digest, explain_cached, tensor_digest
from dlx.explain.faithfulness import (
    average_precision,
    deletion_insertion_many,
    deletion_insertion_words,
    infidelity_scores,
    max_sensitivity,
    random_scores,
    rationale_mask,
    recall_at_k,
)
from dlx.explain.image.baselines import make_baseline
from dlx.explain.image.localisation import mask_mass, pointing_game
from dlx.explain.image.methods import explain
from dlx.explain.methods import get_method
from dlx.explain.models_cache import LoadedRun
from dlx.explain.text.methods import explain_text
from dlx.explain.text.tokens import Encoded

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

TEXT_METRICS: dict[str, tuple[str, bool]] = {
    "deletion_auc": ("Deletion AUC ↓", False),
    "insertion_auc": ("Insertion AUC ↑", True),
    "comprehensiveness": ("Comprehensiveness ↑", True),
    "sufficiency": ("Sufficiency ↓", False),
    "rationale_recall": ("Rationale recall@k ↑", True),
    "rationale_auprc": ("Rationale AUPRC ↑", True),
}



def ranked(metrics: dict[str, dict[str, Any]], columns: dict[str, tuple[str, bool]], name: Callable[[str], str],
           mean: Callable[[Any], Any]) -> list[dict[str, Any]]:
    """One row per method, `mean` of each metric every method has, ranked by the mean of its per-metric ranks."""
    methods = list(metrics)
    names = [m for m in columns if all(m in metrics[k] for k in methods)]
    means = {k: {m: float(mean(metrics[k][m])) for m in names} for k in methods}
    ranks: dict[str, list[int]] = {k: [] for k in methods}
    for metric in names:
        higher = columns[metric][1]
        order = sorted(methods, key=lambda k: -means[k][metric] if higher else means[k][metric])
        for position, k in enumerate(order, 1):
            ranks[k].append(position)
    rows = [{"method": name(k), **{columns[m][0]: means[k][m] for m in names},
             "mean rank": float(np.mean(ranks[k])) if ranks[k] else 0.0} for k in methods]
    rows.sort(key=lambda row: (row["mean rank"], row["method"]))  # ties: by name, whatever the order stored
    for position, row in enumerate(rows, 1):
        row["rank"] = position
    return rows


@dataclass
class Scores:
    """Per method and metric, one value per sample; curves for the deletion/insertion chart."""

    fractions: np.ndarray
    deletion: dict[str, np.ndarray] = field(default_factory=dict)  # method -> (N, S+1)
    insertion: dict[str, np.ndarray] = field(default_factory=dict)
    metrics: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # method -> metric -> (N,)

    def table(self) -> list[dict[str, Any]]:
        """One row per method, mean of each metric, ranked by the mean of its per-metric ranks."""
        return ranked(self.metrics, METRICS, label, np.mean)

    def to_tensors(self) -> dict[str, Tensor]:
        tensors = {"fractions": torch.as_tensor(self.fractions)}
        for k in self.metrics:
            tensors[f"deletion/{k}"] = torch.as_tensor(self.deletion[k])
            tensors[f"insertion/{k}"] = torch.as_tensor(self.insertion[k])
            for metric, values in self.metrics[k].items():
                tensors[f"metric/{k}/{metric}"] = torch.as_tensor(values)
        return tensors

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor]) -> Scores:
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
    return "Random (reference)" if method == RANDOM else get_method(method).label


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
        base = make_baseline(baseline, x, loaded.meta.mean) if get_method(method).on_tensors.uses_baseline else None
        return explain(method, loaded.model, x, target, base, **params).values.to(x.device)

    return explanation


def scores_cached(loaded: LoadedRun, inputs: Tensor, targets: list[int], methods: list[str],
                  baseline: str = "zeros", params: dict[str, dict[str, Any]] | None = None,
                  masks: Tensor | None = None, sensitivity: bool = True, compute: bool = True) -> Scores | None:
    """`score_methods` on these samples, read back from the cache when it was computed before.

    With `compute=False` only the cache is looked at (None when it holds no answer).
    """
    params = {m: get_method(m).on_tensors.resolve((params or {}).get(m) or {}) for m in methods}
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


# -- text: words of sentences ----------------------------------------------------------------------
@dataclass
class TextScores:
    """Per method and metric, one value per sentence, with the mean curves for the chart."""

    metrics: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    deletion: dict[str, list[np.ndarray]] = field(default_factory=dict)  # per sentence, (W+1,) each
    insertion: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, method: str, metric: str, value: float) -> None:
        self.metrics.setdefault(method, {}).setdefault(metric, []).append(value)

    def table(self) -> list[dict[str, Any]]:
        """One row per method, mean of each metric, ranked by the mean of its per-metric ranks."""
        return ranked(self.metrics, TEXT_METRICS, text_label, np.nanmean)

    def to_tensors(self) -> dict[str, Tensor]:
        """Flat tensors for the cache; curves of sentences of different lengths padded with NaN."""
        tensors = {}
        for method, metrics in self.metrics.items():
            for metric, values in metrics.items():
                tensors[f"metric/{method}/{metric}"] = torch.tensor(values, dtype=torch.float64)
            for which in ("deletion", "insertion"):
                curves = getattr(self, which)[method]
                padded = torch.full((len(curves), max(len(c) for c in curves)), float("nan"), dtype=torch.float64)
                for i, c in enumerate(curves):
                    padded[i, :len(c)] = torch.as_tensor(c)
                tensors[f"{which}/{method}"] = padded
        return tensors

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor]) -> TextScores:
        scores = cls()
        for name, values in tensors.items():
            kind, method, *metric = name.split("/")
            if kind == "metric":
                scores.metrics.setdefault(method, {})[metric[0]] = values.tolist()
            else:
                rows = values.numpy()
                getattr(scores, kind)[method] = [row[~np.isnan(row)] for row in rows]
        return scores

    def grid_curves(self, which: str = "deletion", points: int = 11) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Each sentence's curve on a common grid of fractions (sentences differ in length):
        the grid and, per method label, an (N, points) array."""
        grid = np.linspace(0, 1, points)
        return grid, {text_label(m): np.array([np.interp(grid, np.linspace(0, 1, len(c)), c) for c in curves])
                      for m, curves in getattr(self, which).items()}


def text_label(method: str) -> str:
    return "Random" if method == RANDOM else get_method(method).label


def score_text_methods(model: nn.Module, sentences: Sequence[Encoded], targets: Sequence[int],
                       methods: Sequence[str], rationales: Sequence[Sequence[int]] | None = None,
                       k: int = 3, params: dict[str, dict[str, Any]] | None = None, seed: int = 0,
                       progress: Callable[[float], None] | None = None) -> TextScores:
    """Every method (and a random ranking) on every sentence: faithfulness, and rationale scores
    where rationales (word indices of `text.split()`) are given. Targets are usually the predictions.
    `progress` hears the share of sentences done."""
    if rationales is not None and len(rationales) != len(sentences):
        raise DlxError(f"rationales: {len(rationales)} for {len(sentences)} sentences", field="rationales")
    scores = TextScores()
    for i, (encoded, target) in enumerate(zip(sentences, targets)):
        for method in [*methods, RANDOM]:
            if method == RANDOM:
                words, signed = random_scores(len(encoded.words), seed + i), False
            else:
                attribution = explain_text(method, model, encoded, int(target), **(params or {}).get(method, {}))
                words, signed = attribution.words(encoded), attribution.signed
            curves = deletion_insertion_words(model, encoded, words, int(target), signed)
            scores.deletion.setdefault(method, []).append(curves.deletion)
            scores.insertion.setdefault(method, []).append(curves.insertion)
            for metric in ("deletion_auc", "insertion_auc", "comprehensiveness", "sufficiency"):
                scores.add(method, metric, getattr(curves, metric))
            if rationales is not None:
                mask = rationale_mask(encoded, rationales[i])
                scores.add(method, "rationale_recall", recall_at_k(words, mask, k))
                scores.add(method, "rationale_auprc", average_precision(words, mask))
        if progress is not None:
            progress((i + 1) / len(sentences))
    return scores
