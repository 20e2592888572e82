"""The Explain page's views for transformers: text runs (attention, token attributions, agreement,
scores) and ViT runs (per-head [CLS] attention and rollout over the image). Called from
pages/explain.py; all computing is in dlx.explain (attention/, text/, scoring)."""
from __future__ import annotations

from typing import cast

import numpy as np
import streamlit as st
import torch
from torch import nn

from dlx.errors import DlxError
from dlx.explain import METHODS, methods_for
from dlx.explain.attention.rollout import relevance, rollout
from dlx.explain.attention.text import agreement, attention_and_gradients, merge_attention, token_scores
from dlx.explain.attention.vit import vit_maps
from dlx.explain.cache import explain_text_cached
from dlx.explain.jobs import TextTask, find_job, run_task, submit_task, task_result
from dlx.explain.models_cache import LoadedRun
from dlx.explain.over_training import OverTraining
from dlx.explain.scoring import TEXT_METRICS, TextScores
from dlx.explain.text.tokens import Encoded, Merge, encode, merge_tokens, pooling_of
from dlx.views.charts import attention as charts
from dlx.views.charts.explain import faithfulness_curves
from dlx.views.charts.over_training import attention_frames, score_curves, sentence_rows
from dlx.views.text import md
from pages import explain_whatif, queue_button, show_job

CHART = {"displayModeBar": False}
DEFAULT_METHODS = ["layer_integrated_gradients", "word_ablation", "attention_rollout"]


def is_vit(model: nn.Module) -> bool:
    """An image model with attention layers gets the attention views beside its Captum maps."""
    return any(isinstance(m, nn.MultiheadAttention) for m in model.modules())


def _sentence(loaded: LoadedRun) -> tuple[str, list[int] | None]:
    test = loaded.bundle.test
    source = st.radio("Sentence", ["a test sentence", "my own sentence"], horizontal=True, key="explain.text.source")
    if source == "my own sentence":
        return st.text_input("Type a sentence", "the plot was not very good", key="explain.text.own"), None
    index = int(st.number_input(f"Index in the test split (0 to {len(test.texts) - 1})", 0,
                                max(len(test.texts) - 1, 0), 0, key="explain.text.index"))
    rationale = test.extras.get("rationale")
    words = None if rationale is None else np.flatnonzero(rationale[index].numpy()).tolist()
    st.caption(f"True class: {md(loaded.meta.classes[int(test.y[index])])}"
               + ("" if words is None else
                  f" · rationale: {md(', '.join(test.texts[index].split()[w] for w in words))}"))
    return test.texts[index], words


def show_text(loaded: LoadedRun) -> None:
    """Everything for a text run, one sentence at a time."""
    model, meta = loaded.model, loaded.meta
    try:
        text, rationale = _sentence(loaded)
        e = encode(model.tokenizer, text, getattr(model, "max_length", 128))
        c1, c2 = st.columns(2)
        with loaded.lock:
            maps, grads, logits = attention_and_gradients(model, e)
        probs = torch.softmax(logits, -1)
        predicted = int(probs.argmax())
        target = c1.selectbox("Explain the class", range(meta.num_classes), index=predicted,
                              format_func=lambda t: f"{meta.classes[t]} ({probs[t]:.0%})"
                                                    + (" · predicted" if t == predicted else ""),
                              key=f"explain.text.target.{meta.name}")
        merge = c2.radio("Word pieces", ["as pieces", "merged into words: sum", "merged into words: mean"],
                         horizontal=True, key="explain.text.merge",
                         help="attributions of a word's pieces are summed or averaged; in the attention "
                              "views a word's keys are summed and its queries averaged (rows still sum to 1)")
        if target != predicted:
            with loaded.lock:
                maps, grads, logits = attention_and_gradients(model, e, target)
    except DlxError as err:
        st.error(md(err), icon=":material/error:")
        return
    how = None if merge == "as pieces" else cast(Merge, merge.rsplit(" ", 1)[-1])
    views = st.tabs(["Attention", "Token attributions", "Agreement", "Scores", "What-if"])
    with views[0]:
        _attention(e, maps, grads, how, pooling_of(model))
    with views[1]:
        attributions = _attributions(loaded, e, target, how)
    with views[2]:
        _agreement(e, maps, attributions, pooling_of(model))
    with views[3]:
        _scores(loaded, rationale is not None)
    with views[4]:
        explain_whatif.show_text(loaded, text, target)


def _attention(e: Encoded, maps: torch.Tensor, grads: torch.Tensor, how: Merge | None, pooling: str) -> None:
    shown, labels = (maps, e.tokens) if how is None else merge_attention(maps, e)
    layers, heads = shown.shape[:2]
    st.markdown(f"**Model view** — every layer (rows) × head (columns); row q of a map is what token q "
                f"attends to. {layers * heads} maps.")
    st.plotly_chart(charts.model_view(shown.numpy(), labels), key="explain.text.model_view", config=CHART)
    a, b = st.columns(2)
    layer = a.selectbox("Enlarge layer", range(layers), key="explain.text.big_layer")
    head = b.selectbox("and head", range(heads), key="explain.text.big_head")
    st.plotly_chart(charts.attention_heatmap(shown[layer, head].numpy(), labels, f"layer {layer}, head {head}"),
                    key="explain.text.big", config=CHART)
    st.markdown("**Head view** — queries on the left, keys on the right, lines as strong as the attention.")
    a, b = st.columns([1, 3])
    hv_layer = a.selectbox("Layer", range(layers), key="explain.text.hv_layer")
    hv_heads = b.multiselect("Heads", list(range(heads)), list(range(min(heads, 3))), key="explain.text.hv_heads")
    st.plotly_chart(charts.head_view(shown.numpy(), labels, hv_layer, hv_heads), key="explain.text.head_view",
                    config=CHART)
    reader = "[CLS]'s row" if pooling == "cls" else "the mean of all rows (the model mean-pools)"
    st.markdown(f"**Across layers** — attention rollout (Abnar & Zuidema 2020) and gradient-weighted "
                f"relevance (Chefer et al. 2021) for the chosen class, read from {reader}; specials at 0.")
    flows = {"rollout": token_scores(rollout(maps), e, pooling), "relevance": token_scores(relevance(maps, grads),
                                                                                          e, pooling)}
    if how is None:
        st.plotly_chart(charts.token_bars({k: v.numpy() for k, v in flows.items()}, e.tokens),
                        key="explain.text.flows", config=CHART)
    else:
        words = {k: merge_tokens(v, e.word_of_token, len(e.words), how).numpy() for k, v in flows.items()}
        st.plotly_chart(charts.token_bars(words, e.words), key="explain.text.flows", config=CHART)


def _attributions(loaded: LoadedRun, e: Encoded, target: int, how: Merge | None) -> dict[str, torch.Tensor]:
    methods = st.multiselect("Methods", methods_for("text"), DEFAULT_METHODS, key="explain.text.methods",
                             format_func=lambda m: METHODS[m].label)
    st.caption("Red: evidence for the class, blue: against (unsigned methods in red only); "
               "the colour scale is set by each method's largest value. Hover a word for its value.")
    out = {}
    for method in methods:
        try:
            result = explain_text_cached(loaded, e, method, target)
        except DlxError as err:
            st.error(md(err), icon=":material/error:")
            continue
        out[method] = result.values
        note = f"{result.seconds * 1000:.0f} ms"
        if result.delta is not None:
            note += f" · convergence delta {result.delta:.2g}"
        st.markdown(f"**{METHODS[method].label}** · {note}")
        if how is None:
            keep = [i for i, s in enumerate(e.special) if not s]
            words, values = [e.tokens[i] for i in keep], result.values[keep].numpy()
        else:
            words, values = e.words, result.words(e, how).numpy()
        st.html(charts.coloured_sentence(words, values, result.signed))
    return out


def _agreement(e: Encoded, maps: torch.Tensor, attributions: dict[str, torch.Tensor], pooling: str) -> None:
    if not attributions:
        st.info("Choose a method under Token attributions.")
        return
    method = st.selectbox("Attributions of", list(attributions), format_func=lambda m: METHODS[m].label,
                          key="explain.text.agree_method")
    source = "from [CLS]" if pooling == "cls" else "received, averaged over all queries"
    st.caption(f"Spearman rank correlation between each head's attention to the word pieces ({source}) "
               "and the attributions' magnitude; special tokens left out. Which heads point where the "
               "attributions point?")
    try:
        matrix, rho = agreement(maps, attributions[method], e, source=pooling)
    except DlxError as err:
        st.error(md(err), icon=":material/error:")
        return
    st.plotly_chart(charts.agreement_heatmap(matrix, rho), key="explain.text.agreement", config=CHART)


def _scores(loaded: LoadedRun, has_rationale: bool) -> None:
    """Methods scored on the first N test sentences, here or as a job on the worker; the result is
    stored (a second look, or the worker's result, shows without recomputing)."""
    test = loaded.bundle.test
    st.markdown("**Faithfulness by word** on the first test sentences (each explained for its predicted class): "
                "deletion and insertion curves, ERASER comprehensiveness and sufficiency"
                + (", and the rationale scores (recall@3, AUPRC)" if has_rationale else "")
                + "; a random ranking is the reference to beat.")
    a, b = st.columns([3, 1])
    methods = a.multiselect("Methods to score", methods_for("text"), DEFAULT_METHODS, key="explain.text.score_methods",
                            format_func=lambda m: METHODS[m].label)
    n = int(b.number_input("Sentences", 1, max(1, len(test.texts)), min(10, len(test.texts)), key="explain.text.n"))
    if not methods:
        return
    try:
        task = TextTask(run_id=loaded.run_id, methods=methods, n_samples=n, checkpoint=loaded.checkpoint)
        result = task_result(loaded, task)
        if result is None:
            if show_job(loaded.store, find_job(loaded.store, task), "scoring job"):
                return
            here, worker = st.columns(2)
            if here.button("Score the methods here", key="explain.text.score"):
                with st.spinner("Scoring..."):
                    result = run_task(loaded, task)
            with worker:
                queue_button(loaded.store, "Score on the worker (GPU if any)", "explain.text.job",
                             lambda: submit_task(loaded.store, task))
    except DlxError as err:
        st.error(md(err), icon=":material/error:")
        return
    if result is not None:
        _show_scores(result, "explain.text")


def _show_scores(scores: TextScores, key: str) -> None:
    titles = [title for title, _ in TEXT_METRICS.values()]
    st.dataframe(scores.table(), hide_index=True, key=f"{key}.table",
                 column_order=["rank", "method", *titles, "mean rank"],
                 column_config={t: st.column_config.NumberColumn(t, format="%.3f") for t in titles})
    grid, deletion = scores.grid_curves("deletion")
    _, insertion = scores.grid_curves("insertion")
    st.plotly_chart(faithfulness_curves(grid, deletion, insertion), key=f"{key}.curves", config=CHART)


def show_vit(loaded: LoadedRun, inputs: torch.Tensor, captions: list[str]) -> None:
    """Per-head [CLS] attention of a chosen layer and the rollout over each sample's image. The
    rollout and last-layer [CLS] attention are also image methods (dlx.explain.image.methods): drawn in
    the grid above and scored, cached and run as jobs with the Captum maps."""
    layers = sum(isinstance(m, nn.MultiheadAttention) for m in loaded.model.modules())
    st.markdown("**Attention** — what [CLS] (which the ViT classifies from) looks at, per head, and the "
                "attention rollout across all layers (Abnar & Zuidema 2020), on the patch grid. "
                "*Attention rollout* and *CLS attention, last layer* are also in the methods above, "
                "scored with the others on the Faithfulness tab.")
    layer = st.selectbox("Layer of the per-head maps", range(layers), index=layers - 1, key="explain.vit.layer")
    for i, (image, caption) in enumerate(zip(inputs, captions)):
        with loaded.lock:
            shown = vit_maps(loaded.model, image)
        grids = {"rollout": shown["rollout"].numpy(),
                 **{f"L{layer} H{h}": shown["heads"][layer, h].numpy() for h in range(shown["heads"].shape[1])}}
        st.markdown(f"**{md(caption)}**")
        picture = image.numpy()
        picture = (picture - picture.min()) / ((picture.max() - picture.min()) or 1.0)
        st.plotly_chart(charts.vit_overlays(picture, grids, cols=len(grids)), key=f"explain.vit.{i}", config=CHART)


def show_over_training(result: OverTraining, classes) -> None:
    """Each sentence coloured per kept checkpoint, the settling curve, and the attention per checkpoint."""
    st.plotly_chart(score_curves(result), key="explain.over.text_curves", config={"displayModeBar": False})
    sample = st.selectbox("Sentence", range(len(result.indices)), format_func=lambda i: f"#{result.indices[i]}",
                          key="explain.over.sentence")
    for method in result.maps:
        st.markdown(f"**{METHODS[method].label}**")
        way = METHODS[method].ways["text"]
        st.html(sentence_rows(result, method, sample, classes, way.signed(way.resolve({}))))
    st.markdown("**Attention** (last layer, heads averaged), per checkpoint")
    st.plotly_chart(attention_frames(result, sample), key="explain.over.attention", config={"displayModeBar": False})
