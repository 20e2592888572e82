"""Choosing which test samples to explain: by index, by class, misclassified first, or at random."""
from __future__ import annotations

import torch
from torch import Tensor

from dlx.errors import DlxError

PICKERS: dict[str, str] = {
    "index": "the test samples at these indices",
    "class": "test samples whose true class is the chosen one",
    "misclassified": "wrong predictions first (most confident first), then the rest",
    "random": "a seeded random draw from the test split",
}


def pick_samples(labels: Tensor, probs: Tensor, how: str, count: int, indices: list[int] | None = None,
                 cls: int | None = None, seed: int = 0) -> list[int]:
    """Indices into the test split; `probs` are the model's test probabilities (N, classes)."""
    n = len(labels)
    if count < 1:
        raise DlxError("samples: choose at least one sample", field="samples")
    if how == "index":
        chosen = list(indices or [])
        outside = [i for i in chosen if not 0 <= i < n]
        if outside:
            raise DlxError(f"samples: index {outside[0]} is outside the test split (0 to {n - 1})",
                           field="samples")
        if not chosen:
            raise DlxError("samples: give at least one index", field="samples")
        return chosen[:count]
    if how == "class":
        if cls is None or not 0 <= cls < probs.shape[1]:
            raise DlxError(f"samples: choose a class between 0 and {probs.shape[1] - 1}", field="samples")
        return torch.nonzero(labels == cls).flatten()[:count].tolist()
    if how == "misclassified":
        confidence, predicted = probs.max(1)
        wrong = torch.nonzero(predicted != labels).flatten()
        wrong = wrong[confidence[wrong].argsort(descending=True, stable=True)]
        right = torch.nonzero(predicted == labels).flatten()
        return torch.cat([wrong, right])[:count].tolist()
    if how == "random":
        generator = torch.Generator().manual_seed(seed)
        return torch.randperm(n, generator=generator)[:count].tolist()
    raise DlxError(f"samples: unknown way to pick {how!r}; choose one of {sorted(PICKERS)}", field="samples")
