"""The one-file report of a default digits run and a default sentiment run (explanations cached): its size
and build time, against the same figures written by plotly's own `to_html` with its JavaScript in each.

Each run trains with the Launch page's defaults, then the Explain page's default view is cached (four test
samples, three methods; two sentences, two methods). Target: under 10 MB per report.

Run: python bench/bench_report.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import time

from common import machine, median, report, setup

setup()

import plotly.io as pio

from dlx.config import parse_config
from dlx.explain.cache import explain_text_cached
from dlx.explain.image.gallery import build_gallery
from dlx.explain.models_cache import get_loaded_run
from dlx.explain.samples import sample_inputs
from dlx.explain.text.tokens import encode
from dlx.store import default_store
from dlx.tracking import start_run
from dlx.training.train import train
from dlx.views import report as one_file
from dlx.views.launch import defaults_for


def trained(dataset: str, model: str) -> int:
    store = default_store()
    config = parse_config({**defaults_for(dataset, model), "device": "cpu"})
    with start_run(config=config.model_dump(), handle_signals=False) as run:
        train(config, run)
    run_id = run.id
    loaded = get_loaded_run(store, run_id)
    if loaded.meta.kind == "text":
        for text in loaded.bundle.test.texts[:2]:
            for method in ("layer_integrated_gradients", "attention_rollout"):
                explain_text_cached(loaded, encode(loaded.model.tokenizer, text, 128), method, 1)
    else:
        build_gallery(loaded, sample_inputs(loaded.bundle.test, [0, 1, 2, 3]), ["x"] * 4,
                      ["saliency", "integrated_gradients", "grad_cam"])
    store.explanations.flush()
    return run_id


def per_figure_js(store, run_id: int) -> int:
    """The baseline: every figure as plotly's own HTML with its JavaScript inline (bytes written)."""
    figures = []
    real = one_file.Report.figure
    one_file.Report.figure = lambda self, fig: figures.append(fig)
    try:
        one_file.report_html(store, run_id)
    finally:
        one_file.Report.figure = real
    return sum(len(pio.to_html(fig, include_plotlyjs=True, full_html=True).encode()) for fig in figures)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    store = default_store()
    rows = []
    for dataset, model in (("digits", "cnn"), ("sentiment", "transformer")):
        run_id = trained(dataset, model)
        ours, theirs, size, baseline = [], [], 0, 0
        for _ in range(args.repeats):  # interleaved: the same machine state for both
            start = time.perf_counter()
            size = len(one_file.report_html(store, run_id).encode())
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            baseline = per_figure_js(store, run_id)
            theirs.append(time.perf_counter() - start)
        rows += [(f"{dataset}/{model} report", (f"{size / 1e6:.2f} MB in {median(ours):.2f} s "
                  f"({'met' if size < 10_000_000 else 'NOT met'}: under 10 MB)")),
                 (f"{dataset}/{model} to_html per figure", (f"{baseline / 1e6:.2f} MB in {median(theirs):.2f} s "
                  f"(report/baseline time {median(ours) / median(theirs):.2f}x)"))]
    report(f"One-file report ({machine()})", rows)


if __name__ == "__main__":
    main()
