"""The Trainer callback's overhead (issue 32): the same tiny BERT Trainer (2 layers, hidden 32, logging every
step: the callback's worst case) trained with and without DlxCallback, interleaved; target < 2% on the steps.
The model's save at the end (save_pretrained + sentences) is timed apart: it happens once per run."""
from __future__ import annotations

import argparse
import tempfile
import time

from common import machine, median, report, setup

setup()

from dlx.integrations.transformers import DlxCallback  # noqa: E402
from tests.helpers.tiny_bert import make_trainer  # noqa: E402


def train_seconds(callbacks: list, steps: int) -> float:
    trainer = make_trainer(tempfile.mkdtemp(prefix="dlx-bench-hf-"), callbacks, max_steps=steps, eval_strategy="no")
    start = time.perf_counter()
    trainer.train()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    train_seconds([], 5)  # warm: imports, kernels, the tokenizer
    plain, logged, saves = [], [], []
    for _ in range(args.rounds):
        plain.append(train_seconds([], args.steps))
        logged.append(train_seconds([DlxCallback(save_model=False)], args.steps))
        start = time.perf_counter()
        train_seconds([DlxCallback()], 1)
        saves.append(time.perf_counter() - start - median(plain) / args.steps)
    overhead = median(logged) / median(plain) - 1
    print(machine())
    report(f"Tiny BERT Trainer, {args.steps} steps, loss logged every step, median of {args.rounds} interleaved", [
        ("without the callback", f"{median(plain) * 1e3 / args.steps:.2f} ms/step"),
        ("with DlxCallback", f"{median(logged) * 1e3 / args.steps:.2f} ms/step"),
        ("one run's start + end with the model saved", f"{median(saves):.2f} s (once per run)"),
        ("overhead on the steps", f"{overhead:+.2%}  target < 2%: {'met' if overhead < 0.02 else 'not met'}"),
    ])


if __name__ == "__main__":
    main()
