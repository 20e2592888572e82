"""A small BERT-style transformer classifier trained from scratch, with MiniLM's tokenizer."""
from __future__ import annotations

from torch import nn

from dlx.data.registry import DatasetMeta
from dlx.errors import DlxError
from dlx.models.text_base import Pooling, TextClassifier
from dlx.models.text_pretrained import tokenizer


def transformer(meta: DatasetMeta, layers: int = 2, heads: int = 4, hidden: int = 64, max_length: int = 64,
                pooling: Pooling = "mean", dropout: float = 0.1) -> nn.Module:
    from transformers import BertConfig, BertModel

    if layers < 1 or heads < 1:
        raise DlxError(f"model_options: layers ({layers}) and heads ({heads}) must be at least 1",
                       field="model_options")
    if hidden % heads:
        raise DlxError(f"model_options.hidden: {hidden} is not a multiple of heads ({heads})",
                       field="model_options")
    if not 2 <= max_length <= 512:
        raise DlxError(f"model_options.max_length: {max_length} is not between 2 and 512", field="model_options")
    words = tokenizer()
    config = BertConfig(vocab_size=len(words), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=4 * hidden,
                        max_position_embeddings=max_length, pad_token_id=words.pad_token_id,
                        hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
                        attn_implementation="eager")  # type: ignore[call-arg]  # a PretrainedConfig kwarg BertConfig's signature hides
    return TextClassifier(BertModel(config, add_pooling_layer=False), words, meta.num_classes,
                          max_length, pooling, dropout)
