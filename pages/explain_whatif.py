"""The Explain page's What-if tab: edit an input and see the prediction and the explanation change beside
the original's. Tables: sliders within the training data's range and the nearest counterfactual; images:
a masked box or brushed pixels, or another sample; text: the sentence edited, or a word deleted or
replaced. Called from pages/explain.py and pages/explain_text.py; the work is in dlx.explain.whatif."""
from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st
import torch

from dlx.errors import DlxError
from dlx.explain import METHODS, methods_for
from dlx.explain.cache import digest
from dlx.explain.counterfactual import STEP, WAY, nearest_counterfactual
from dlx.explain.models_cache import LoadedRun
from dlx.explain.samples import sample_inputs
from dlx.explain.whatif import (
    WhatIf,
    box_mask,
    delete_word,
    feature_ranges,
    image_whatif,
    replace_word,
    table_whatif,
    tensor_whatif,
    text_whatif,
    to_own_units,
)
from dlx.views.charts import explain as charts
from dlx.views.charts.attention import coloured_sentence
from dlx.views.charts.whatif import brush_canvas
from dlx.views.text import md

CHART = {"displayModeBar": False}
TEXT_METHODS = ["layer_integrated_gradients", "word_ablation"]
ON_HELP = "the edit is predicted and explained on every change; off, the page's other tabs do not wait for it"
FOUND, NONE_FOUND = "whatif.table.#counterfactual", "none"  # the search's result, until the sample changes
KEEP = ("whatif.table.of", FOUND)
BRUSH_MAX_PIXELS = 4096  # a brush draws one point per pixel: up to 64×64 images


def prediction(loaded: LoadedRun, probs: torch.Tensor) -> str:
    top = int(probs.argmax())
    return f"{loaded.meta.classes[top]} ({float(probs[top]):.1%})"


def show_predictions(loaded: LoadedRun, result: WhatIf) -> None:
    classes = loaded.meta.classes
    change = "the prediction flips" if result.flipped else "the prediction stays"
    st.markdown(f"**Original**: {md(prediction(loaded, result.original.probs))} · "
                f"**Edited** ({md(result.edit)}): {md(prediction(loaded, result.edited.probs))} — {change}; "
                f"both explained for class {md(classes[result.target])}.")


def _reset_on_change(state_key: str, current: Any, prefix: str) -> None:
    """Widgets keyed under `prefix` start again from the new input when the input changes."""
    if st.session_state.get(state_key) != current:
        for key in [k for k in st.session_state if str(k).startswith(prefix)]:
            del st.session_state[key]
        st.session_state[state_key] = current


# -- tables and images ---------------------------------------------------------------------------
def show(loaded: LoadedRun, inputs: torch.Tensor, captions: list[str], methods: list[str], baseline: str,
         params: dict[str, dict], sign: str, opacity: float) -> None:
    """The tab for an image or table run: one of the page's samples, edited."""
    if not st.toggle("Edit a sample", key="whatif.on", help=ON_HELP):
        return
    if not methods:
        st.info("Choose at least one method.")
        return
    pick = st.selectbox("Sample", range(len(inputs)), format_func=lambda i: captions[i], key="whatif.sample")
    try:
        if loaded.meta.kind == "table":
            _table(loaded, inputs[pick], captions[pick], methods, baseline, params)
        else:
            _image(loaded, inputs[pick], captions[pick], methods, baseline, params, sign, opacity)
    except DlxError as err:
        st.error(md(err), icon=":material/error:")


def _table(loaded: LoadedRun, row: torch.Tensor, caption: str, methods: list[str], baseline: str,
           params: dict[str, dict]) -> None:
    bundle = loaded.bundle
    _reset_on_change("whatif.table.of", caption, "whatif.table.")
    st.caption("Each feature in the data's own units, within the training data's range; "
               "both sides are explained for the original's predicted class.")
    ranges = feature_ranges(bundle)
    own = to_own_units(bundle, row[None])[0]
    changes: dict[str, float] = {}
    with st.expander("Feature values", expanded=True):
        columns = st.columns(3)
        for i, r in enumerate(ranges):
            if r.high <= r.low:  # one value in all of training: nothing to slide
                continue
            start = float(np.clip(own[i], r.low, r.high))
            step = (r.high - r.low) / 100 or 1.0
            value = columns[i % 3].slider(r.name, r.low, r.high, start, step, format="%.4g",
                                          key=f"whatif.table.{r.name}")
            if abs(value - start) > 1e-9 * max(1.0, abs(start)):
                changes[r.name] = value
    result = table_whatif(loaded, row, changes, methods, baseline, params)
    show_predictions(loaded, result)
    names = [r.name for r in ranges]
    for column, side, title in zip(st.columns(2), (result.original, result.edited), ("Original", "Edited")):
        column.markdown(f"**{title}**")
        column.plotly_chart(charts.attribution_bars({METHODS[m].label: v for m, v in side.attributions.items()},
                                                    names), key=f"whatif.bars.{title}", config=CHART)
    if st.button("Find the nearest counterfactual", key="whatif.counterfactual",
                 help="the smallest change of one feature that flips the prediction"):
        with st.spinner("Searching..."):
            st.session_state[FOUND] = nearest_counterfactual(loaded, row) or NONE_FOUND
    found = st.session_state.get(FOUND)
    if found == NONE_FOUND:
        st.info("No change of a single feature within the training data's range flips this prediction.")
        st.caption(f"How: {WAY.format(step=STEP)}.")
    elif found is not None:
        st.success(md(f"Setting {found.feature} from {found.old:.4g} to {found.new:.4g} "
                      f"({found.change_std:.2f} standard deviations) flips the prediction to "
                      f"{prediction(loaded, found.probs)}."), icon=":material/swap_horiz:")
        bounds = ranges[found.index]
        st.button("Set the sliders to it", key="whatif.apply", on_click=_apply,
                  args=(found.feature, float(np.clip(found.new, bounds.low, bounds.high))),
                  help="every feature back to the sample's value, and this one to the counterfactual's")
        st.caption(f"How: {found.way}.")


def _apply(feature: str, value: float) -> None:
    """The sliders as the counterfactual has them: the sample's own values, one feature changed."""
    for key in [k for k in st.session_state if str(k).startswith("whatif.table.") and k not in KEEP]:
        del st.session_state[key]
    st.session_state[f"whatif.table.{feature}"] = value


def _image(loaded: LoadedRun, image: torch.Tensor, caption: str, methods: list[str], baseline: str,
           params: dict[str, dict], sign: str, opacity: float) -> None:
    height, width = image.shape[-2:]
    how = st.radio("Edit", ["mask a box", "brush pixels", "another test sample"], horizontal=True,
                   key="whatif.image.how",
                   help=f"masked pixels take the baseline's value ({baseline}), as chosen above")
    if how == "mask a box":
        a, b, c, d = st.columns(4)
        x = a.slider("x", 0, width - 1, width // 4, key="whatif.image.x")
        y = b.slider("y", 0, height - 1, height // 4, key="whatif.image.y")
        w = c.slider("w", 1, width - x, max(1, min(width // 2, width - x)), key="whatif.image.w")
        h = d.slider("h", 1, height - y, max(1, min(height // 2, height - y)), key="whatif.image.h")
        result = image_whatif(loaded, image, box_mask(image.shape, x, y, w, h), methods, baseline, params)
    elif how == "brush pixels":
        mask = _brush(image)
        if mask is None:
            return
        result = image_whatif(loaded, image, mask, methods, baseline, params)
    else:
        test = loaded.bundle.test
        other = int(st.number_input(f"Index in the test split (0 to {len(test) - 1})", 0, len(test) - 1, 0,
                                    key="whatif.image.other"))
        result = tensor_whatif(loaded, image, sample_inputs(test, [other])[0], f"test sample #{other}", methods,
                               baseline, params)
    show_predictions(loaded, result)
    assert result.gallery is not None
    result.gallery.captions[0] = caption
    st.plotly_chart(charts.explanation_grid(charts.gallery_rows(result.gallery), sign, opacity,
                                            columns=2 + len(methods)), key="whatif.grid", config=CHART)


def _brush(image: torch.Tensor) -> np.ndarray | None:
    """Pixels picked with the lasso (or box) on the image: a brush without a drawing component."""
    height, width = image.shape[-2:]
    if height * width > BRUSH_MAX_PIXELS:
        st.info(f"The brush draws a point per pixel, for images up to {BRUSH_MAX_PIXELS} pixels; mask a box "
                "instead.")
        return None
    st.caption("Draw around the pixels to mask with the lasso (or the box select).")
    event = st.plotly_chart(brush_canvas(image.float().mean(0).numpy()), key="whatif.image.brush", on_select="rerun",
                            selection_mode=("lasso", "box"), config=CHART)
    points = event.selection.points if event else []
    if not points:
        st.info("Draw over the image to choose pixels.")
        return None
    mask = np.zeros((height, width), dtype=bool)
    for point in points:
        mask[int(point["y"]), int(point["x"])] = True
    return mask


# -- text ----------------------------------------------------------------------------------------
def show_text(loaded: LoadedRun, sentence: str, target: int) -> None:
    """The tab for a text run: the chosen sentence, edited, both coloured for the chosen class."""
    if not st.toggle("Edit the sentence", key="whatif.text.on", help=ON_HELP):
        return
    _reset_on_change("whatif.text.of", sentence, "whatif.text.edited")
    st.session_state.setdefault("whatif.text.edited", sentence)
    words = st.session_state["whatif.text.edited"].split()
    a, b, c, d = st.columns([2, 2, 1, 1])
    if words:
        word_key = f"whatif.text.word.{digest(words)}"  # keyed by the sentence: each edit offers its own words afresh
        a.selectbox("Word", range(len(words)), format_func=lambda i: f"{i}: {words[i]}", key=word_key)
        b.text_input("Replace it with", "", key="whatif.text.replacement")
        c.button("Delete word", key="whatif.text.delete", on_click=_edit_text, args=(word_key,))
        d.button("Replace word", key="whatif.text.replace", on_click=_edit_text,
                 args=(word_key, "whatif.text.replacement"))
    problem = st.session_state.pop("whatif.text.problem", None)
    if problem:
        st.error(md(problem), icon=":material/error:")
    edited = st.text_area("Edited sentence", key="whatif.text.edited")
    methods = st.multiselect("Methods", methods_for("text"), TEXT_METHODS, key="whatif.text.methods",
                             format_func=lambda m: METHODS[m].label)
    try:
        result = text_whatif(loaded, sentence, edited, methods, target)
    except DlxError as err:
        st.error(md(err), icon=":material/error:")
        return
    show_predictions(loaded, result)
    for method in methods:
        st.markdown(f"**{METHODS[method].label}**")
        for column, side, title in zip(st.columns(2), (result.original, result.edited), ("Original", "Edited")):
            column.caption(f"{title}: {md(prediction(loaded, side.probs))}")
            column.html(coloured_sentence(side.words, side.attributions[method], side.signed[method]))


def _edit_text(word_key: str, replacement_key: str | None = None) -> None:
    """A word button's edit of the sentence in the text area, before the area is drawn again; the word and the
    replacement are read from their widgets' state now (a callback's arguments are those of the last run)."""
    state = st.session_state
    try:
        if replacement_key is None:
            state["whatif.text.edited"] = delete_word(state["whatif.text.edited"], state[word_key])
        else:
            state["whatif.text.edited"] = replace_word(state["whatif.text.edited"], state[word_key],
                                                       state[replacement_key])
    except DlxError as err:
        state["whatif.text.problem"] = str(err)
