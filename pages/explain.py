"""Explain: why does a trained run predict what it predicts? Attribution maps, faithfulness, localisation."""
from __future__ import annotations

from functools import partial
from typing import Any

import streamlit as st

from dlx.errors import DlxError
from dlx.explain import METHODS, available_methods
from dlx.explain.image.baselines import BASELINES, baselines_for
from dlx.explain.image.gallery import Gallery, build_gallery, check_comparable, resolve_targets, sample_captions
from dlx.explain.image.uploads import normalisation, read_image
from dlx.explain.jobs import ExplainTask, find_job, submit_task, task_result
from dlx.explain.models_cache import LoadedRun, get_loaded_run
from dlx.explain.samples import PICKERS, pick_samples, sample_inputs
from dlx.explain.scoring import METRICS, label, scores_cached
from dlx.store import default_store
from dlx.training.devices import resolve_device
from dlx.training.kept import kept_checkpoints
from dlx.views.charts import explain as charts
from dlx.views.report import report_html
from dlx.views.text import md
from pages import (
    enter_frame,
    explain_influence,
    explain_over_training,
    explain_projector,
    explain_sanity,
    explain_text,
    queued_result,
)
from pages import explain_whatif as whatif_tab

enter_frame()
store = default_store()

DEFAULTS = {"image": ["saliency", "integrated_gradients", "grad_cam", "attention_rollout"],
            "table": ["integrated_gradients", "feature_ablation"]}
MAX_SAMPLES = 16
GRID_COLUMNS = 5  # cells per line of the map grid across the page (input, top-k, maps), 3 side by side


def run_choice(run, with_checkpoint: set[int]) -> str:
    note = "" if run.id in with_checkpoint else " · no checkpoint"
    made = f"{run.dataset}/{run.model}" if run.dataset and run.model else "logged from a script"
    shown = run.label if run.title == made else f"{run.label} · {made}"  # "#1 digits/cnn" says it once
    return f"{shown} · {run.status}{note}"


def load(run_id: int, checkpoint: str = "best") -> LoadedRun:
    return get_loaded_run(store, run_id, checkpoint, device=resolve_device("auto"))


def method_params(methods: list[str]) -> dict[str, dict]:
    """One widget per declared parameter of each chosen method, drawn from the registry."""
    chosen: dict[str, dict] = {}
    for method in methods:
        params = METHODS[method].on_tensors.params
        if not params:
            continue
        st.markdown(f"**{METHODS[method].label}**")
        values: dict[str, Any] = {}
        columns = st.columns(len(params))
        for column, p in zip(columns, params):
            key = f"explain.param.{method}.{p.name}"
            if isinstance(p.default, bool):
                values[p.name] = column.checkbox(p.name, p.default, help=p.help, key=key)
            elif p.choices:
                values[p.name] = column.selectbox(p.name, p.choices, p.choices.index(p.default), help=p.help,
                                                  key=key)
            elif isinstance(p.default, (int, float)):
                number = type(p.default)
                values[p.name] = column.number_input(
                    p.name, None if p.low is None else number(p.low), None if p.high is None else number(p.high),
                    p.default, help=p.help, key=key, **({"step": 1} if number is int else {"format": "%.3g"}))
            else:
                values[p.name] = column.text_input(p.name, p.default, help=p.help, key=key)
        chosen[method] = values
    return chosen


def parse_indices(text: str) -> list[int]:
    try:
        return [int(part) for part in text.replace(",", " ").split()]
    except ValueError:
        raise DlxError(f"samples: {text!r} is not a list of whole numbers such as 0, 5, 12",
                       field="samples") from None


def show_gallery(gallery: Gallery, sign: str, opacity: float, key: str, columns: int) -> None:
    """The maps (or, for tables, the feature bars), then their times and convergence deltas."""
    meta = gallery.loaded.meta
    if meta.kind == "image":
        st.plotly_chart(charts.explanation_grid(charts.gallery_rows(gallery), sign, opacity, columns=columns), key=key,
                        config={"displayModeBar": False})
    else:
        for i, row in enumerate(charts.gallery_rows(gallery)):
            top = ", ".join(f"{name} {p:.0%}" for name, p in row.top_k)
            st.markdown(f"**{md(row.caption)}** — {md(top)}")
            st.plotly_chart(charts.attribution_bars(gallery.values(i), meta.feature_names), key=f"{key}.{i}",
                            config={"displayModeBar": False})
    times = " · ".join(f"{METHODS[m].label} {1000 * a.seconds / len(gallery.inputs):.1f} ms"
                       + (" (cached)" if a.cached else "") for m, a in gallery.attributions.items())
    st.caption(f"Run #{gallery.loaded.run_id}, time per sample: {times}")
    deltas = " · ".join(f"{METHODS[m].label} {a.delta.abs().max():.2g}"
                        for m, a in gallery.attributions.items() if a.delta is not None)
    if deltas:
        st.caption(f"Convergence delta, largest |sum of attributions − (f(input) − f(baseline))|: {deltas}")


def job_section(task: ExplainTask, loaded: LoadedRun, button: str):
    """The task's stored result; else its job's progress or error, and a button that queues it."""
    return queued_result(store, lambda: task_result(loaded, task), lambda: find_job(store, task),
                         lambda: submit_task(store, task), button, f"explain.job.{task.task}")


def show_scores(scores, key: str) -> None:
    st.dataframe(scores.table(), hide_index=True, key=f"{key}.table",
                 column_order=["rank", "method", *[title for title, _ in METRICS.values()], "mean rank"],
                 column_config={title: st.column_config.NumberColumn(title, format="%.3f")
                                for title, _ in METRICS.values()})
    labelled = {label(m): v for m, v in scores.deletion.items()}
    inserted = {label(m): v for m, v in scores.insertion.items()}
    st.plotly_chart(charts.faithfulness_curves(scores.fractions, labelled, inserted), key=f"{key}.curves",
                    config={"displayModeBar": False})


# -- the page ----------------------------------------------------------------------------------------
st.title("Explain")
st.caption("Why does a trained model predict what it predicts? Attribution maps from Captum, "
           "scored for faithfulness (and, on data with a known answer, localisation).")

runs = store.list_runs()
if not runs:
    st.info("No runs yet: launch one (digits with the small CNN trains in seconds), then come back here.",
            icon=":material/lightbulb:")
    st.stop()
with_checkpoint = store.checkpointed_run_ids()
wanted = st.query_params.get("run")
first = next((i for i, r in enumerate(runs) if str(r.id) == wanted), None)
if first is None:
    first = next((i for i, r in enumerate(runs) if r.id in with_checkpoint), 0)

# One row of the controls asked for most, the rest in one expander: the pictures come first.
top_run, top_methods, top_compare = st.columns([2, 3, 2])
run = top_run.selectbox("Run", runs, index=first, format_func=lambda r: run_choice(r, with_checkpoint),
                        key="explain.run")
kept = kept_checkpoints(store, run.id)
checkpoint = explain_over_training.pick_checkpoint(kept, run.id)
try:
    loaded = load(run.id, checkpoint)
except DlxError as err:
    st.error(md(err), icon=":material/error:")
    st.stop()
meta = loaded.meta
# In the sidebar: the pictures stay first on the page, and the button stays reachable on every path below.
st.sidebar.download_button("Download report", partial(report_html, store, run.id),
                           f"run-{run.id}.html", "text/html", key="explain.report", icon=":material/download:",
                           on_click="ignore",
                           help="This run as one HTML file that opens offline, with the explanations stored so far")
if meta.kind == "text":  # transformers' views: pages/explain_text.py
    explain_text.show_text(loaded)
    if kept:
        explain_over_training.show_text(store, loaded, kept)
        st.subheader("Influence")
        explain_influence.show(store, loaded, kept, None)
    st.subheader("Projector")
    explain_projector.show(store, loaded, kept)
    st.stop()
available = available_methods(loaded.model, meta.kind)
methods = top_methods.multiselect("Methods", available, [m for m in DEFAULTS[meta.kind] if m in available],
                                  format_func=lambda m: METHODS[m].label,
                                  key=f"explain.methods.{'-'.join(available)}")
others = [r for r in runs if r.id != run.id and r.id in with_checkpoint and r.dataset == run.dataset]
compare_run = top_compare.selectbox("Side by side with", [None, *others], key="explain.compare",
                                    format_func=lambda r: "nothing" if r is None else run_choice(r, with_checkpoint),
                                    help="the same samples explained under a second run on the same data")
second = None
if compare_run is not None:
    try:
        second = load(compare_run.id)
        check_comparable(loaded, second)
    except DlxError as err:
        st.error(md(err), icon=":material/error:")
        second = None

test = loaded.bundle.test
with st.expander("Samples, target class, baseline, display and method parameters"):
    c1, c2, c3 = st.columns(3)
    sources = ["test samples", "an uploaded image"] if meta.kind == "image" else ["test samples"]
    source = c1.radio("Explain", sources, horizontal=True, key="explain.source")
    target = c2.selectbox("Explain the class", ["predicted", "true", *range(meta.num_classes)],
                          key=f"explain.target.{meta.name}",
                          format_func=lambda t: t if isinstance(t, str) else f"{t}: {meta.classes[t]}")
    baseline = c3.selectbox("Baseline", baselines_for(meta.kind), key=f"explain.baseline.{meta.kind}",
                            help="; ".join(f"{k}: {v}" for k, v in BASELINES.items()))
    if source == "test samples":
        p1, p2, p3 = st.columns(3)
        how = p1.selectbox("Pick samples", list(PICKERS), index=list(PICKERS).index("misclassified"),
                           format_func=lambda h: f"{h}: {PICKERS[h]}", key="explain.pick")
        count = p2.number_input("How many", 1, MAX_SAMPLES, 4, key="explain.count")
        indices_text, cls, seed = "", None, 0
        if how == "index":
            indices_text = p3.text_input("Indices in the test split", "0, 1, 2, 3", key="explain.indices")
        elif how == "class":
            cls = p3.selectbox("Class", range(meta.num_classes), format_func=lambda c: meta.classes[c],
                               key=f"explain.class.{meta.name}")
        elif how == "random":
            seed = p3.number_input("Seed", 0, 2**31 - 1, 0, key="explain.seed")
    s1, s2 = st.columns(2)
    sign = s1.radio("Show", charts.SIGNS, horizontal=True, key="explain.sign",
                    help="all: signed maps in diverging colours; or only the positive or negative part, "
                         "or the magnitude, in sequential colours")
    opacity = s2.slider("Heatmap opacity", 0.0, 1.0, 0.6, 0.05, key="explain.opacity")
    params = method_params(methods)

masks = None
labels = None
try:
    if source == "test samples":
        chosen = parse_indices(indices_text) if how == "index" else None
        every = loaded.test_probs() if how == "misclassified" else None  # the others read only their samples
        indices = pick_samples(test.y, every, how, int(count), chosen, cls, int(seed), meta.num_classes)
        inputs, labels = sample_inputs(test, indices), test.y[indices]
        captions = sample_captions(indices, labels, loaded.predict(inputs), meta.classes)
        if "mask" in test.extras:
            masks = test.extras["mask"][indices]
    else:
        normalised = " and normalised with the set's own mean/std, as in training" if normalisation(meta) else ""
        upload = st.file_uploader(f"An image (PNG, JPEG, ...); it is resized to "
                                  f"{'×'.join(map(str, meta.input_shape[1:]))}{normalised}", key="explain.upload")
        if upload is None:
            st.info("Upload an image to explain it.", icon=":material/upload:")
            st.stop()
        image = read_image(upload.getvalue(), meta, upload.name)
        for change in image.changes:
            st.info(md(change), icon=":material/info:")
        inputs, captions = image.tensor, [upload.name]
except DlxError as err:
    st.error(md(err), icon=":material/error:")
    st.stop()

tabs = (["Attributions", "Faithfulness"] + (["Global importance"] if meta.kind == "table" else [])
        + (["Over training", "Influence"] if kept else []) + ["Sanity checks"])
tabs += ["What-if", "Projector"]  # pages/explain_whatif.py, pages/explain_projector.py
tab_views = st.tabs(tabs)

with tab_views[0]:
    if not methods:
        st.info("Choose at least one method.")
    else:
        try:
            galleries = [build_gallery(loaded, inputs, captions, methods, baseline, params, target, labels, masks)]
            if second is not None:
                galleries.append(build_gallery(second, inputs, captions, methods, baseline, params, target,
                                               labels, masks))
        except DlxError as err:
            st.error(md(err), icon=":material/error:")
        else:
            per_line = GRID_COLUMNS if len(galleries) == 1 else 3  # side by side: half the width each
            for column, gallery in zip(st.columns(len(galleries)), galleries):
                with column:
                    show_gallery(gallery, sign, opacity, key=f"explain.grid.{gallery.loaded.run_id}",
                                 columns=per_line)
    if explain_text.is_vit(loaded.model):
        explain_text.show_vit(loaded, inputs, captions)

with tab_views[1]:
    if not methods:
        st.info("Choose at least one method.")
    else:
        st.markdown("**On the samples above** — deletion and insertion curves, Captum's infidelity and "
                    "max-sensitivity" + (", localisation against the ground-truth mask" if masks is not None
                                         else "") + "; a random map is the reference to beat.")
        sensitivity = st.checkbox("max-sensitivity (recomputes every map 5 times)", True, key="explain.sensitivity")
        try:
            targets = resolve_targets(loaded.predict(inputs), target, labels)
            scores = scores_cached(loaded, inputs, targets, methods, baseline, params, masks, sensitivity,
                                   compute=False)
            slot = st.empty()  # the button goes away once the scores are there
            if scores is None and slot.button("Score the methods on these samples", key="explain.score"):
                slot.empty()
                with st.spinner("Scoring..."):
                    scores = scores_cached(loaded, inputs, targets, methods, baseline, params, masks, sensitivity)
        except DlxError as err:
            st.error(md(err), icon=":material/error:")
            scores = None
        if scores is not None:
            show_scores(scores, "explain.scores")
        st.divider()
        st.markdown("**Over many test samples** — the first N test samples, as a job on the worker "
                    "(on the GPU where there is one).")
        n = st.number_input("Samples", 1, len(test), min(100, len(test)), key="explain.faith_n")
        task = ExplainTask(run_id=run.id, task="faithfulness", methods=methods, n_samples=int(n),
                           baseline=baseline, params=params, sensitivity=sensitivity, checkpoint=checkpoint)
        result = job_section(task, loaded, f"Score on {int(n)} test samples on the worker")
        if result is not None:
            show_scores(result, "explain.job_scores")

if meta.kind == "table":
    with tab_views[2]:
        if not methods:
            st.info("Choose at least one method.")
        else:
            st.markdown("Mean |attribution| per feature over the test split (for the predicted class), "
                        "and each sample's attribution against the feature's value.")
            task = ExplainTask(run_id=run.id, task="global_importance", methods=methods, n_samples=len(test),
                               baseline=baseline, params=params, checkpoint=checkpoint)
            result = job_section(task, loaded, f"Compute over the {len(test)} test samples on the worker")
            if result is not None:
                names = meta.feature_names
                st.plotly_chart(charts.importance_chart({METHODS[m].label: result.mean_abs(m) for m in methods},
                                                        names), key="explain.importance",
                                config={"displayModeBar": False})
                shown = st.selectbox("Beeswarm of", methods, format_func=lambda m: METHODS[m].label,
                                     key="explain.beeswarm")
                st.plotly_chart(charts.beeswarm(result.attributions[shown], result.features, names),
                                key="explain.swarm", config={"displayModeBar": False})

if kept:
    with tab_views[tabs.index("Over training")]:
        explain_over_training.show(store, loaded, kept, methods, indices if source == "test samples" else None,
                                   baseline, params)
    with tab_views[tabs.index("Influence")]:
        explain_influence.show(store, loaded, kept, indices if source == "test samples" else None,
                               None if source == "test samples" else inputs)

with tab_views[tabs.index("Sanity checks")]:
    explain_sanity.show_sanity(store, loaded, runs, available)

with tab_views[tabs.index("What-if")]:
    whatif_tab.show(loaded, inputs, captions, methods, baseline, params, sign, opacity)

with tab_views[tabs.index("Projector")]:
    def draw_sample(inputs, captions: list[str], labels, key: str) -> None:
        """A clicked point's sample explained with the methods and settings chosen above."""
        if not methods:
            st.info("Choose at least one method to explain the sample.")
            return
        show_gallery(build_gallery(loaded, inputs, captions, methods, baseline, params, target, labels), sign,
                     opacity, key, GRID_COLUMNS)

    explain_projector.show(store, loaded, kept, draw_sample)
