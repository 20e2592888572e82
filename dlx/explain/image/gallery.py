"""What the Explain page shows for some samples under one run: predictions, targets, every method's map.

Built the same way for test samples and uploads, and for each run of a side-by-side view; drawn by
dlx.views.charts.explain (`gallery_rows`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from dlx.errors import DlxError
from dlx.explain.cache import explain_cached_many
from dlx.explain.image.methods import Attribution
from dlx.explain.methods import get_method
from dlx.explain.models_cache import LoadedRun

TargetChoice = str | int  # "predicted", "true", or a class index


def resolve_targets(probs: Tensor, choice: TargetChoice, labels: Tensor | None = None) -> list[int]:
    """The class each sample is explained for."""
    if choice == "predicted":
        return probs.argmax(1).tolist()
    if choice == "true":
        if labels is None:
            raise DlxError("target: an uploaded image has no true class; explain the predicted "
                           "class or choose one", field="target")
        return labels.tolist()
    if not isinstance(choice, int) or not 0 <= choice < probs.shape[1]:
        raise DlxError(f"target: {choice!r} is not a class index (0 to {probs.shape[1] - 1})", field="target")
    return [choice] * len(probs)


@dataclass
class Gallery:
    loaded: LoadedRun
    inputs: Tensor
    captions: list[str]
    probs: Tensor
    targets: list[int]
    attributions: dict[str, Attribution] = field(default_factory=dict)
    labels: Tensor | None = None
    masks: Tensor | None = None

    def values(self, i: int) -> dict[str, np.ndarray]:
        """Sample i's attributions per method label (tables: one value per feature)."""
        return {get_method(m).label: a.values[i].numpy() for m, a in self.attributions.items()}


def build_gallery(loaded: LoadedRun, inputs: Tensor, captions: list[str], methods: list[str],
                  baseline: str = "zeros", params: dict[str, dict[str, Any]] | None = None,
                  target: TargetChoice = "predicted", labels: Tensor | None = None,
                  masks: Tensor | None = None) -> Gallery:
    """Predict, choose targets, and explain with every method (through the cache, stored in the
    background: the page shows the maps before they are written)."""
    probs = loaded.predict(inputs)
    targets = resolve_targets(probs, target, labels)
    gallery = Gallery(loaded, inputs, captions, probs, targets, labels=labels, masks=masks)
    gallery.attributions.update(explain_cached_many(loaded, inputs, targets, methods, baseline, params,
                                                    wait=False))
    return gallery


def sample_captions(indices: list[int], labels: Tensor, probs: Tensor, classes: tuple[str, ...]) -> list[str]:
    """"#12 · true 3 · pred 5 ✗" for test samples."""
    predicted = probs.argmax(1)
    return [f"#{i} · true {classes[int(labels[k])]} · pred {classes[int(predicted[k])]}"
            f"{'' if predicted[k] == labels[k] else ' ✗'}" for k, i in enumerate(indices)]


def check_comparable(first: LoadedRun, second: LoadedRun) -> None:
    """Two runs can be shown side by side when they take the same inputs and name the same classes."""
    a, b = first.meta, second.meta
    if a.input_shape != b.input_shape or a.classes != b.classes:
        raise DlxError(f"compare: run #{second.run_id} ({b.name}, {'×'.join(map(str, b.input_shape))}) and "
                       f"run #{first.run_id} ({a.name}, {'×'.join(map(str, a.input_shape))}) do not take "
                       "the same inputs and classes; compare runs trained on the same data", field="compare")

