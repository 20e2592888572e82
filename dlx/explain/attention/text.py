"""Attention of text models: every layer x head for one sentence, with its gradients, merged into words,
and its agreement with the attributions.

The attention maps come from the same forward pass as the logits, in the autograd graph, so the
relevance rule can take their gradients. That graph is rooted at the token embeddings' output,
which is asked for its gradient during the pass: parameters may be frozen (MiniLM's lower layers
are) and the model is never changed.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata
from torch import Tensor, nn

from dlx.errors import DlxError
from dlx.explain.attention.rollout import rollout
from dlx.explain.text.tokens import Encoded, embedding_layer, text_forward


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def attention_maps(model: nn.Module, encoded: Encoded) -> Tensor:
    """(layers, heads, T, T): every head's attention for one sentence; row q is what token q looks at."""
    device = _device(model)
    with torch.no_grad():
        _, maps = text_forward(model, encoded.input_ids.to(device), encoded.attention_mask.to(device),
                               attentions=True)
    return torch.stack([m[0] for m in maps]).float().cpu()


@contextlib.contextmanager
def graph_from_embeddings(model: nn.Module) -> Iterator[None]:
    """For one forward pass, the embeddings' output requires grad, so everything after it (attention
    maps, logits) is in the autograd graph even where the parameters are frozen; the model's own
    requires_grad flags are left as they are (it may be cached and shared)."""
    def track(module: nn.Module, args: Any, out: Any) -> Any:
        return out.detach().requires_grad_() if isinstance(out, Tensor) and not out.requires_grad else out

    handle = embedding_layer(model).register_forward_hook(track)
    try:
        yield
    finally:
        handle.remove()


def attention_and_gradients(model: nn.Module, encoded: Encoded, target: int | None = None
                            ) -> tuple[Tensor, Tensor, Tensor]:
    """Attention maps, the target logit's gradient with respect to each of them, and the logits.

    `target` None takes the predicted class. Shapes: (L, H, T, T), (L, H, T, T), (classes,).
    """
    device = _device(model)
    with torch.enable_grad(), graph_from_embeddings(model):
        logits, maps = text_forward(model, encoded.input_ids.to(device), encoded.attention_mask.to(device),
                                    attentions=True)
        target = int(logits[0].argmax()) if target is None else int(target)
        grads = torch.autograd.grad(logits[0, target], maps)
    return (torch.stack([m[0] for m in maps]).detach().float().cpu(),
            torch.stack([g[0] for g in grads]).float().cpu(), logits[0].detach().float().cpu())


def token_scores(matrix: Tensor, encoded: Encoded, pooling: str = "cls") -> Tensor:
    """(T,) what the classifier reads from each token in a (T, T) flow: the [CLS] row for a
    [CLS]-pooled model, the mean of all rows for a mean-pooled one; special tokens zeroed."""
    row = matrix[0] if pooling == "cls" else matrix.mean(dim=0)
    row = row.clone()
    row[torch.tensor(encoded.special)] = 0.0
    return row


def merge_attention(maps: Tensor, encoded: Encoded) -> tuple[Tensor, list[str]]:
    """(..., T, T) -> (..., U, U) over words and specials (`Encoded.units`).

    Keys of one word are summed (a row still sums to 1) and its queries averaged, as in Clark
    et al. (2019), "What does BERT look at?".
    """
    group, labels = encoded.units()
    n = len(labels)
    index = torch.tensor(group, dtype=torch.long)
    keys = torch.zeros(*maps.shape[:-1], n, dtype=maps.dtype).index_add_(-1, index, maps)
    rows = torch.zeros(*maps.shape[:-2], n, n, dtype=maps.dtype).index_add_(-2, index, keys)
    counts = torch.bincount(index, minlength=n).to(maps.dtype)
    return rows / counts[:, None], labels


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when either side is constant."""
    ra, rb = rankdata(a), rankdata(b)
    if np.ptp(ra) == 0 or np.ptp(rb) == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def agreement(maps: Tensor, token_attributions: Tensor, encoded: Encoded,
              source: str = "cls", absolute: bool = True) -> tuple[np.ndarray, float]:
    """Rank correlation of each head's attention to the tokens with the token attributions.

    `source` "cls" takes the attention from [CLS] (row 0, what a [CLS]-pooled classifier reads),
    "mean" the attention each token receives averaged over all queries (what a mean-pooled one
    reads; pass `pooling_of(model)`). Special tokens are left out (they
    soak up attention and carry no attribution). `absolute` compares with the attributions'
    magnitude, since a head can point at evidence for either class. Returns the (layers, heads)
    matrix and the same for the rollout.
    """
    keep = [i for i, special in enumerate(encoded.special) if not special]
    if len(keep) < 2:
        raise DlxError("text: agreement needs at least two word pieces", field="text")
    received = maps[..., 0, :] if source == "cls" else maps.mean(dim=-2)  # (L, H, T)
    attr = (token_attributions.abs() if absolute else token_attributions).numpy()[keep]
    matrix = np.array([[spearman(received[l, h, keep].numpy(), attr) for h in range(maps.shape[1])]
                       for l in range(maps.shape[0])])
    flow = rollout(maps)
    flow_received = flow[0] if source == "cls" else flow.mean(dim=0)
    return matrix, spearman(flow_received[keep].numpy(), attr)
