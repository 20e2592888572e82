"""The Projector at 10,000 points on the CPU: embeddings (the hooked forward pass of `embed_split`), PCA and
UMAP (umap-learn, seeded; its first call in a process compiles with numba, timed apart), then the page's draw:
the table, the WebGL figure and its JSON as Streamlit sends it. The baseline is a hand-written loop: the same
model and inputs through a forward hook on the final Linear, no dlx.

Data: a default digits/cnn run (trained here); its 1,797 digits repeated with Gaussian noise to 10,000 samples.

Run: python bench/bench_projector.py [--points 10000] [--repeats 3]
"""
from __future__ import annotations

import argparse
import dataclasses
import time

from common import machine, median, report, setup

setup()

import numpy as np
import torch

from dlx.config import parse_config
from dlx.data import load_dataset
from dlx.data.registry import Split
from dlx.explain.models_cache import get_loaded_run
from dlx.explain.projector import Projected, embed_split, project
from dlx.explain.slices import slice_metrics
from dlx.store import default_store
from dlx.tracking import start_run
from dlx.training.train import train
from dlx.views.charts.projector import projector_figure
from dlx.views.launch import defaults_for
from dlx.views.projector import HOVER, projector_frame

TARGET_COMPUTE = 60.0  # seconds: embeddings + PCA + UMAP of 10,000 samples on the CPU, numba's compile excluded
TARGET_DRAW = 1.0  # seconds: the page's table, figure and JSON for 10,000 points


def repeated_split(points: int) -> Split:
    bundle = load_dataset("digits")
    x = torch.cat([bundle.train.x, bundle.val.x, bundle.test.x])
    y = torch.cat([bundle.train.y, bundle.val.y, bundle.test.y])
    rows = torch.arange(points) % len(x)
    noise = 0.05 * torch.randn((points, *x.shape[1:]), generator=torch.Generator().manual_seed(0))
    return Split(x[rows] + noise, y[rows])


@torch.no_grad()
def plain_loop(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """By hand: a forward pre-hook on the last Linear layer, batches of 256."""
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    caught: list[torch.Tensor] = []
    handle = last.register_forward_pre_hook(lambda _m, args: caught.append(args[0].flatten(1)))
    for start in range(0, len(x), 256):
        model(x[start:start + 256])
    handle.remove()
    return torch.cat(caught).numpy()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    store = default_store()
    config = parse_config({**defaults_for("digits", "cnn"), "device": "cpu"})
    with start_run(config=config.model_dump(), handle_signals=False) as run:
        train(config, run)
    loaded = get_loaded_run(store, run.id)
    data = repeated_split(args.points)
    bundle = dataclasses.replace(loaded.bundle, test=data)
    start = time.perf_counter()
    project(np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32), "umap")
    compile_s = time.perf_counter() - start
    embed_s, plain_s, pca_s, umap_s, draw_s, sizes = [], [], [], [], [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        plain_loop(loaded.model, data.x)
        plain_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        embedded = embed_split(loaded, data)
        embed_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        pca = project(embedded.vectors, "pca")
        pca_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        xy = project(embedded.vectors, "umap")
        umap_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        frame = projector_frame(Projected(embedded, {"pca": pca, "umap": xy}), bundle, "test")
        slice_metrics(frame.drop(columns=HOVER))
        figure = projector_figure(xy, frame, "correct", frame[HOVER])
        sizes.append(len(figure.to_json()))
        draw_s.append(time.perf_counter() - start)
    compute = median(embed_s) + median(pca_s) + median(umap_s)
    report(f"Projector, {args.points} digits samples (1,797 repeated with noise), digits/cnn, medians of "
           f"{args.repeats} ({machine()})", [
               ("embeddings (embed_split)", f"{median(embed_s):.2f} s (plain hooked loop {median(plain_s):.2f} s: "
                                            f"{median(embed_s) / median(plain_s):.2f}x)"),
               ("PCA", f"{median(pca_s):.2f} s"),
               ("UMAP", f"{median(umap_s):.2f} s (numba's compile, once per process: {compile_s:.1f} s)"),
               ("embeddings + PCA + UMAP", f"{compute:.2f} s"),
               ("page draw: table, slices, figure, JSON", f"{median(draw_s):.2f} s ({median(sizes) / 1e6:.1f} MB)"),
           ])
    print(f"embeddings + PCA + UMAP of {args.points}: {compute:.1f} s, target < {TARGET_COMPUTE:.0f} s: "
          f"{'met' if compute < TARGET_COMPUTE else 'NOT met'}")
    print(f"page draw of {args.points} points: {median(draw_s):.2f} s, target < {TARGET_DRAW:.0f} s: "
          f"{'met' if median(draw_s) < TARGET_DRAW else 'NOT met'}")


if __name__ == "__main__":
    main()
