"""dlx's training loop against a plain hand-written PyTorch loop: same model, data, batch and optimizer.

All run in this process, interleaved, several times; the figures are the median samples/s and
the best. Twice: by wall clock with every core (what a user waits), then by this process's CPU
time with one torch thread, which other processes on a shared machine cannot inflate.
The plain loop is the strongest simple baseline: shuffled index into tensors already in memory
(no DataLoader), Adam, batch 32, the registry's model. Three cases (`--case`): a tiny MLP on
breast_cancer, where a step is so cheap that any cost per epoch or per run shows; the CNN on
digits; ResNet-18 on digits (small images), where a step is heavy.
The paired figure is the median of each repeat's time ratio, with its spread (min..max over pairs).
Given two or more `--epochs`, dlx's extra time over "plain + evaluation" (the median of the
paired differences at each epoch count) is split into a fixed cost per run and a cost per epoch
by a least-squares line through those medians.

Two baselines, because dlx does more than step: the "plain loop" only steps; the "plain loop
+ evaluation" also reports what dlx reports, computed the way a careful hand-written loop
does: the epoch's running train loss and accuracy (summed on the device over its batches),
the validation split evaluated after each epoch and the test split at the end. The second
ratio isolates what tracking, logging, checkpoints and the run bookkeeping cost; the first
also counts the validation dlx does. Opening and closing the run around `train()` (its row
created, its last points and status written) is timed apart, on a row of its own.

Run: python bench/bench_train.py [--case mlp-breast_cancer cnn-digits resnet18-digits]
        [--epochs N N ...] [--repeats 9] [--clock wall cpu]   (default epochs per case: DEFAULT_EPOCHS)
"""
from __future__ import annotations

import argparse
import contextlib
import io
import math
import time
from dataclasses import dataclass

from common import machine, median, report, setup

setup()

import torch  # noqa: E402
from torch import nn  # noqa: E402

from dlx.config import parse_config  # noqa: E402
from dlx.data import load_dataset  # noqa: E402
from dlx.models import build_model  # noqa: E402
from dlx.tracking import start_run  # noqa: E402
from dlx.training.devices import resolve_device  # noqa: E402
from dlx.training.train import train  # noqa: E402

BATCH, EVAL_BATCH, LR, SEED = 32, 256, 3e-3, 0
CASES = {"cnn-digits": ("digits", "cnn"), "mlp-breast_cancer": ("breast_cancer", "mlp"),
         "resnet18-digits": ("digits", "resnet18")}
# Epoch counts per case when --epochs is not given: a run as users train it (an MLP epoch on
# breast_cancer is 8 ms, so 3 epochs would time mostly the run's fixed cost), and ten times that,
# so the fit below can split the extra time into a cost per run and a cost per epoch.
DEFAULT_EPOCHS = {"cnn-digits": [3, 10], "mlp-breast_cancer": [30, 300], "resnet18-digits": [1, 2]}
DATASET, MODEL = CASES["cnn-digits"]  # the case measured now (main sets it)


@dataclass
class Timing:
    wall: float
    cpu: float  # this process's CPU time, every thread (dlx's flush thread included)

    @classmethod
    def now(cls) -> Timing:
        return cls(time.perf_counter(), time.process_time())

    def __sub__(self, other: Timing) -> Timing:
        return Timing(self.wall - other.wall, self.cpu - other.cpu)


def plain_loop(epochs: int, evaluate: bool) -> Timing:
    """What a user would write by hand; returns its wall and CPU seconds, setup included, as
    dlx's `train()` builds its model and optimizer inside the timed call too."""
    device = resolve_device("auto")
    bundle = load_dataset(DATASET, SEED)  # cached in the process, as dlx's loader is
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = Timing.now()
    torch.manual_seed(SEED)
    model = build_model(MODEL, bundle.meta).to(device)
    x, y = bundle.train.x.to(device), bundle.train.y.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator).to(device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        for i in range(0, len(order), BATCH):
            index = order[i:i + BATCH]
            logits = model(x[index])
            loss = loss_fn(logits, y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if evaluate:  # the epoch's running train loss and accuracy, as dlx reports them
                loss_sum += loss.detach() * len(index)
                correct += (logits.argmax(1) == y[index]).sum()
        if evaluate:
            print(f"train loss {loss_sum.item() / len(x):.4f} acc {correct.item() / len(x):.4f}")
            loss_and_accuracy(model, bundle.val.x.to(device), bundle.val.y.to(device))
    if evaluate:
        loss_and_accuracy(model, bundle.test.x.to(device), bundle.test.y.to(device))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return Timing.now() - start


@torch.no_grad()
def loss_and_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    loss = correct = 0.0
    for i in range(0, len(x), EVAL_BATCH):
        logits = model(x[i:i + EVAL_BATCH])
        loss += nn.functional.cross_entropy(logits, y[i:i + EVAL_BATCH], reduction="sum").item()
        correct += (logits.argmax(1) == y[i:i + EVAL_BATCH]).sum().item()
    return loss / len(x), correct / len(x)


RUN_OPEN_CLOSE: list[Timing] = []  # per dlx loop: creating the run row, then finishing it (reported apart)


def dlx_loop(epochs: int) -> Timing:
    """dlx's `train()` end to end (tracking, checkpoints, evaluation); its wall and CPU seconds.

    What a worker does around it, creating the run's row and finishing the run (its last points
    written, its status set), is timed apart into `RUN_OPEN_CLOSE`: a plain loop has no run to open.
    """
    config = parse_config({"dataset": DATASET, "model": MODEL, "epochs": epochs, "batch_size": BATCH,
                           "lr": LR, "optimizer": "adam", "schedule": "constant", "seed": SEED})
    opening = Timing.now()
    with start_run(experiment="bench", config=config.model_dump(), handle_signals=False) as run:
        start = Timing.now()
        train(config, run)
        elapsed = Timing.now() - start
    RUN_OPEN_CLOSE.append(Timing.now() - opening - elapsed)
    return elapsed


def measure(epochs: int, repeats: int) -> dict[str, list[Timing]]:
    """Each loop `repeats` times, interleaved (alternating order) so drift hits all alike."""
    results: dict[str, list[Timing]] = {"plain": [], "plain+eval": [], "dlx": []}
    for repeat in range(repeats):
        order = list(results) if repeat % 2 == 0 else list(reversed(results))
        for name in order:
            with contextlib.redirect_stdout(io.StringIO()):
                timing = dlx_loop(epochs) if name == "dlx" else plain_loop(epochs, name == "plain+eval")
            results[name].append(timing)
    return results


def overhead(ours: float, baseline: float) -> str:
    """The extra time dlx takes for the same samples, from two rates."""
    return f"{100 * (baseline / ours - 1):+.1f}%"


def paired(results: dict[str, list[Timing]], ours: str, baseline: str, clock: str) -> str:
    """Median over repeats of the time ratio of two loops run back to back in the same repeat.

    A slow spell of a shared machine hits both halves of a pair alike, so this is steadier than
    the ratio of two medians taken over different moments.
    """
    ratios = [getattr(a, clock) / getattr(b, clock) - 1 for a, b in zip(results[ours], results[baseline])]
    return (f"{100 * median(ratios):+.1f}% time (pairs {100 * min(ratios):+.1f}% .. "
            f"{100 * max(ratios):+.1f}%)")


def table(results: dict[str, list[Timing]], samples: int, clock: str) -> list[tuple[str, str]]:
    """Rows for one clock: median and best samples/s per loop, then dlx's extra time over both baselines."""
    rates = {name: [samples / getattr(t, clock) for t in timings] for name, timings in results.items()}
    mid = {name: median(values) for name, values in rates.items()}
    top = {name: max(values) for name, values in rates.items()}
    labels = {"plain": "plain loop (steps only)", "plain+eval": "plain loop + evaluation", "dlx": "dlx train()"}
    rows = [(label, f"{mid[name]:,.0f}; {top[name]:,.0f}  (runs: {', '.join(f'{v:,.0f}' for v in rates[name])})")
            for name, label in labels.items()]
    ms = [1000 * getattr(t, clock) for t in RUN_OPEN_CLOSE[-len(results["dlx"]):]]
    rows += [("dlx run open + close (not above)", f"{median(ms):.1f} ms per run ({min(ms):.1f} .. {max(ms):.1f}): "
              f"start_run() and finish() around train(), {100 * median(ms) / 1000 * mid['dlx'] / samples:.1f}% "
              "of the run's train()")]
    rows += [("dlx vs plain loop + evaluation", f"{paired(results, 'dlx', 'plain+eval', clock)} paired; "
              f"{overhead(mid['dlx'], mid['plain+eval'])} medians; {overhead(top['dlx'], top['plain+eval'])} "
              "bests  <- dlx's own cost; target under 3%"),
             ("dlx vs plain loop (steps only)", f"{paired(results, 'dlx', 'plain', clock)} paired; "
              f"{overhead(mid['dlx'], mid['plain'])} medians  (also counts dlx's per-epoch evaluation)")]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", nargs="+", choices=list(CASES), default=["mlp-breast_cancer", "cnn-digits"])
    parser.add_argument("--epochs", type=int, nargs="+", help="epoch counts (default: per case, DEFAULT_EPOCHS)")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--clock", nargs="+", choices=["wall", "cpu"], default=["wall", "cpu"])
    args = parser.parse_args()

    print(f"machine: {machine()}")
    for case in args.case:
        measure_case(case, args)


def measure_case(case: str, args: argparse.Namespace) -> None:
    global DATASET, MODEL
    DATASET, MODEL = CASES[case]
    size = len(load_dataset(DATASET, SEED).train)
    threads = torch.get_num_threads()
    # Wall clock with every core, then CPU time on one thread: the second cannot be skewed by
    # other processes taking the CPU (time slicing only delays it), so on a shared machine it is
    # the figure to trust; the first is what a user waits.
    for clock, count in [(c, n) for c, n in (("wall", threads), ("cpu", 1)) if c in args.clock]:
        torch.set_num_threads(count)
        with contextlib.redirect_stdout(io.StringIO()):  # warm up: allocator, kernels, caches, schema
            plain_loop(1, False), plain_loop(1, True), dlx_loop(1)
        extra: dict[int, float] = {}  # epochs -> median paired extra seconds of dlx over plain+eval
        epoch_time: dict[int, float] = {}  # epochs -> median seconds per epoch of plain+eval
        what = "wall-clock" if clock == "wall" else "CPU-time"
        for epochs in args.epochs or DEFAULT_EPOCHS[case]:
            results = measure(epochs, args.repeats)
            steps = epochs * math.ceil(size / BATCH)
            report(f"{what} training samples/s, {count} torch thread(s), {MODEL} on {DATASET}, batch {BATCH}, "
                   f"Adam {LR}, {epochs} epochs ({steps} steps); median; best of {args.repeats} "
                   "interleaved repeats", table(results, epochs * size, clock))
            extra[epochs] = median([getattr(a, clock) - getattr(b, clock)
                                    for a, b in zip(results["dlx"], results["plain+eval"])])
            epoch_time[epochs] = median([getattr(t, clock) for t in results["plain+eval"]]) / epochs
        if len(extra) > 1:
            fixed, per_epoch = split_cost(extra)
            print(f"  dlx's extra {what} over plain + evaluation: {1000 * fixed:+.1f} ms fixed per run, "
                  f"{1000 * per_epoch:+.3f} ms per epoch ({100 * per_epoch / median(list(epoch_time.values())):+.1f}% "
                  f"of a plain + evaluation epoch); medians of paired differences "
                  + ", ".join(f"{e} epochs {1000 * d:+.1f} ms" for e, d in extra.items()))
    torch.set_num_threads(threads)


def split_cost(extra: dict[int, float]) -> tuple[float, float]:
    """(fixed seconds per run, seconds per epoch): the least-squares line through (epochs, extra)."""
    xs, ys = list(extra), list(extra.values())
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - slope * mx, slope


if __name__ == "__main__":
    main()
