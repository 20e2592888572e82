"""Searches on digits/mlp over the learning rate and batch size: TPE against random and against a grid of the
same size, and the time the median pruner saves.

Each search runs through dlx's own driver (`dlx.search.driver.step`: the study in the store's SQLite file,
trials queued as runs), its trials trained here in turn through the train job's own pieces (`train` with the
trial's pruning hook) instead of a worker's processes, so the figures are the samplers' and the pruner's, not
process start-up. Same seeds everywhere: the sampler's (0) and every trial's training seed (0).
- best val_acc after 8 and 16 trials: TPE and random over lr=log:1e-4:3e-1 and batch_size=choice:16,32,64,128;
  the grid over 4 lr values x 2 (8 trials) or 4 (16 trials) batch sizes;
- pruning: TPE's 16 trials of `--prune-epochs` epochs, without a pruner and with the median pruner: the
  epochs trained and the training time, wall and CPU (the two searches interleaved a trial at a time, so a
  loaded machine's changing load falls on both; a pruned trial's best epoch counts as its value).

Run: python bench/bench_search.py [--epochs 2] [--prune-epochs 8] [--part all|samplers|pruning]
"""
from __future__ import annotations

import argparse
import time

from common import machine, report, setup

setup()

from dlx.config import RunConfig  # noqa: E402
from dlx.errors import Pruned  # noqa: E402
from dlx.search import driver  # noqa: E402
from dlx.search import study as studies  # noqa: E402
from dlx.search.pruning import epoch_hook  # noqa: E402
from dlx.search.spec import parse_spec  # noqa: E402
from dlx.store import default_store  # noqa: E402
from dlx.tracking import start_run  # noqa: E402
from dlx.training.train import train  # noqa: E402

SPACE = {"lr": "log:1e-4:3e-1", "batch_size": "choice:16,32,64,128"}
GRID_LR = "1e-4,1e-3,1e-2,1e-1"
GRID_BATCH = {8: "32,128", 16: "16,32,64,128"}


def trials(name: str, epochs: int, trials: int, sampler: str, space: dict[str, str], pruner: str = "none"):
    """Run a whole search, training each queued trial here and yielding after each one; returns (val_acc per
    trial in order, training seconds (wall, CPU), epochs trained)."""
    store = default_store()
    spec = parse_spec({"base": {"dataset": "digits", "model": "mlp", "epochs": epochs, "device": "cpu", "seed": 0},
                       "space": space, "objectives": ["val_acc"], "directions": ["maximize"], "sampler": sampler,
                       "pruner": pruner, "trials": trials, "seed": 0})
    driver.submit(store, name, spec)
    wall = cpu = 0.0
    while not driver.step(store, name):
        for number, run in sorted(driver.trial_runs(store, name).items()):
            if run.status != "queued":
                continue
            started, started_cpu = time.perf_counter(), time.process_time()
            try:
                with start_run(run_id=run.id, store=store, handle_signals=False) as handle:
                    train(RunConfig(**run.config), handle, epoch_hook(store, name, number))
            except Pruned:
                pass
            wall += time.perf_counter() - started
            cpu += time.process_time() - started_cpu
            yield
    study, _ = studies.load(store, name)
    values = [max(t.intermediate_values.values()) if t.state.name == "PRUNED" else t.value
              for t in study.get_trials()]  # a pruned trial's best epoch: it stopped there
    trained = sum(int(run.summary.get("epochs_run", 0)) for run in driver.trial_runs(store, name).values())
    return values, (wall, cpu), trained


def search(name: str, epochs: int, count: int, sampler: str, space: dict[str, str], pruner: str = "none"):
    """`trials` run to its end."""
    steps = trials(name, epochs, count, sampler, space, pruner)
    while True:
        try:
            next(steps)
        except StopIteration as end:
            return end.value


def interleaved(*searches):
    """Run searches a trial each in turn, so a machine's changing load falls on both alike; their results."""
    results: dict[int, tuple] = {}
    while len(results) < len(searches):
        for i, steps in enumerate(searches):
            if i not in results:
                try:
                    next(steps)
                except StopIteration as end:
                    results[i] = end.value
    return [results[i] for i in range(len(searches))]


def samplers(epochs: int) -> None:
    results = {sampler: search(sampler, epochs, 16, sampler, SPACE)[0] for sampler in ("tpe", "random")}
    for size in (8, 16):
        results[f"grid{size}"] = search(f"grid{size}", epochs, size, "grid",
                                        {"lr": GRID_LR, "batch_size": GRID_BATCH[size]})[0]
    best = {key: {n: max(values[:n]) for n in (8, 16)} for key, values in results.items()}
    grid = {n: max(results[f"grid{n}"]) for n in (8, 16)}
    report(f"Samplers, digits/mlp, {epochs} epochs per trial ({machine()})",
           [(f"best val_acc after {n} trials", f"TPE {best['tpe'][n]:.4f}, random {best['random'][n]:.4f}, "
             f"grid of {n} {grid[n]:.4f}") for n in (8, 16)])
    print()
    for n in (8, 16):
        measured = best["tpe"][n] - max(best["random"][n], grid[n])
        print(f"target: TPE's best after {n} trials at least random's and the grid's - measured {measured:+.4f}, "
              f"target >= 0: {'met' if measured >= 0 else 'not met'}")


def pruning(epochs: int) -> None:
    (plain, plain_s, plain_epochs), (pruned, pruned_s, pruned_epochs) = interleaved(
        trials("tpe-plain", epochs, 16, "tpe", SPACE), trials("tpe-median", epochs, 16, "tpe", SPACE, pruner="median"))
    saved_wall, saved = 1 - pruned_s[0] / plain_s[0], 1 - pruned_s[1] / plain_s[1]
    report(f"Pruning, TPE 16 trials of digits/mlp, {epochs} epochs each, interleaved a trial at a time "
           f"({machine()})", [
        ("without a pruner", f"{plain_epochs} epochs, {plain_s[0]:.1f} s wall ({plain_s[1]:.1f} s CPU) of training, "
                             f"best val_acc {max(plain):.4f}"),
        ("median pruner", f"{pruned_epochs} epochs, {pruned_s[0]:.1f} s wall ({pruned_s[1]:.1f} s CPU) of training, "
                          f"best val_acc {max(pruned):.4f}"),
        ("saved", f"{1 - pruned_epochs / plain_epochs:.0%} of the epochs, {saved:.0%} of the CPU time, "
                  f"{saved_wall:.0%} of the wall time")])
    print()
    print(f"target: the median pruner saves training CPU time - measured {saved:.0%}, target >= 20%: "
          f"{'met' if saved >= 0.2 else 'not met'}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--prune-epochs", type=int, default=8)
    parser.add_argument("--part", choices=["all", "samplers", "pruning"], default="all")
    args = parser.parse_args()
    if args.part in ("all", "samplers"):
        samplers(args.epochs)
    if args.part in ("all", "pruning"):
        pruning(args.prune_epochs)


if __name__ == "__main__":
    main()
