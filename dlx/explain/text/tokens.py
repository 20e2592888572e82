"""A sentence as a text model sees it: word pieces, the words they came from, and the model's forward pass.

Word pieces are merged into words with the tokenizer's character offsets: a word is a
whitespace-separated run of the text, so "can't" or "good!" stay one word whatever the tokenizer
does with them, and generated rationales (word indices of `text.split()`) line up with it. A text
model is dlx's TextClassifier (dlx.models.text_base: a transformers encoder as `.encoder`, eager
attention) or any transformers classifier; see `text_forward`.
"""
from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import torch
from torch import Tensor, nn

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


def embedding_layer(model: nn.Module) -> nn.Module:
    """The token embedding layer (what Layer IG and Saliency attribute to)."""
    if hasattr(model, "get_input_embeddings"):  # a transformers model
        return cast(Any, model).get_input_embeddings()
    layer = getattr(model, "embeddings", None)
    if isinstance(layer, nn.Module):
        return layer
    raise DlxError("model: it exposes no token embedding layer (get_input_embeddings() or .embeddings)",
                   field="model")


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
