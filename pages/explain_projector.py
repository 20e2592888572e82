"""The Explain page's "Projector" tab: the run's penultimate-layer embeddings of a split projected in 2-D (a
worker job, cached per run and checkpoint), drawn as WebGL points; a click opens that sample's explanation
and its training-data proponents (where computed), and the Slices table below colours a slice and lists its
errors. Computing is in dlx.explain.projector and dlx.explain.slices; the table in dlx.views.projector."""
from __future__ import annotations

from collections.abc import Callable

import streamlit as st
import torch

from dlx.errors import DlxError
from dlx.explain.cache import explain_text_cached
from dlx.explain.influence import stored_sample_influence, stored_self_influence
from dlx.explain.models_cache import LoadedRun
from dlx.explain.projector import (
    DEFAULT_PROJECTIONS,
    MAX_POINTS,
    PROJECTIONS,
    ProjectorTask,
    find_job,
    stored_projection,
    submit_task,
)
from dlx.explain.samples import sample_inputs
from dlx.explain.slices import CORRECT, in_slice, slice_metrics
from dlx.explain.text.tokens import encode
from dlx.store import Store
from dlx.views.charts.attention import coloured_sentence
from dlx.views.charts.projector import projector_figure
from dlx.views.influence import training_examples
from dlx.views.projector import HOVER, colour_choices, projector_frame, slice_errors
from dlx.views.text import md
from pages import queued_result

PLOT, SAMPLE, SLICES = "explain.projector.plot", "explain.projector.sample", "explain.projector.slices"
SPLIT = "explain.projector.split"
PROPONENTS = 8
TEXT_METHOD = "layer_integrated_gradients"  # a clicked sentence's attribution (the text tab's first method)
# Draws one sample's attribution (images and tables) with the Explain page's gallery: its inputs, captions, key.
DrawSample = Callable[[torch.Tensor, list[str], torch.Tensor, str], None]


def show(store: Store, loaded: LoadedRun, kept: list, draw_sample: DrawSample | None = None) -> None:
    """The tab: `kept` are the run's kept checkpoints (proponents are read where influence was computed)."""
    st.markdown("**The data set through the model**: each sample's penultimate-layer embedding (the input of "
                "the final linear layer) projected in 2-D. Click a point to explain its sample; choose a slice "
                "in the table below to see where it lies and its errors.")
    c1, c2, c3 = st.columns([1, 1, 2])
    split = c1.selectbox("Split", ["test", "val", "train"], key=SPLIT)
    size = len(getattr(loaded.bundle, split))
    points = int(c2.number_input("Points (a seeded sample beyond)", 1, MAX_POINTS, min(max(size, 1), MAX_POINTS),
                                 key="explain.projector.points"))
    computed = c3.multiselect("Projections", list(PROJECTIONS), list(DEFAULT_PROJECTIONS),
                              format_func=lambda p: PROJECTIONS[p], key="explain.projector.projections",
                              help="computed by the job, seeded (the same run, checkpoint and choices give the "
                                   "same map); UMAP and t-SNE take seconds to minutes at 10,000 points")
    if not computed:
        st.info("Choose at least one projection.")
        return
    task = ProjectorTask(run_id=loaded.run_id, checkpoint=loaded.checkpoint, split=split, points=points,
                         projections=computed)
    result = queued_result(store, lambda: stored_projection(loaded, task), lambda: find_job(store, task),
                           lambda: submit_task(store, task), f"Compute the projection of {min(points, size)} "
                           f"{split} samples on the worker", "explain.projector.run", "projector job")
    if result is None:
        return
    frame = projector_frame(result, loaded.bundle, split)
    c1, c2 = st.columns(2)
    projection = c1.selectbox("Projection shown", list(result.coordinates), format_func=lambda p: PROJECTIONS[p],
                              key="explain.projector.projection")
    colour_by = c2.selectbox("Colour by", colour_choices(frame), key="explain.projector.colour")
    slices = slice_metrics(frame.drop(columns=HOVER))
    chosen = _chosen_slice(slices)
    member = None if chosen is None else in_slice(frame, *chosen)
    figure = projector_figure(result.coordinates[projection], frame, colour_by, frame[HOVER], member,
                              f"{chosen[0]} = {chosen[1]}" if chosen else "in slice")
    st.plotly_chart(figure, key=PLOT, on_select=_clicked, selection_mode="points",
                    config={"displayModeBar": False, "scrollZoom": True})
    st.caption(f"{len(frame)} {split} samples of run #{loaded.run_id} ({loaded.checkpoint} checkpoint), "
               f"{PROJECTIONS[projection]} of the {result.embedded.vectors.shape[1]}-wide input of "
               f"{md(result.embedded.layer)}; {int((~frame[CORRECT]).sum())} wrong.")
    index = st.number_input(f"Sample explained (an index in the {split} split; a click on a point sets it)",
                            0, max(size - 1, 0), None, key=f"{SAMPLE}.{split}")  # per split: its own range
    if index is not None:
        _explain_sample(store, loaded, kept, split, int(index), draw_sample)
    st.markdown("**Slices**, worst first: accuracy per value of each column (true and predicted class, "
                + ("categorical columns, " if loaded.meta.kind == "table" else "")
                + ("sentence length, " if loaded.meta.kind == "text" else "")
                + "...). Select a row to colour its slice above and list its errors.")
    st.dataframe(slices, hide_index=True, key=SLICES, on_select="rerun", selection_mode="single-row",
                 column_config={"accuracy": st.column_config.NumberColumn(format="%.3f"),
                                "mean confidence": st.column_config.NumberColumn(format="%.3f")})
    if chosen is not None and member is not None:
        errors = slice_errors(frame, member)
        st.markdown(f"**Errors in {md(chosen[0])} = {md(chosen[1])}**: {len(errors)} of {int(member.sum())}")
        st.dataframe(errors.reset_index(), hide_index=True, key="explain.projector.errors")


def _chosen_slice(slices) -> tuple[str, str] | None:
    """The slice selected in the table (its state from the last run: the table is drawn below the plot)."""
    state = st.session_state.get(SLICES)
    rows = list(state["selection"]["rows"]) if state else []
    if not rows or rows[0] >= len(slices):
        return None
    row = slices.iloc[rows[0]]
    return str(row["column"]), str(row["slice"])


def _clicked() -> None:
    """A click on a point: its sample (customdata) becomes the one explained."""
    points = st.session_state[PLOT]["selection"]["points"]
    if points and points[0].get("customdata"):
        st.session_state[f"{SAMPLE}.{st.session_state[SPLIT]}"] = int(points[0]["customdata"][0])


def _explain_sample(store: Store, loaded: LoadedRun, kept: list, split: str, index: int,
                    draw_sample: DrawSample | None) -> None:
    """The sample's input and attribution, then its proponents where an influence job computed them."""
    meta = loaded.meta
    data = getattr(loaded.bundle, split)
    if not 0 <= index < len(data):
        st.error(f"sample: {index} is outside the {split} split (0 to {len(data) - 1})")
        return
    label = meta.classes[int(data.y[index])]
    try:
        if meta.kind == "text":
            e = encode(loaded.model.tokenizer, data.texts[index], getattr(loaded.model, "max_length", 128))
            with loaded.lock, torch.no_grad():
                probs = torch.softmax(loaded.model(e.input_ids.to(loaded.device),
                                                   e.attention_mask.to(loaded.device)).float(), -1)[0].cpu()
            predicted = int(probs.argmax())
            result = explain_text_cached(loaded, e, TEXT_METHOD, predicted)
            keep = [i for i, s in enumerate(e.special) if not s]
            st.markdown(f"**{split} sample #{index}** (label {md(label)}, predicted {md(meta.classes[predicted])}, "
                        f"{float(probs[predicted]):.0%}): layer integrated gradients for the predicted class")
            st.html(coloured_sentence([e.tokens[i] for i in keep], result.values[keep].numpy(), result.signed))
        elif draw_sample is not None:
            inputs = sample_inputs(data, [index])
            draw_sample(inputs, [f"{split} #{index}"], data.y[[index]], f"explain.projector.gallery.{split}.{index}")
    except DlxError as err:
        st.error(md(err), icon=":material/error:")
    if kept and split in ("test", "train"):
        _proponents(store, loaded, split, index)


def _proponents(store: Store, loaded: LoadedRun, split: str, index: int) -> None:
    found = stored_sample_influence(store, loaded.run_id, index, split)  # type: ignore[arg-type]
    if found is None:
        st.caption("Its training-data proponents show here once the Influence tab has computed them for it.")
        return
    own = stored_self_influence(store, loaded.run_id)
    labels = own.labels if own is not None else loaded.bundle.train.y.numpy()
    shown = training_examples(loaded.bundle, found.top(PROPONENTS), labels)
    st.caption(f"Proponents of #{index} (TracIn): the training examples that pushed it towards its prediction")
    if shown.images is not None:
        st.image(shown.images, caption=shown.captions, width=84, clamp=True)
    else:
        st.dataframe(shown.table, hide_index=True, key=f"explain.projector.proponents.{index}")
