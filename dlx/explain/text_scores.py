"""Scoring token attributions: faithfulness by word and agreement with known rationales.

Faithfulness removes words from the sentence (ERASER: the text without them, [CLS]/[SEP] kept)
in the order a method ranks them, most positive evidence for the target first (magnitude for
unsigned methods), and watches the target's probability:
- deletion curve: top 0, 1, ..., W words removed (a faithful ranking makes it fall fast: low area);
- insertion curve: only the top 0, 1, ..., W words kept (it should rise fast: high area);
- comprehensiveness: p(sentence) - p(sentence without the top k%) and sufficiency:
  p(sentence) - p(only the top k%), each averaged over k in 1, 5, 10, 20, 50% (ERASER's AOPC,
  as ferret computes them; at least one word each).
Rationale scores rank words by magnitude (a rationale word can push either way, like "not"):
recall@k (share of the rationale words found in the top k, out of min(k, rationale size)) and
AUPRC (average precision of the word scores against the rationale mask).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from dlx.errors import DlxError
from dlx.explain.attention import Encoded, text_forward
from dlx.explain.text_methods import TEXT_METHODS, explain_text

BINS = (0.01, 0.05, 0.1, 0.2, 0.5)
RANDOM = "random"

# metric -> (column title, True when higher is better)
TEXT_METRICS: dict[str, tuple[str, bool]] = {
    "deletion_auc": ("Deletion AUC ↓", False),
    "insertion_auc": ("Insertion AUC ↑", True),
    "comprehensiveness": ("Comprehensiveness ↑", True),
    "sufficiency": ("Sufficiency ↓", False),
    "rationale_recall": ("Rationale recall@k ↑", True),
    "rationale_auprc": ("Rationale AUPRC ↑", True),
}


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


def faithfulness(model: nn.Module, encoded: Encoded, word_scores: Tensor, target: int, signed: bool) -> WordCurves:
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
        methods = list(self.metrics)
        names = [m for m in TEXT_METRICS if all(m in self.metrics[k] for k in methods)]
        means = {k: {m: float(np.nanmean(self.metrics[k][m])) for m in names} for k in methods}
        ranks: dict[str, list[int]] = {k: [] for k in methods}
        for metric in names:
            higher = TEXT_METRICS[metric][1]
            order = sorted(methods, key=lambda k: -means[k][metric] if higher else means[k][metric])
            for position, k in enumerate(order, 1):
                ranks[k].append(position)
        rows = [{"method": text_label(k), **{TEXT_METRICS[m][0]: means[k][m] for m in names},
                 "mean rank": float(np.mean(ranks[k])) if ranks[k] else 0.0} for k in methods]
        rows.sort(key=lambda row: (row["mean rank"], row["method"]))
        for position, row in enumerate(rows, 1):
            row["rank"] = position
        return rows

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
    def from_tensors(cls, tensors: dict[str, Tensor]) -> "TextScores":
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
    return "Random" if method == RANDOM else TEXT_METHODS[method].label


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
            curves = faithfulness(model, encoded, words, int(target), signed)
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
