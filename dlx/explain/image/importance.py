"""Global importance: attributions over many test samples, summarised as mean |attribution|.

The per-sample values are kept too (with the feature values) for the beeswarm chart.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dlx.explain.cache import explain_cached
from dlx.explain.models_cache import LoadedRun

CHUNK = 64  # samples per call: progress moves, and the cache fills as it goes


@dataclass
class GlobalImportance:
    features: np.ndarray  # (N, ...) the explained inputs
    attributions: dict[str, np.ndarray] = field(default_factory=dict)  # method -> (N, ...)

    def mean_abs(self, method: str) -> np.ndarray:
        """Mean |attribution| per feature (or pixel) over the samples."""
        return np.abs(self.attributions[method]).mean(axis=0)

    def to_tensors(self) -> dict[str, Tensor]:
        return {"features": torch.as_tensor(self.features),
                **{f"attr/{m}": torch.as_tensor(v) for m, v in self.attributions.items()}}

    @classmethod
    def from_tensors(cls, tensors: dict[str, Tensor]) -> GlobalImportance:
        return cls(tensors["features"].numpy(),
                   {name.removeprefix("attr/"): v.numpy() for name, v in tensors.items()
                    if name.startswith("attr/")})


def global_importance(loaded: LoadedRun, inputs: Tensor, targets: list[int], methods: list[str],
                      baseline: str = "zeros", params: dict[str, dict[str, Any]] | None = None,
                      progress: Callable[[float], None] | None = None) -> GlobalImportance:
    params = params or {}
    result = GlobalImportance(inputs.numpy())
    total = len(methods) * len(inputs)
    done = 0
    for method in methods:
        parts = []
        for start in range(0, len(inputs), CHUNK):
            rows = slice(start, start + CHUNK)
            parts.append(explain_cached(loaded, inputs[rows], targets[rows], method, baseline,
                                        params.get(method)).values)
            done += len(parts[-1])
            if progress is not None:
                progress(done / total)
        result.attributions[method] = torch.cat(parts).numpy()
    return result
