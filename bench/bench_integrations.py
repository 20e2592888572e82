"""The Trainer callback's overhead (issue 32): the same tiny BERT Trainer (2 layers, hidden 32, logging every
step: the callback's worst case) trained with and without DlxCallback, interleaved (the order alternating each
round); target < 2% on the steps. Wall time, the process's CPU time (all threads: the run's background
writer included; steadier than wall time on a loaded machine) and the time inside the callback's own hooks
are reported. The model's save at the end (save_pretrained + sentences) is timed apart: once per run."""
from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

from common import machine, median, report, setup

setup()

from transformers import TrainerCallback  # noqa: E402

from dlx.integrations.transformers import DlxCallback  # noqa: E402
from tests.helpers.tiny_bert import make_trainer  # noqa: E402


def train_seconds(callbacks: list, steps: int) -> tuple[float, float]:
    """Wall and CPU seconds of `trainer.train()`."""
    trainer = make_trainer(tempfile.mkdtemp(prefix="dlx-bench-hf-"), callbacks, max_steps=steps, eval_strategy="no")
    wall, cpu = time.perf_counter(), time.process_time()
    trainer.train()
    return time.perf_counter() - wall, time.process_time() - cpu


RUN_EVENTS = ("on_init_end", "on_train_begin", "on_train_end")  # the run's start and end: once per run


def timed_callback() -> tuple[DlxCallback, dict[str, float]]:
    """A DlxCallback whose event handlers add their wall time to the returned dict: "run" for the run's start
    and end, "steps" for the rest (every step's and log's)."""
    callback, spent = DlxCallback(save_model=False), {"run": 0.0, "steps": 0.0}
    for event in (name for name in dir(TrainerCallback) if name.startswith("on_")):
        setattr(callback, event, _timed(getattr(callback, event), spent, "run" if event in RUN_EVENTS else "steps"))
    return callback, spent


def _timed(handler: Any, spent: dict[str, float], key: str) -> Any:
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return handler(*args, **kwargs)
        finally:
            spent[key] += time.perf_counter() - start
    return timed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    train_seconds([DlxCallback(save_model=False)], 5)  # warm: imports, kernels, the tokenizer, the store's schema
    plain: list[tuple[float, float]] = []
    logged: list[tuple[float, float]] = []
    hooks, runs, saves = [], [], []
    for round_ in range(args.rounds):
        callback, spent = timed_callback()
        for with_callback in (False, True) if round_ % 2 == 0 else (True, False):
            if with_callback:
                logged.append(train_seconds([callback], args.steps))
            else:
                plain.append(train_seconds([], args.steps))
        hooks.append(spent["steps"])
        runs.append(spent["run"])
        start = time.perf_counter()
        train_seconds([DlxCallback()], 1)
        saves.append(time.perf_counter() - start - median([w for w, _ in plain]) / args.steps)
    wall = median([w for w, _ in logged]) / median([w for w, _ in plain]) - 1
    cpu = median([c for _, c in logged]) / median([c for _, c in plain]) - 1
    in_hooks = median([h / w for h, (w, _) in zip(hooks, plain)])
    print(machine())
    report(f"Tiny BERT Trainer, {args.steps} steps, loss logged every step, median of {args.rounds} interleaved", [
        ("without the callback", f"{median([w for w, _ in plain]) * 1e3 / args.steps:.2f} ms/step wall, "
                                 f"{median([c for _, c in plain]) * 1e3 / args.steps:.2f} ms/step CPU"),
        ("with DlxCallback", f"{median([w for w, _ in logged]) * 1e3 / args.steps:.2f} ms/step wall, "
                             f"{median([c for _, c in logged]) * 1e3 / args.steps:.2f} ms/step CPU"),
        ("inside the callback's step hooks", f"{median(hooks) * 1e3 / args.steps:.3f} ms/step "
                                             f"({in_hooks:.2%} of a plain step)"),
        ("the run's start and end (no model saved)", f"{median(runs) * 1e3:.0f} ms (once per run)"),
        ("one run's start + end with the model saved", f"{median(saves):.2f} s (once per run)"),
        ("overhead on train(), wall", f"{wall:+.2%} (noisy on a loaded machine)"),
        ("overhead on train(), CPU", f"{cpu:+.2%}  target < 2%: {'met' if cpu < 0.02 else 'not met'}"),
    ])


if __name__ == "__main__":
    main()
