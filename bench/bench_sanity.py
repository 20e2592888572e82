"""The sanity job's work (every method that applies to the digits CNN x 32 test samples, every cascading
and independent randomisation) against the same Captum calls on each randomised model in a plain loop.

Prints both in seconds on the CPU and their ratio (the job's overhead: similarities, intervals, storing).
"""
from __future__ import annotations

import copy
import time

from common import machine, median, report, setup

setup()

import torch  # noqa: E402
from captum.attr import (  # noqa: E402
    DeepLift,
    GradientShap,
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
)

from dlx.config import parse_config  # noqa: E402
from dlx.explain.jobs import SanityTask, run_sanity  # noqa: E402
from dlx.explain.methods import available_methods  # noqa: E402
from dlx.explain.models_cache import get_loaded_run  # noqa: E402
from dlx.explain.sanity import cascade, parameter_layers  # noqa: E402
from dlx.store import default_store  # noqa: E402
from dlx.tracking import start_run  # noqa: E402
from dlx.training.train import train  # noqa: E402

SAMPLES, REPEATS = 32, 3


def by_hand(model, x, target):
    """Each method as a plain Captum call, with dlx's default parameters."""
    zeros = torch.zeros_like(x)
    conv = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    return {
        "saliency": lambda: Saliency(model).attribute(x, target=target, abs=True),
        "input_x_gradient": lambda: InputXGradient(model).attribute(x, target=target),
        "integrated_gradients": lambda: IntegratedGradients(model).attribute(
            x, baselines=zeros, target=target, n_steps=50, internal_batch_size=256),
        "smoothgrad": lambda: NoiseTunnel(Saliency(model)).attribute(
            x, target=target, nt_type="smoothgrad", nt_samples=20, stdevs=0.15, abs=False),
        "gradient_shap": lambda: GradientShap(model).attribute(x, baselines=zeros, target=target, n_samples=20,
                                                               stdevs=0.1),
        "deeplift": lambda: DeepLift(model).attribute(x, baselines=zeros, target=target),
        "guided_backprop": lambda: GuidedBackprop(model).attribute(x, target=target),
        "occlusion": lambda: Occlusion(model).attribute(x, sliding_window_shapes=(1, 2, 2), strides=(1, 1, 1),
                                                        baselines=zeros, target=target, perturbations_per_eval=64),
        "grad_cam": lambda: LayerAttribution.interpolate(
            LayerGradCam(model, conv).attribute(x, target=target, relu_attributions=True), (8, 8), "bilinear"),
    }


def plain_loop(model, x, target, methods) -> float:
    """The trained model and every distinct randomised one (deep copy, reset_parameters), every method."""
    layers = parameter_layers(model)
    variants = list(dict.fromkeys(tuple(s) for s in [*cascade(layers), *[[n] for n in layers]]))
    start = time.perf_counter()
    for variant in [(), *variants]:
        net = copy.deepcopy(model)
        for i, name in enumerate(layers):
            if name in variant:
                torch.manual_seed(i)
                net.get_submodule(name).reset_parameters()
        calls = by_hand(net.eval(), x, target)
        for method in methods:
            calls[method]()
    return time.perf_counter() - start


def main() -> None:
    config = parse_config({"dataset": "digits", "model": "cnn", "epochs": 2})
    with start_run(config=config.model_dump(), handle_signals=False) as run:
        train(config, run)
    run_id = run.id
    loaded = get_loaded_run(default_store(), run_id)
    methods = available_methods(loaded.model, "image")
    task = SanityTask(run_id=run_id, methods=methods, n_samples=SAMPLES)
    x = loaded.bundle.test.x[:SAMPLES]
    target = loaded.predict(x).argmax(1)
    job, hand = [], []
    for repeat in range(REPEATS):
        start = time.perf_counter()
        run_sanity(loaded, task.model_copy(update={"seed": repeat}))  # a new key each time: computed, not read
        job.append(time.perf_counter() - start)
        hand.append(plain_loop(loaded.model, x, target, methods))
    ratio = median(job) / median(hand)
    report(f"sanity job, {len(methods)} methods x {SAMPLES} digits samples, "
           f"{len(parameter_layers(loaded.model))} layers ({machine()})",
           [("sanity job (run_sanity)", f"{median(job):.2f} s (median of {REPEATS})"),
            ("Captum by hand, plain loop", f"{median(hand):.2f} s"),
            ("ratio job / by hand", f"{ratio:.2f}x")])


if __name__ == "__main__":
    main()
