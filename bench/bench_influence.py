"""Self-influence (TracIn) over a run's whole training set with its kept checkpoints: the influence job against
Captum's TracInCPFast called by hand on the same files, for digits (CNN, 5 epochs, checkpoint_every=1,
label_noise=0.1; target under 60 s on a CPU) and the sentiment set (the small transformer, its classifier head).

The job also loads the run's model and data, rebuilds the learning rates from the schedule and stores the
scores; touching the kept files between repeats makes each repeat a new checkpoint set (uncached).

Run: python bench/bench_influence.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import time

from common import machine, median, report, setup

setup()

import torch
from captum.influence import TracInCPFast
from safetensors.torch import load_file
from torch.utils.data import TensorDataset

from dlx.config import parse_config
from dlx.data import load_dataset
from dlx.data.text_tokens import crop
from dlx.explain.influence import InfluenceTask, influence, noise_recall, stored_self_influence
from dlx.models import build_model
from dlx.store import default_store
from dlx.tracking import start_run
from dlx.training.kept import kept_checkpoints
from dlx.training.label_noise import recorded_label_noise, with_recorded_labels
from dlx.training.train import tokenize_bundle, train
from dlx.views.launch import defaults_for

TARGET_S = 60.0


def by_hand(store, run_id: int, config, rates: list[float]) -> float:
    """What a person writes: the model, the (noisy) training set, each kept file with its lr, TracInCPFast."""
    start = time.perf_counter()
    bundle = load_dataset(config.dataset, config.seed, config.val_fraction, config.test_fraction)
    model = build_model(config.model, bundle.meta, **config.model_options).eval()
    bundle = tokenize_bundle(with_recorded_labels(bundle, recorded_label_noise(store, run_id)), model)
    train_split = bundle.train
    inputs = ((train_split.x,) if train_split.attention_mask is None
              else crop(train_split.x, train_split.attention_mask))
    paths = {str(k.path): rate for k, rate in zip(kept_checkpoints(store, run_id), rates)}

    def load(m, path):
        m.load_state_dict(load_file(path))
        return paths[path]

    layer = model.head if bundle.meta.kind == "text" else model.classifier[-1]
    tracin = TracInCPFast(model, layer, TensorDataset(*inputs, train_split.y), list(paths), load,
                          loss_fn=torch.nn.CrossEntropyLoss(reduction="sum"), batch_size=512)
    tracin.self_influence(outer_loop_by_checkpoints=True)
    return time.perf_counter() - start


def measure(store, values: dict, repeats: int) -> tuple[list[float], list[float], int, int, dict | None]:
    config = parse_config({**values, "device": "cpu", "checkpoint_every": 1, "keep_checkpoints": 0,
                           "label_noise": 0.1})
    with start_run(config=config.model_dump(), handle_signals=False) as run:
        train(config, run)
    kept = kept_checkpoints(store, run.id)
    job, hand = [], []
    for repeat in range(repeats):
        for k in kept:  # a new checkpoint set: the job computes again
            os.utime(k.path, ns=(k.path.stat().st_atime_ns, k.path.stat().st_mtime_ns + 1000 * (repeat + 1)))
        start = time.perf_counter()
        influence(store, InfluenceTask(run_id=run.id))
        job.append(time.perf_counter() - start)
        found = stored_self_influence(store, run.id)
        hand.append(by_hand(store, run.id, config, found.rates))
    noise = recorded_label_noise(store, run.id)
    scored = noise_recall(found.ranking, noise.indices) if noise else None
    return job, hand, len(kept), len(found.scores), scored


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    store = default_store()
    rows = []
    for dataset, model, epochs in (("digits", "cnn", 5), ("sentiment", "transformer", None)):
        values = {**defaults_for(dataset, model), **({"epochs": epochs} if epochs else {})}
        job, hand, checkpoints, n, scored = measure(store, values, args.repeats)
        verdict = (f"; target < {TARGET_S:.0f} s: {'met' if median(job) < TARGET_S else 'NOT met'}"
                   if dataset == "digits" else "")
        recall = (f"; planted noise recall in top 20% {scored['recall'][0.2]:.2f}, AUPRC {scored['auprc']:.2f}"
                  if scored else "")
        rows += [(f"{dataset}/{model}: job, {n} examples x {checkpoints} checkpoints",
                  f"{median(job):.2f} s{verdict}{recall}"),
                 (f"{dataset}/{model}: Captum TracInCPFast by hand", f"{median(hand):.2f} s "
                  f"(job / by hand: {median(job) / median(hand):.2f}x)")]
    report(f"Self-influence over the training set, median of {args.repeats} ({machine()})", rows)


if __name__ == "__main__":
    main()
