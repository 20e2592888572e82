"""The over-training job on a default digits run with checkpoint_every=1: its time uncached and again with every
checkpoint's maps cached, against a plain loop that loads each kept safetensors file and calls Captum.

Four test samples, Saliency, Integrated Gradients and Grad-CAM (the Explain page's defaults). The job also
predicts and scores deletion/insertion per checkpoint, which the plain loop does not.

Run: python bench/bench_over_training.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import time

from common import machine, median, report, setup

setup()

import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Saliency
from safetensors.torch import load_file

from dlx.config import parse_config
from dlx.data import load_dataset
from dlx.explain.image.layers import conv_layers, explainable_copy
from dlx.explain.over_training import OverTrainingTask, over_training
from dlx.models import build_model
from dlx.store import default_store
from dlx.tracking import start_run
from dlx.training.kept import kept_checkpoints
from dlx.training.train import train
from dlx.views.launch import defaults_for

METHODS = ["saliency", "integrated_gradients", "grad_cam"]
INDICES = [0, 1, 2, 3]


def plain_loop(store, run_id: int, config, targets: list[int]) -> None:
    """What a person writes by hand: each kept file into a fresh model, Captum's three calls."""
    bundle = load_dataset(config.dataset, config.seed, config.val_fraction, config.test_fraction)
    inputs, target = bundle.test.x[INDICES], torch.tensor(targets)
    for kept in kept_checkpoints(store, run_id):
        model = build_model(config.model, bundle.meta)
        model.load_state_dict(load_file(str(kept.path)))
        model = explainable_copy(model.eval())
        Saliency(model).attribute(inputs, target=target, abs=True)
        IntegratedGradients(model).attribute(inputs, torch.zeros_like(inputs), target=target, n_steps=50)
        cam = LayerGradCam(model, conv_layers(model)[-1][1]).attribute(inputs, target=target, relu_attributions=True)
        LayerAttribution.interpolate(cam, inputs.shape[2:], "bilinear")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    store = default_store()
    config = parse_config({**defaults_for("digits", "cnn"), "device": "cpu", "checkpoint_every": 1})
    with start_run(config=config.model_dump(), handle_signals=False) as run:
        train(config, run)
    uncached, cached, plain = [], [], []
    for repeat in range(args.repeats):
        # A new sample set each repeat (shifted indices) is uncached; the same task again reads its maps back.
        task = OverTrainingTask(run_id=run.id, methods=METHODS, indices=[i + 4 * repeat for i in INDICES])
        start = time.perf_counter()
        result = over_training(store, task)
        uncached.append(time.perf_counter() - start)
        start = time.perf_counter()
        over_training(store, task)
        cached.append(time.perf_counter() - start)
        start = time.perf_counter()
        plain_loop(store, run.id, config, result.targets)
        plain.append(time.perf_counter() - start)
    checkpoints = len(kept_checkpoints(store, run.id))
    report(f"Over-training job, digits/cnn, {checkpoints} kept checkpoints, 4 samples x 3 methods ({machine()})", [
        ("job, uncached", f"{median(uncached):.2f} s"),
        ("job, maps cached", f"{median(cached):.2f} s ({median(uncached) / median(cached):.1f}x faster)"),
        ("plain loop: load each file, call Captum", f"{median(plain):.2f} s "
         f"(job uncached / plain: {median(uncached) / median(plain):.2f}x)"),
    ])


if __name__ == "__main__":
    main()
