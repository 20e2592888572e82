"""Time per explanation, per method, on the digits CNN and on ResNet-18; and what a cache hit costs.

Each method explains one sample (batch 1) after a warm-up call; the figure is the best of the
repeats (on a shared machine noise only ever slows a call down, so the best is the cleaner
view). The baseline, run in the same process on the same model and sample, is one plain
gradient of a class score with respect to the input: each method is also given as a multiple.

The cache hit is the page's second look: the same samples and methods asked for again through
`explain_cached`, read back from the database (safetensors bytes) without running Captum; the
first look is timed with the cache emptied before each repeat. ResNet-18 (torchvision,
small-image stem, random weights: timings do not depend on training) runs on 3×32×32 inputs.

The known-answer section trains the small CNN on the patterns data set and scores IG, DeepLift,
Occlusion, Grad-CAM and Saliency against a random map on localisation and deletion/insertion.

Run: python bench/bench_explain.py [--repeats 20] [--resnet-repeats 3] [--samples 200]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import time

from common import machine, report, setup

setup()

import torch  # noqa: E402
from sqlalchemy import delete  # noqa: E402

from db.engine import session  # noqa: E402
from db.models import Explanation  # noqa: E402
from dlx.config import parse_config  # noqa: E402
from dlx.data import DatasetMeta  # noqa: E402
from dlx.devices import resolve_device  # noqa: E402
from dlx.explain import METHODS, available_methods, explain  # noqa: E402
from dlx.explain.baselines import make_baseline  # noqa: E402
from dlx.explain.cache import explain_cached  # noqa: E402
from dlx.explain.faithfulness import deletion_insertion  # noqa: E402
from dlx.explain.layers import explainable_copy  # noqa: E402
from dlx.explain.localisation import mask_mass, pointing_game  # noqa: E402
from dlx.explain.models_cache import get_loaded_run  # noqa: E402
from dlx.models import build_model  # noqa: E402
from dlx.tracking import start_run  # noqa: E402
from dlx.train import train  # noqa: E402

PAGE_METHODS = ["saliency", "integrated_gradients", "grad_cam"]  # the Explain page's defaults


def timed(function, repeats: int) -> float:
    """Best seconds of `repeats` calls after one warm-up call."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def gradient_seconds(model, x, repeats: int) -> float:
    """One gradient of a class score with respect to the input, as Captum takes it (no weight grads)."""
    def gradient():
        inputs = x.clone().requires_grad_()
        torch.autograd.grad(model(inputs)[0, 0], inputs)
    return timed(gradient, repeats)


def method_rows(model, x, kind: str, repeats: int, mean) -> list[tuple[str, str]]:
    base = gradient_seconds(model, x, repeats)
    rows = [("plain gradient (baseline)", f"{base * 1000:9.2f} ms")]
    baseline = make_baseline("mean", x, mean)
    for method in available_methods(model, kind):
        seconds = timed(lambda m=method: explain(m, model, x, 0, baseline), repeats)
        rows.append((METHODS[method].label, f"{seconds * 1000:9.2f} ms  ({seconds / base:7.1f}× the gradient)"))
    return rows


def trained_run(values: dict) -> int:
    config = parse_config(values)
    with contextlib.redirect_stdout(io.StringIO()):
        with start_run(config=config.model_dump(), handle_signals=False) as run:
            train(config, run)
    return run.id


def cache_rows(run_id: int, load_first: float, repeats: int) -> list[tuple[str, str]]:
    """The page's first and second look at four samples with its three default methods."""
    loaded = get_loaded_run(run_id, device=resolve_device("auto"))
    load_again = timed(lambda: get_loaded_run(run_id, device=resolve_device("auto")), repeats)
    x = loaded.bundle.test.x[:4]
    targets = loaded.predict(x).argmax(1).tolist()

    def look():
        for method in PAGE_METHODS:
            explain_cached(loaded, x, targets, method, "zeros")

    def forget_and_look():
        with session() as s, s.begin():
            s.execute(delete(Explanation).where(Explanation.run_id == run_id))
        look()

    compute = timed(forget_and_look, repeats)
    hit = timed(look, repeats)
    return [("load the run's model (first)", f"{load_first * 1000:9.2f} ms"),
            ("load the run's model (LRU hit)", f"{load_again * 1000:9.3f} ms"),
            ("first look: compute + store (cache emptied)", f"{compute * 1000:9.2f} ms"),
            ("second look: cache hit", f"{hit * 1000:9.2f} ms  ({compute / hit:7.1f}× faster than computing)")]


def known_answer_rows(samples: int) -> list[tuple[str, str]]:
    """Localisation and deletion on the patterns data set, against a random map."""
    run_id = trained_run({"dataset": "patterns", "model": "cnn", "epochs": 6, "batch_size": 64, "lr": 5e-3})
    loaded = get_loaded_run(run_id, device=resolve_device("auto"))
    test = loaded.bundle.test
    x, masks = test.x[:samples], test.extras["mask"][:samples]
    target = loaded.predict(x).argmax(1)
    accuracy = (target == test.y[:samples]).float().mean().item()
    baseline = make_baseline("zeros", x)
    maps = {"random map (reference)": torch.rand(x.shape, generator=torch.Generator().manual_seed(0))}
    for method in ("integrated_gradients", "deeplift", "occlusion", "grad_cam", "saliency"):
        maps[METHODS[method].label] = explain(method, loaded.model, x, target, baseline).values
    rows = [("test accuracy on these samples", f"{accuracy:.3f}"),
            ("method", "mass in mask ↑  pointing game ↑  deletion AUC ↓  insertion AUC ↑")]
    for name, values in maps.items():
        curves = deletion_insertion(loaded.model, x.to(loaded.device), values, target.to(loaded.device),
                                    baseline.to(loaded.device))
        rows.append((name, f"{mask_mass(values, masks).mean():13.3f}  {pointing_game(values, masks).mean():15.2f}"
                           f"  {curves.deletion_auc.mean():14.3f}  {curves.insertion_auc.mean():15.3f}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--resnet-repeats", type=int, default=3)
    parser.add_argument("--samples", type=int, default=200, help="patterns test samples scored")
    args = parser.parse_args()
    device = resolve_device("auto")
    print(machine())

    run_id = trained_run({"dataset": "digits", "model": "cnn", "epochs": 2})
    start = time.perf_counter()
    loaded = get_loaded_run(run_id, device=device)  # safetensors, registry model, explainable copy
    load_first = time.perf_counter() - start
    x = loaded.bundle.test.x[:1].to(device)
    report(f"digits CNN (1×8×8), one sample, on {device}, best of {args.repeats}",
           method_rows(loaded.model, x, "image", args.repeats, loaded.meta.mean))

    meta = DatasetMeta("cifar-like", "image", tuple("abcdefghij"), (3, 32, 32), mean=(0.5, 0.5, 0.5))
    torch.manual_seed(0)
    resnet = explainable_copy(build_model("resnet18", meta)).to(device)
    x = torch.rand(1, 3, 32, 32, device=device)
    report(f"ResNet-18 (3×32×32), one sample, on {device}, best of {args.resnet_repeats}",
           method_rows(resnet, x, "image", args.resnet_repeats, meta.mean))

    report(f"Explain page, digits CNN: 4 samples × {len(PAGE_METHODS)} methods, best of {args.repeats}",
           cache_rows(run_id, load_first, args.repeats))

    report(f"Known answer: patterns CNN (6 epochs), first {args.samples} test samples, zeros baseline",
           known_answer_rows(args.samples))


if __name__ == "__main__":
    main()
