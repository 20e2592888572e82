"""Choosing which test samples to explain: by index, by class, misclassified first, or at random."""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from dlx.errors import DlxError

PICKERS: dict[str, str] = {
    "index": "the test samples at these indices",
    "class": "test samples whose true class is the chosen one",
    "misclassified": "wrong predictions first (most confident first), then the rest",
    "random": "a seeded random draw from the test split",
}


def pick_samples(labels: Tensor, probs: Tensor | None, how: str, count: int, indices: list[int] | None = None,
                 cls: int | None = None, seed: int = 0, num_classes: int | None = None) -> list[int]:
    """Indices into the test split; `probs` are the model's test probabilities (N, classes).

    Only "misclassified" needs `probs` (the others take `num_classes`): on a streamed split they
    cost a pass over every test sample, which showing a few chosen ones must not pay.
    """
    n = len(labels)
    if probs is None and how == "misclassified":
        raise DlxError("samples: picking misclassified samples needs the model's test probabilities",
                       field="samples")
    num_classes = probs.shape[1] if probs is not None else num_classes
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
        if num_classes is None or cls is None or not 0 <= cls < num_classes:
            raise DlxError(f"samples: choose a class between 0 and {(num_classes or 1) - 1}", field="samples")
        return torch.nonzero(labels == cls).flatten()[:count].tolist()
    if how == "misclassified":
        if probs is None:
            raise ValueError("misclassified picks need the split's predicted probabilities")
        confidence, predicted = probs.max(1)
        wrong = torch.nonzero(predicted != labels).flatten()
        wrong = wrong[confidence[wrong].argsort(descending=True, stable=True)]
        right = torch.nonzero(predicted == labels).flatten()
        return torch.cat([wrong, right])[:count].tolist()
    if how == "random":
        generator = torch.Generator().manual_seed(seed)
        return torch.randperm(n, generator=generator)[:count].tolist()
    raise DlxError(f"samples: unknown way to pick {how!r}; choose one of {sorted(PICKERS)}", field="samples")


def sample_inputs(split, indices: list[int]) -> Tensor:
    """The model's inputs at `indices`; a streamed split (FolderSplit) decodes only those files."""
    read = getattr(split, "read", None)
    return read(indices) if read is not None else split.x[indices]


def input_batches(split, batch: int = 256) -> Iterator[Tensor]:
    """A split's inputs a batch at a time, so a streamed split is never held decoded whole."""
    for start in range(0, len(split), batch):
        yield sample_inputs(split, list(range(start, min(start + batch, len(split)))))
