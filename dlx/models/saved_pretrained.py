"""Runs whose model is a Hugging Face `save_pretrained` folder (the Trainer integration's checkpoint):
loaded with transformers from safetensors only, wrapped in the text-model interface of
dlx.models.text_base so the Explain page treats it as one of dlx's own text runs.

The folder holds `config.json`, `model.safetensors`, the tokenizer's files, and `dlx_samples.json`:
the sentences (and labels and class names) the Explain page offers as the run's test split.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dlx.errors import DlxError

FORMAT = "transformers"  # the checkpoint artifact's meta["format"] for such a folder
WEIGHTS = "model.safetensors"
SAMPLES = "dlx_samples.json"


class SavedClassifier(nn.Module):
    """A transformers `*ForSequenceClassification` with dlx's text-model interface: `forward` returns
    logits; `embeddings`, `attentions`, `tokenizer`, `max_length`, `encode`, `pooling` as TextClassifier's."""

    def __init__(self, model: nn.Module, tokenizer: Any, max_length: int):
        super().__init__()
        self.encoder: Any = model  # hooked by text_forward for its attentions, as TextClassifier's encoder
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.pooling = "cls"  # BERT-style classifiers read the [CLS] row (through the pooler)

    @property
    def embeddings(self) -> nn.Module:
        return self.encoder.base_model.embeddings

    @property
    def word_embeddings(self) -> nn.Module:
        return self.encoder.get_input_embeddings()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).logits

    def attentions(self, input_ids: torch.Tensor,
                   attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        return tuple(self.encoder(input_ids=input_ids, attention_mask=attention_mask, output_attentions=True).attentions)

    def encode(self, sentences: list[list[str]]):
        return self.tokenizer(sentences, is_split_into_words=True, truncation=True,
                              max_length=self.max_length, padding=True, return_tensors="pt")


def write_samples(folder: Path, texts: list[str], labels: list[int], classes: list[str]) -> None:
    """The sentences the Explain page offers for this model (words separated by single spaces)."""
    texts = [" ".join(str(t).split()) for t in texts]
    (folder / SAMPLES).write_text(json.dumps({"classes": classes, "texts": texts, "labels": [int(y) for y in labels]}))


def read_samples(folder: Path) -> tuple[list[str], list[int], list[str]]:
    """(texts, labels, classes) written by write_samples; a folder without them has none."""
    path = folder / SAMPLES
    if not path.exists():
        return [], [], []
    try:
        data = json.loads(path.read_text())
        return [str(t) for t in data["texts"]], [int(y) for y in data["labels"]], [str(c) for c in data["classes"]]
    except (ValueError, KeyError, TypeError) as err:
        raise DlxError(f"checkpoint: {path} is not a samples file dlx wrote ({err})", field="checkpoint") from None


def load_saved(folder: Path, max_length: int = 128) -> SavedClassifier:
    """The classifier in `folder`, from its safetensors weights (never a pickle), eager attention, eval mode."""
    if not (folder / WEIGHTS).exists() or not (folder / "config.json").exists():
        raise DlxError(f"checkpoint: {folder} is not a save_pretrained folder with {WEIGHTS} and config.json",
                       field="checkpoint")
    from transformers import AutoModelForSequenceClassification, AutoTokenizer  # heavy: only where a run is loaded

    from dlx.models.text_pretrained import quiet_transformers

    try:
        with quiet_transformers():
            model = AutoModelForSequenceClassification.from_pretrained(
                str(folder), local_files_only=True, use_safetensors=True, attn_implementation="eager")
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as err:
        raise DlxError(f"checkpoint: the model in {folder} cannot be loaded ({str(err).splitlines()[0]})",
                       field="checkpoint") from None
    limit = getattr(model.config, "max_position_embeddings", max_length)
    return SavedClassifier(model, tokenizer, min(max_length, limit)).eval()
