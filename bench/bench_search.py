"""Searches on digits/mlp over the learning rate and batch size: TPE against random and against a grid of the
same size, and the time the median pruner saves.

Each search runs through dlx's own driver (`dlx.search.driver.step`: the study in the store's SQLite file,
trials queued as runs), its trials trained here in turn through the train job's own pieces (`train` with the
trial's pruning hook) instead of a worker's processes, so the figures are the samplers' and the pruner's, not
process start-up. Same seeds everywhere: the sampler's (0) and every trial's training seed (0).
- best val_acc after 8 and 16 trials: TPE and random over lr=log:1e-4:3e-1 and batch_size=choice:16,32,64,128;
  the grid over 4 lr values x 2 (8 trials) or 4 (16 trials) batch sizes;
- pruning: TPE's 16 trials again with the median pruner; its training time against TPE's without.

Run: python bench/bench_search.py [--epochs 3]
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


def search(name: str, epochs: int, trials: int, sampler: str, space: dict[str, str], pruner: str = "none"):
    """Run a whole search, training each queued trial here; (val_acc per trial in order, training seconds)."""
    store = default_store()
    spec = parse_spec({"base": {"dataset": "digits", "model": "mlp", "epochs": epochs, "device": "cpu", "seed": 0},
                       "space": space, "objectives": ["val_acc"], "directions": ["maximize"], "sampler": sampler,
                       "pruner": pruner, "trials": trials, "seed": 0})
    driver.submit(store, name, spec)
    seconds = 0.0
    while not driver.step(store, name):
        for number, run in sorted(driver.trial_runs(store, name).items()):
            if run.status != "queued":
                continue
            started = time.perf_counter()
            try:
                with start_run(run_id=run.id, store=store, handle_signals=False) as handle:
                    train(RunConfig(**run.config), handle, epoch_hook(store, name, number))
            except Pruned:
                pass
            seconds += time.perf_counter() - started
    study, _ = studies.load(store, name)
    values = [max(t.intermediate_values.values()) if t.state.name == "PRUNED" else t.value
              for t in study.get_trials()]  # a pruned trial's best epoch: it stopped there
    return values, seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, tuple[list[float], float]] = {}
    for sampler in ("tpe", "random"):
        results[sampler] = search(sampler, args.epochs, 16, sampler, SPACE)
    for size in (8, 16):
        results[f"grid{size}"] = search(f"grid{size}", args.epochs, size, "grid",
                                        {"lr": GRID_LR, "batch_size": GRID_BATCH[size]})
    pruned_values, pruned_seconds = search("tpe-median", args.epochs, 16, "tpe", SPACE, pruner="median")
    best = {key: {n: max(values[:n]) for n in (8, 16)} for key, (values, _) in results.items()}
    grid = {8: max(results["grid8"][0]), 16: max(results["grid16"][0])}
    rows = []
    for n in (8, 16):
        rows.append((f"best val_acc after {n} trials", f"TPE {best['tpe'][n]:.4f}, random {best['random'][n]:.4f}, "
                     f"grid of {n} {grid[n]:.4f}"))
    tpe_seconds = results["tpe"][1]
    saved = 1 - pruned_seconds / tpe_seconds
    rows.append(("TPE 16 trials, training time", f"{tpe_seconds:.1f} s without pruning, {pruned_seconds:.1f} s with "
                 f"the median pruner ({saved:.0%} saved); best val_acc {max(results['tpe'][0]):.4f} vs "
                 f"{max(pruned_values):.4f}"))
    report(f"Searches, digits/mlp, {args.epochs} epochs per trial ({machine()})", rows)
    print()
    for n in (8, 16):
        measured = best["tpe"][n] - max(best["random"][n], grid[n])
        print(f"target: TPE's best after {n} trials at least random's and the grid's - measured {measured:+.4f}, "
              f"target >= 0: {'met' if measured >= 0 else 'not met'}")
    print(f"target: the median pruner saves training time - measured {saved:.0%}, target >= 20%: "
          f"{'met' if saved >= 0.2 else 'not met'}")


if __name__ == "__main__":
    main()
