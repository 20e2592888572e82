"""Attention of transformer models: every layer x head, rollout, gradient-weighted relevance.

All functions work on one sentence (or one image) at a time, the way the Explain page shows
them. A text model is dlx's TextClassifier (dlx.models.text_base: a transformers encoder as
`.encoder`, eager attention) or any transformers classifier; see `text_forward`. The attention
maps come from the same forward pass as the logits, in the autograd graph, so the relevance rule
can take their gradients. That graph is rooted at the token embeddings' output, which is asked
for its gradient during the pass: parameters may be frozen (MiniLM's lower layers are) and the
model is never changed.

Word pieces are merged into words with the tokenizer's character offsets: a word is a
whitespace-separated run of the text, so "can't" or "good!" stay one word whatever the tokenizer
does with them, and generated rationales (word indices of `text.split()`) line up with it.
"""
from __future__ import annotations

import bisect
import contextlib
from dataclasses import dataclass
from typing import Any, Iterator, Literal, Sequence

import numpy as np
import torch
from scipy.stats import rankdata
from torch import Tensor, nn
from torch.nn import functional as F

from dlx.errors import DlxError

Merge = Literal["sum", "mean"]


@dataclass
class Encoded:
    """One tokenised sentence and how its pieces map onto its words."""

    text: str
    input_ids: Tensor  # (1, T)
    attention_mask: Tensor  # (1, T)
    tokens: list[str]  # the word pieces, specials included
    word_of_token: list[int | None]  # index into `words`, None for [CLS], [SEP] and other specials
    words: list[str]  # whitespace-separated words of the text that kept at least one piece
    split_index: list[int]  # for each of `words`, its index in `text.split()` (rationales use these)
    pad_id: int = 0  # the tokenizer's padding token: the baseline of attributions and what pads batches

    @property
    def special(self) -> list[bool]:
        return [w is None for w in self.word_of_token]

    def units(self) -> tuple[list[int], list[str]]:
        """Groups for attention views: each special token alone, the pieces of a word together."""
        group, labels, seen = [], [], {}
        for token, word in zip(self.tokens, self.word_of_token):
            if word is None:
                labels.append(token)
                group.append(len(labels) - 1)
            else:
                if word not in seen:
                    labels.append(self.words[word])
                    seen[word] = len(labels) - 1
                group.append(seen[word])
        return group, labels


def whitespace_words(text: str) -> list[tuple[int, int]]:
    """Character spans of the whitespace-separated words of `text`."""
    spans, start = [], None
    for i, ch in enumerate(text + " "):
        if ch.isspace():
            if start is not None:
                spans.append((start, i))
                start = None
        elif start is None:
            start = i
    return spans


def encode(tokenizer: Any, text: str, max_length: int = 128) -> Encoded:
    """Tokenise one sentence, keeping which word each piece came from (from the offsets)."""
    if not isinstance(text, str) or not text.strip():
        raise DlxError("text: the sentence is empty; type a few words", field="text")
    if not getattr(tokenizer, "is_fast", False):
        raise DlxError("tokenizer: word pieces can only be mapped onto words with a fast tokenizer "
                       "(one that returns character offsets)", field="tokenizer")
    batch = tokenizer(text, return_offsets_mapping=True, truncation=True, max_length=max_length,
                      return_tensors="pt")
    offsets = batch["offset_mapping"][0].tolist()
    special = batch.get("special_tokens_mask")
    if special is None:
        special = tokenizer.get_special_tokens_mask(batch["input_ids"][0].tolist(), already_has_special_tokens=True)
    spans = whitespace_words(text)
    ends = [e for _, e in spans]
    word_of_span: dict[int, int] = {}
    word_of_token: list[int | None] = []
    for (start, end), is_special in zip(offsets, special):
        if is_special or end <= start:
            word_of_token.append(None)
            continue
        # the first word ending after the piece starts (a piece with its leading space, as in
        # byte-level tokenizers, belongs to the word after that space)
        span = bisect.bisect_right(ends, start)
        word_of_token.append(word_of_span.setdefault(span, len(word_of_span)))
    words = [text[slice(*spans[span])] for span in word_of_span]
    ids = batch["input_ids"]
    mask = batch.get("attention_mask", torch.ones_like(ids))
    return Encoded(text, ids, mask, tokenizer.convert_ids_to_tokens(ids[0].tolist()), word_of_token, words,
                   list(word_of_span), int(tokenizer.pad_token_id or 0))


# -- running the model ---------------------------------------------------------------------------
def text_forward(model: nn.Module, input_ids: Tensor, attention_mask: Tensor,
                 attentions: bool = False) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Logits and, if asked, each layer's attention (B, heads, T, T) from the same forward pass.

    dlx's text models (dlx.models.text_base) wrap a transformers encoder as `.encoder`: for this
    call it is asked for its attentions too, so they are in the graph that gave the logits.
    A transformers classifier is asked directly.
    """
    encoder = getattr(model, "encoder", None)
    if not attentions:
        out = model(input_ids=input_ids, attention_mask=attention_mask)
        return (out.logits if hasattr(out, "logits") else out), ()
    if hasattr(model, "config") or encoder is None or not hasattr(encoder, "config"):
        out = model(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True)
        logits, maps = out.logits, tuple(out.attentions or ())
    else:
        captured: list[tuple[Tensor, ...]] = []
        handles = [encoder.register_forward_pre_hook(
                       lambda m, args, kwargs: (args, {**kwargs, "output_attentions": True}), with_kwargs=True),
                   encoder.register_forward_hook(lambda m, args, out: captured.append(tuple(out.attentions)))]
        try:
            logits = model(input_ids=input_ids, attention_mask=attention_mask)
        finally:
            for handle in handles:
                handle.remove()
        maps = captured[-1] if captured else ()
    if not maps or maps[0] is None:
        raise DlxError("model: it returned no attention maps; load it with attn_implementation='eager'",
                       field="model")
    return logits, maps


def pooling_of(model: nn.Module) -> str:
    """Which rows feed the classifier: "cls" ([CLS] alone) or "mean" (every token's, averaged)."""
    return getattr(model, "pooling", "cls")


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def attention_maps(model: nn.Module, encoded: Encoded) -> Tensor:
    """(layers, heads, T, T): every head's attention for one sentence; row q is what token q looks at."""
    device = _device(model)
    with torch.no_grad():
        _, maps = text_forward(model, encoded.input_ids.to(device), encoded.attention_mask.to(device),
                               attentions=True)
    return torch.stack([m[0] for m in maps]).float().cpu()


def embedding_layer(model: nn.Module) -> nn.Module:
    """The token embedding layer (what Layer IG and Saliency attribute to)."""
    if hasattr(model, "get_input_embeddings"):
        return model.get_input_embeddings()
    layer = getattr(model, "embeddings", None)
    if isinstance(layer, nn.Module):
        return layer
    raise DlxError("model: it exposes no token embedding layer (get_input_embeddings() or .embeddings)",
                   field="model")


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


# -- rollout and relevance (pure functions of the maps, so a hand-computed case can check them) -----
def rollout(maps: Tensor, head_fusion: Literal["mean", "max", "min"] = "mean", residual: float = 1.0) -> Tensor:
    """Attention rollout (Abnar & Zuidema 2020): (T, T) flow from each token to each input token.

    Per layer the heads are fused (mean by default), the identity is added for the residual
    connection (`residual` times I; 1.0 is the paper's 0.5 A + 0.5 I after renormalising), rows
    are renormalised to sum to 1, and the layers are multiplied, the last one on the left.
    """
    if head_fusion not in ("mean", "max", "min"):
        raise DlxError(f"head_fusion: {head_fusion!r} is not 'mean', 'max' or 'min'", field="head_fusion")
    fused = getattr(maps, {"mean": "mean", "max": "amax", "min": "amin"}[head_fusion])(dim=1)
    eye = torch.eye(maps.shape[-1], dtype=maps.dtype)
    result = eye
    for layer in fused:
        a = layer + residual * eye
        a = a / a.sum(dim=-1, keepdim=True)
        result = a @ result
    return result


def relevance(maps: Tensor, grads: Tensor) -> Tensor:
    """Gradient-weighted attention relevance (Chefer et al. 2021, generic rule for encoders): (T, T).

    R = I; for each layer from the first, R += mean over heads of max(grad * A, 0) @ R.
    """
    r = torch.eye(maps.shape[-1], dtype=maps.dtype)
    for a, g in zip(maps, grads):
        r = r + (g * a).clamp(min=0).mean(dim=0) @ r
    return r


def token_scores(matrix: Tensor, encoded: Encoded, pooling: str = "cls") -> Tensor:
    """(T,) what the classifier reads from each token in a (T, T) flow: the [CLS] row for a
    [CLS]-pooled model, the mean of all rows for a mean-pooled one; special tokens zeroed."""
    row = matrix[0] if pooling == "cls" else matrix.mean(dim=0)
    row = row.clone()
    row[torch.tensor(encoded.special)] = 0.0
    return row


# -- word pieces into words ------------------------------------------------------------------------
def merge_tokens(values: Tensor, word_of_token: Sequence[int | None], n_words: int, how: Merge = "sum") -> Tensor:
    """(..., T) per piece -> (..., W) per word, summing or averaging a word's pieces; specials dropped."""
    if how not in ("sum", "mean"):
        raise DlxError(f"merge: {how!r} is not 'sum' or 'mean'", field="merge")
    keep = [i for i, w in enumerate(word_of_token) if w is not None]
    index = torch.tensor([word_of_token[i] for i in keep], dtype=torch.long)
    out = torch.zeros(*values.shape[:-1], n_words, dtype=values.dtype)
    out.index_add_(-1, index, values[..., keep])
    if how == "mean":
        out = out / torch.bincount(index, minlength=n_words).clamp(min=1).to(values.dtype)
    return out


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


# -- agreement of attention with attributions ------------------------------------------------------
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
    attr = token_attributions.abs() if absolute else token_attributions
    attr = attr.numpy()[keep]
    matrix = np.array([[spearman(received[l, h, keep].numpy(), attr) for h in range(maps.shape[1])]
                       for l in range(maps.shape[0])])
    flow = rollout(maps)
    flow_received = flow[0] if source == "cls" else flow.mean(dim=0)
    return matrix, spearman(flow_received[keep].numpy(), attr)


# -- vision transformers ----------------------------------------------------------------------------
def vit_attention(model: nn.Module, images: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Logits and each encoder layer's per-head attention (B, heads, 1 + patches, same).

    torchvision's `VisionTransformer` asks its `nn.MultiheadAttention` for no weights; for this
    call each one is asked for per-head weights instead (same output), then given back as it was.
    """
    layers = [m for m in model.modules() if isinstance(m, nn.MultiheadAttention)]
    if not layers:
        raise DlxError("model: it has no attention layers to show", field="model")
    captured: list[Tensor] = []
    handles = []
    for layer in layers:
        handles.append(layer.register_forward_pre_hook(
            lambda m, args, kwargs: (args, {**kwargs, "need_weights": True, "average_attn_weights": False}),
            with_kwargs=True))
        handles.append(layer.register_forward_hook(lambda m, args, out: captured.append(out[1])))
    try:
        logits = model(images)
    finally:
        for handle in handles:
            handle.remove()
    return logits, tuple(captured)


def patch_grid(scores: Tensor, side: int | None = None) -> Tensor:
    """(1 + patches,) scores from [CLS]'s row -> (side, side) grid of the patches, [CLS] dropped."""
    patches = scores[1:]
    side = side or int(round(patches.numel() ** 0.5))
    if side * side != patches.numel():
        raise DlxError(f"model: {patches.numel()} patches do not make a square grid", field="model")
    return patches.reshape(side, side)


def vit_maps(model: nn.Module, image: Tensor) -> dict[str, Tensor]:
    """For one image (C, H, W): every layer's per-head [CLS] attention and the rollout of [CLS]
    (what torchvision's ViT classifies from), as patch grids, plus the logits.

    Keys: "heads" (L, H, g, g), "rollout" (g, g), "logits" (classes,). No gradient-weighted
    relevance here: nn.MultiheadAttention hands out a reshaped copy of its weights, not the
    tensor its output was computed from, so their gradient cannot be taken.
    """
    device = _device(model)
    with torch.no_grad():
        logits, maps = vit_attention(model, image[None].to(device, torch.float32))
    a = torch.stack([m[0] for m in maps]).float().cpu()
    side = int(round((a.shape[-1] - 1) ** 0.5))
    heads = a[:, :, 0, 1:].reshape(*a.shape[:2], side, side)
    return {"heads": heads, "rollout": patch_grid(rollout(a)[0], side), "logits": logits[0].float().cpu()}


def vit_cls_grids(model: nn.Module, images: Tensor, which: Literal["rollout", "last_layer"] = "rollout",
                  head_fusion: Literal["mean", "max", "min"] = "mean") -> Tensor:
    """(N, g, g): per image, what [CLS] takes from each patch: the rollout over all layers, or the
    last layer's attention with its heads fused (`head_fusion`)."""
    device = _device(model)
    with torch.no_grad():
        _, maps = vit_attention(model, images.to(device, torch.float32))
    stacked = torch.stack(maps, dim=1).float().cpu()  # (N, L, heads, T, T)
    side = int(round((stacked.shape[-1] - 1) ** 0.5))
    if which == "rollout":
        rows = [rollout(one, head_fusion)[0] for one in stacked]
    else:
        rows = [rollout(one[-1:], head_fusion, residual=0.0)[0] for one in stacked]  # no residual: the raw heads
    return torch.stack([patch_grid(row, side) for row in rows])


def vit_rollout_pixels(model: nn.Module, images: Tensor, which: Literal["rollout", "last_layer"] = "rollout",
                       head_fusion: Literal["mean", "max", "min"] = "mean") -> Tensor:
    """(N, 1, H, W): `vit_cls_grids` upsampled to the image (each patch's value over its pixels),
    so the image metrics (deletion/insertion, mask mass, pointing game) score it like a Captum map."""
    grids = vit_cls_grids(model, images, which, head_fusion)
    return F.interpolate(grids[:, None], size=tuple(images.shape[-2:]), mode="nearest")
