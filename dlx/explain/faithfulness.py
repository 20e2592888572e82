"""Faithfulness: does removing what a map calls important change the model's mind?

Each kind of input has its own perturbation, the measures are the same. Deletion replaces features
with the baseline in attribution order (most positive first) and tracks the target's probability:
a faithful map makes it fall fast (small area). Insertion starts from the baseline and adds
features back: it should rise fast (large area). Features are pixels (all channels at once) for
images and columns for tables; Captum's infidelity and max-sensitivity complete the picture.

Text removes words from the sentence (ERASER: the text without them, [CLS]/[SEP] kept) in the
order a method ranks them, most positive evidence for the target first (magnitude for unsigned
methods): the deletion curve removes the top 0, 1, ..., W words, the insertion curve keeps only
them; comprehensiveness is p(sentence) - p(sentence without the top k%) and sufficiency
p(sentence) - p(only the top k%), each averaged over k in 1, 5, 10, 20, 50% (ERASER's AOPC, as
ferret computes them; at least one word each). Rationale scores rank words by magnitude (a
rationale word can push either way, like "not"): recall@k (share of the rationale words found in
the top k, out of min(k, rationale size)) and AUPRC (average precision of the word scores against
the rationale mask).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from captum.metrics import infidelity, sensitivity_max
from torch import Tensor, nn

from dlx.errors import DlxError
from dlx.explain.text.tokens import Encoded, text_forward


# -- images and tables: features set to the baseline -----------------------------------------------
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


# -- text: words removed from the sentence ------------------------------------------------------
BINS = (0.01, 0.05, 0.1, 0.2, 0.5)  # top shares of the words for comprehensiveness and sufficiency (ERASER)


def word_order(scores: Tensor, signed: bool) -> Tensor:
    """Word indices, most important first (ties keep sentence order)."""
    key = scores if signed else scores.abs()
    return torch.as_tensor(np.argsort(-key.numpy(), kind="stable"))


def _kept_batch(encoded: Encoded, keep: Tensor) -> tuple[Tensor, Tensor]:
    """(S, T') ids and mask: for each row of `keep` (S, W) the sentence with only those words."""
    ids = encoded.input_ids[0]
    word = encoded.word_of_token
    rows = []
    for kept in keep.tolist():
        rows.append(ids[[i for i, w in enumerate(word) if w is None or kept[w]]])
    length = max(len(r) for r in rows)
    out = torch.full((len(rows), length), encoded.pad_id, dtype=ids.dtype)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, :len(row)] = row
        mask[i, :len(row)] = 1
    return out, mask


@torch.no_grad()
def probabilities(model: nn.Module, encoded: Encoded, keep: Tensor, target: int, batch: int = 64) -> np.ndarray:
    """The target's probability for the sentence with each row of `keep` (S, W) as its words."""
    device = next(model.parameters()).device
    ids, mask = _kept_batch(encoded, keep)
    out = []
    for start in range(0, len(ids), batch):
        logits, _ = text_forward(model, ids[start:start + batch].to(device), mask[start:start + batch].to(device))
        out.append(torch.softmax(logits.float(), dim=-1)[:, target].cpu())
    return torch.cat(out).numpy()


@dataclass
class WordCurves:
    """Deletion and insertion by word for one sentence; x is the share of words removed/kept."""

    fractions: np.ndarray  # (W+1,)
    deletion: np.ndarray  # (W+1,)
    insertion: np.ndarray
    comprehensiveness: float
    sufficiency: float

    @property
    def deletion_auc(self) -> float:
        return float(np.trapezoid(self.deletion, self.fractions))

    @property
    def insertion_auc(self) -> float:
        return float(np.trapezoid(self.insertion, self.fractions))


def deletion_insertion_words(model: nn.Module, encoded: Encoded, word_scores: Tensor, target: int,
                             signed: bool) -> WordCurves:
    """Deletion/insertion curves and ERASER comprehensiveness/sufficiency, one batch of forwards."""
    n = len(encoded.words)
    if word_scores.shape != (n,):
        raise DlxError(f"attributions: {tuple(word_scores.shape)} values for {n} words", field="attributions")
    order = word_order(word_scores, signed)
    rank = torch.empty(n, dtype=torch.long)
    rank[order] = torch.arange(n)
    counts = list(range(n + 1))
    top = [max(1, math.ceil(b * n)) for b in BINS]
    in_top = rank[None, :] < torch.tensor(counts + top)[:, None]  # (W+1+bins, W)
    # rows: deletion (keep what is not in the top), then insertion (keep only the top)
    p = probabilities(model, encoded, torch.cat([~in_top, in_top]), target)
    m = len(counts) + len(top)
    deletion, insertion = p[:m], p[m:]
    full = deletion[0]
    return WordCurves(np.array(counts) / max(n, 1), deletion[:len(counts)], insertion[:len(counts)],
                      float(np.mean(full - deletion[len(counts):])), float(np.mean(full - insertion[len(counts):])))


def rationale_mask(encoded: Encoded, rationale: Sequence[int]) -> Tensor:
    """(W,) True on the words whose index in `text.split()` is in `rationale`."""
    chosen = {int(i) for i in rationale}
    return torch.tensor([i in chosen for i in encoded.split_index])


def recall_at_k(word_scores: Tensor, mask: Tensor, k: int = 3) -> float:
    """Share of the rationale found among the k words of largest magnitude, out of min(k, |rationale|)."""
    wanted = int(mask.sum())
    if wanted == 0:
        return float("nan")
    top = word_order(word_scores, signed=False)[:k]
    return float(mask[top].sum()) / min(k, wanted)


def average_precision(word_scores: Tensor, mask: Tensor) -> float:
    """Area under the precision-recall curve of |scores| against the rationale (average precision)."""
    wanted = int(mask.sum())
    if wanted == 0:
        return float("nan")
    hits = mask[word_order(word_scores, signed=False)].float()
    precision = hits.cumsum(0) / torch.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / wanted)


def random_scores(n_words: int, seed: int) -> Tensor:
    """The reference a useful method must beat: word scores drawn at random (seeded)."""
    return torch.rand(n_words, generator=torch.Generator().manual_seed(seed))
