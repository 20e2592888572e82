"""Tokenising text splits once per data set and tokenizer, and cropping batches to their longest
sentence (dynamic padding), so a batch of short sentences never pays for the longest one."""
from __future__ import annotations

import dataclasses
import hashlib

import torch

from dlx.data.registry import Split

CACHE_SIZE = 16  # tokenised splits kept per process (a train, val and test split per data set)
_cache: dict[tuple[str, int, int, str], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}


def tokenize_split(split: Split, tokenizer, max_length: int) -> Split:
    """The split with `x` as (N, L) int64 token ids, right-padded to its longest sentence (at most
    `max_length`, longer ones truncated), `attention_mask`, and `extras["word_ids"]` (N, L): the
    index of the word (space-separated) each token comes from, -1 for special tokens and padding.

    Cached in memory by tokenizer, max length and the sentences themselves, so the pages and
    explainers that reload a run's data set do not tokenise it again."""
    digest = hashlib.sha1("\n".join(split.texts).encode()).hexdigest()
    key = (str(tokenizer.name_or_path), len(tokenizer), max_length, digest)
    if key not in _cache:
        if len(_cache) >= CACHE_SIZE:
            _cache.pop(next(iter(_cache)))
        _cache[key] = encode(tokenizer, [text.split() for text in split.texts], max_length)
    ids, mask, word_ids = _cache[key]
    return dataclasses.replace(split, x=ids, attention_mask=mask, extras={**split.extras, "word_ids": word_ids})


def encode(tokenizer, sentences: list[list[str]], max_length: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token ids, attention mask and word ids (-1 where none) for sentences given as word lists."""
    if not sentences:
        empty = torch.zeros((0, 0), dtype=torch.int64)
        return empty, empty.clone(), empty.clone()
    batch = tokenizer(sentences, is_split_into_words=True, truncation=True, max_length=max_length,
                      padding=True, return_tensors="pt")
    word_ids = torch.tensor([[-1 if w is None else w for w in batch.word_ids(i)] for i in range(len(sentences))],
                            dtype=torch.int64)
    return batch["input_ids"].to(torch.int64), batch["attention_mask"].to(torch.int64), word_ids


def crop(ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the padding columns no sentence of this batch needs (padding is on the right)."""
    longest = int(mask.sum(1).max()) if len(mask) else 0
    return ids[:, :longest], mask[:, :longest]
