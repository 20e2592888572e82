"""The one interface every text model has, so training and explanations never ask which one it is.

A `TextClassifier` wraps a BERT-style encoder (eager attention, so attention weights exist) and a
linear head over a pooled sentence vector. What explainers code against:

- `model(input_ids, attention_mask) -> logits` (batch, classes). Both are int64 (batch, seq) tensors,
  right-padded; `attention_mask` is 1 on real tokens and 0 on padding.
- `model.embeddings`: the encoder's embedding module (word + position + token type, then LayerNorm),
  whose output is the input of the first attention layer: the layer for Layer Integrated Gradients.
  `model.word_embeddings` is its word-piece table alone, for methods that want only that.
- `model.attentions(input_ids, attention_mask) -> tuple` of one (batch, heads, seq, seq) tensor per
  layer, each row a softmax over keys (sums to 1; padded keys get 0): transformers'
  `output_attentions`, unchanged.
- `model.tokenizer`: the (fast) Hugging Face tokenizer the model was built with, and
  `model.max_length` its truncation length; `model.encode(words)` tokenises sentences given as lists
  of words, so `word_ids` map each token back to its word (None for [CLS], [SEP] and padding).
- `model.pooling`: "mean" (masked mean of the last hidden states: every token's row feeds the
  head) or "cls" (the [CLS] row alone), which attention rollout and relevance need to know.
"""
from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

Pooling = Literal["mean", "cls"]


class TextClassifier(nn.Module):
    """An encoder (transformers BertModel, eager attention) plus a classification head."""

    encoder: Any  # a transformers model: its config and embeddings are attributes torch's typing cannot see

    def __init__(self, encoder: nn.Module, tokenizer, classes: int, max_length: int,
                 pooling: Pooling = "mean", dropout: float = 0.1):
        super().__init__()
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.config.hidden_size, classes)

    @property
    def embeddings(self) -> nn.Module:
        return self.encoder.embeddings

    @property
    def word_embeddings(self) -> nn.Embedding:
        return self.encoder.embeddings.word_embeddings

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head(self.dropout(self.pool(hidden, attention_mask)))

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """One vector per sentence from the last hidden states (batch, seq, hidden)."""
        if self.pooling == "cls":
            return hidden[:, 0]
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)

    def attentions(self, input_ids: torch.Tensor,
                   attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """Per layer, the (batch, heads, seq, seq) attention probabilities (rows: queries)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True)
        return tuple(out.attentions)

    def encode(self, sentences: list[list[str]]):
        """Tokenise sentences given as word lists (a BatchEncoding: input_ids, attention_mask as
        int64 tensors, right-padded to the longest; `.word_ids(i)` maps tokens to words)."""
        return self.tokenizer(sentences, is_split_into_words=True, truncation=True,
                              max_length=self.max_length, padding=True, return_tensors="pt")
