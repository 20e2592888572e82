"""The Explain page's "Influence" tab: TracIn over the run's kept checkpoints as a worker job, then the
proponents and opponents of the samples shown, the self-influence review gallery and, where the run has
planted label noise, how well the ranking finds it. Computing is in dlx.explain.influence."""
from __future__ import annotations

import streamlit as st
import torch

from dlx.errors import DlxError
from dlx.explain.influence import (
    InfluenceTask,
    final_layer,
    find_job,
    layer_choices,
    missing_parts,
    noise_recall,
    stored_sample_influence,
    stored_self_influence,
    submit_task,
    upload_influence,
)
from dlx.explain.models_cache import LoadedRun
from dlx.store import Store
from dlx.training.kept import KeptCheckpoint
from dlx.training.label_noise import recorded_label_noise
from dlx.views.influence import noise_table, training_examples
from dlx.views.text import md
from pages import queued_result

REVIEW = 24  # training examples in the self-influence review gallery


def show(store: Store, loaded: LoadedRun, kept: list[KeptCheckpoint], indices: list[int] | None,
         upload: torch.Tensor | None = None) -> None:
    """The tab: `indices` are the test samples shown above (None: pick one here, as for text runs), or
    `upload` the uploaded image shown above."""
    st.markdown(f"**Which training examples made this prediction** (TracIn, Pruthi et al. 2020): each training "
                f"example's loss gradient dotted with the sample's, summed over the {len(kept)} kept checkpoints "
                "weighted by the run's learning rate (by default Captum's TracInCPFast on the final layer"
                + (", the classifier head: the encoder's own weights are not covered unless chosen below"
                   if loaded.meta.kind == "text" else "")
                + "; TracInCP on the layers chosen below). Proponents pushed the prediction towards its class, "
                "opponents away.")
    test = loaded.bundle.test
    c1, c2 = st.columns(2)
    if upload is not None:
        indices = []
    elif indices is None:
        indices = [int(c1.number_input("Test sample", 0, len(test) - 1, 0, key="explain.influence.index"))]
    k = int(c2.number_input("Proponents and opponents shown", 1, 32, 8, key="explain.influence.k"))
    layers = _layers(loaded)
    try:
        if not _ready(store, InfluenceTask(run_id=loaded.run_id, indices=indices, layers=layers), "test"):
            return
        found = stored_self_influence(store, loaded.run_id, layers)
        assert found is not None  # ready
        noise = recorded_label_noise(store, loaded.run_id)
        flipped = noise.indices if noise else []
        classes = loaded.meta.classes
        if upload is not None:
            _upload(store, loaded, upload, layers, k, found.labels, flipped)
        for index in indices:
            sample = stored_sample_influence(store, loaded.run_id, index, layers=layers)
            assert sample is not None
            what = f"test sample #{index}" + (f": {md(test.texts[index])}" if loaded.meta.kind == "text" else "")
            st.markdown(f"**{what}** (label {md(classes[sample.label])}, predicted {md(classes[sample.target])})")
            _examples(loaded, "Proponents", sample.top(k), found.labels, flipped, f"pro.{index}")
            _examples(loaded, "Opponents", sample.top(k, proponents=False), found.labels, flipped, f"opp.{index}")
        st.markdown("**Self-influence review: likely mislabelled or atypical.** The training set ranked by each "
                    "example's influence on itself; the top of the list is worth a look.")
        top = [(i, float(found.scores[i])) for i in found.ranking[:REVIEW]]
        _examples(loaded, f"The {REVIEW} most self-influential of {len(found.scores)}", top, found.labels, flipped,
                  "self")
        if flipped:
            scored = noise_recall(found.ranking, flipped)
            st.markdown(f"**Planted label noise**: {len(flipped)} training labels were flipped "
                        f"(label_noise = {noise.fraction if noise else 0:g}); how many the ranking finds:")
            st.dataframe(noise_table(scored).style.format("{:.3f}"), key="explain.influence.noise")
        review = st.selectbox("Proponents of a training example in the review", [None, *(i for i, _ in top)],
                              key="explain.influence.train", format_func=lambda i: "none" if i is None else f"#{i}",
                              help="which training examples pushed this one towards its (possibly wrong) label")
        if review is not None and _ready(store, InfluenceTask(run_id=loaded.run_id, indices=[review], split="train",
                                                             layers=layers, self_influence=False), "train"):
            own = stored_sample_influence(store, loaded.run_id, review, "train", layers)
            assert own is not None
            _examples(loaded, f"Proponents of training example #{review}", own.top(k), found.labels, flipped,
                      "pro.train")
    except DlxError as err:
        st.error(md(err), icon=":material/error:")


def _layers(loaded: LoadedRun) -> list[str]:
    """The layers the gradients are taken on: none chosen is TracInCPFast on the final layer (the default);
    chosen ones are full TracInCP on them, computed and cached apart."""
    choices = layer_choices(loaded.model)
    try:
        fast = final_layer(loaded.model, loaded.meta.num_classes)
    except DlxError:
        fast = "the final layer"
    return st.multiselect(
        "Layers (TracInCP)", choices, [], key="explain.influence.layers",
        placeholder=f"{fast}: TracInCPFast (the default)",
        help="Leave empty for TracInCPFast on the final layer (fast: one pass over the training set per kept "
             "checkpoint). Choose layers for full TracInCP on their weights: per-sample gradients of each chosen "
             "layer, slower and heavier as layers are added; its results are computed and cached apart.")


def _upload(store: Store, loaded: LoadedRun, upload: torch.Tensor, layers: list[str], k: int, labels,
            flipped: list[int]) -> None:
    """The uploaded image's proponents and opponents: computed here on a click (cached by the image)."""
    samples = upload_influence(store, loaded.run_id, upload, layers, device=loaded.device, compute=False)
    if samples is None:
        if not st.button("Find the training examples behind this upload (here: a pass over the training set "
                         "per kept checkpoint)", key="explain.influence.upload"):
            return
        with st.spinner("Computing influence..."):
            samples = upload_influence(store, loaded.run_id, upload, layers, device=loaded.device)
        assert samples is not None  # computed
    for sample in samples:
        st.markdown(f"**The uploaded image** (predicted {md(loaded.meta.classes[sample.target])})")
        _examples(loaded, "Proponents", sample.top(k), labels, flipped, f"pro.upload.{sample.index}")
        _examples(loaded, "Opponents", sample.top(k, proponents=False), labels, flipped, f"opp.upload.{sample.index}")


def _ready(store: Store, task: InfluenceTask, name: str) -> bool:
    """True when the task's results are stored; else its job's progress, its failure, or a button to run it."""
    todo = missing_parts(store, task)
    if todo is None:
        return True
    queued_result(store, lambda: None, lambda: find_job(store, todo), lambda: submit_task(store, todo),
                  "Compute influence on the worker", f"explain.influence.run.{name}", "influence job")
    return False


def _examples(loaded: LoadedRun, title: str, chosen: list[tuple[int, float]], labels, flipped: list[int],
              key: str) -> None:
    shown = training_examples(loaded.bundle, chosen, labels, flipped)
    st.caption(md(title))
    if shown.images is not None:
        st.image(shown.images, caption=shown.captions, width=84, clamp=True)
    else:
        st.dataframe(shown.table, hide_index=True, key=f"explain.influence.{key}")
