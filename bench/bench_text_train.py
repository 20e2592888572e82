"""MiniLM fine-tuning tokens/s: dlx's training loop against a plain transformers + PyTorch loop.

Same model (the registry's MiniLM classifier, lower 4 layers frozen as by default), same sentences (the
generated `sentiment` set), batch, optimizer (AdamW 3e-4, constant) and seed. The plain loop is
what a user writes with transformers: the tokenizer pads each shuffled batch to its longest
sentence as it goes, then forward, loss, backward, step; after the epoch it evaluates the
validation split and, at the end, the test split, as dlx reports both. dlx's `train()` is timed
end to end (tokenisation, tracking, checkpoints included). Tokens are the real (unpadded) word
pieces of the training sentences, times the epochs. Figures: wall clock and this process's CPU
time (which other processes on a shared machine cannot inflate), each loop run in turn.

Run: python bench/bench_text_train.py [--epochs 1] [--repeats 1]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import time

from common import machine, median, report, setup

setup()

import torch  # noqa: E402
from torch import nn  # noqa: E402

from dlx.config import parse_config  # noqa: E402
from dlx.data import load_dataset  # noqa: E402
from dlx.models import build_model  # noqa: E402
from dlx.tracking import start_run  # noqa: E402
from dlx.training.train import train  # noqa: E402

BATCH, EVAL_BATCH, LR, SEED, MAX_LENGTH = 32, 256, 3e-4, 0, 64
OPTIONS = {"freeze_layers": 4, "max_length": MAX_LENGTH}


def clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def plain_loop(epochs: int) -> tuple[float, float]:
    """The hand-written loop; its wall and CPU seconds, model building included (as in train())."""
    bundle = load_dataset("sentiment", SEED)
    start = clock()
    torch.manual_seed(SEED)
    model = build_model("minilm", bundle.meta, **OPTIONS)
    tokenizer = model.tokenizer
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)
    texts, labels = list(bundle.train.texts), bundle.train.y
    generator = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(texts), generator=generator)
        for i in range(0, len(order), BATCH):
            index = order[i:i + BATCH]
            batch = tokenizer([texts[j] for j in index], padding=True, truncation=True,
                              max_length=MAX_LENGTH, return_tensors="pt")
            logits = model(batch["input_ids"], batch["attention_mask"])
            loss = nn.functional.cross_entropy(logits, labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        accuracy(model, bundle.val.texts, bundle.val.y)
    accuracy(model, bundle.test.texts, bundle.test.y)
    end = clock()
    return end[0] - start[0], end[1] - start[1]


@torch.no_grad()
def accuracy(model: nn.Module, texts: tuple[str, ...], labels: torch.Tensor) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(texts), EVAL_BATCH):
        batch = model.tokenizer(list(texts[i:i + EVAL_BATCH]), padding=True, truncation=True,
                                max_length=MAX_LENGTH, return_tensors="pt")
        correct += int((model(batch["input_ids"], batch["attention_mask"]).argmax(1) == labels[i:i + EVAL_BATCH]).sum())
    model.train()
    return correct / len(texts)


def dlx_loop(epochs: int) -> tuple[float, float]:
    config = parse_config({"dataset": "sentiment", "model": "minilm", "model_options": OPTIONS,
                           "epochs": epochs, "batch_size": BATCH, "lr": LR, "optimizer": "adamw",
                           "schedule": "constant", "seed": SEED})
    with start_run(experiment="bench", config=config.model_dump(), handle_signals=False) as run:
        start = clock()
        train(config, run)
        end = clock()
    return end[0] - start[0], end[1] - start[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    print(f"machine: {machine()}")
    bundle = load_dataset("sentiment", SEED)
    tokenizer = build_model("minilm", bundle.meta, **OPTIONS).tokenizer  # warm: files, kernels
    tokens = args.epochs * sum(len(ids) for ids in tokenizer(list(bundle.train.texts))["input_ids"])
    results: dict[str, list[tuple[float, float]]] = {"plain": [], "dlx": []}
    for repeat in range(args.repeats):
        for name in (("plain", "dlx") if repeat % 2 == 0 else ("dlx", "plain")):
            with contextlib.redirect_stdout(io.StringIO()):
                results[name].append(plain_loop(args.epochs) if name == "plain" else dlx_loop(args.epochs))
    rows = []
    for index, what in ((0, "wall clock"), (1, "CPU time")):
        rate = {name: median([tokens / t[index] for t in timings]) for name, timings in results.items()}
        rows += [(f"plain transformers loop, {what}", f"{rate['plain']:,.0f} tokens/s"),
                 (f"dlx train(), {what}", f"{rate['dlx']:,.0f} tokens/s"),
                 (f"dlx / plain, {what}", f"{rate['dlx'] / rate['plain']:.3f}  (target >= 0.95)")]
    report(f"MiniLM fine-tuning on sentiment: {len(bundle.train)} sentences, {tokens:,} tokens, "
           f"{args.epochs} epoch(s), batch {BATCH}, AdamW {LR}, freeze_layers 4; median of "
           f"{args.repeats} repeat(s), {torch.get_num_threads()} torch threads", rows)


if __name__ == "__main__":
    main()
