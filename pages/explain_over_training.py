"""The Explain page's "Over training" view: the same samples under each checkpoint a run kept, as a job."""
from __future__ import annotations

import streamlit as st

from dlx.explain import METHODS, methods_for
from dlx.explain.models_cache import LoadedRun
from dlx.explain.over_training import MAX_SAMPLES, OverTraining, OverTrainingTask, find_job, submit_task, task_result
from dlx.store import Store
from dlx.training.kept import KeptCheckpoint
from dlx.views.charts import over_training as charts
from dlx.views.text import md
from pages import explain_text, queued_result


def checkpoint_label(name: str) -> str:
    return f"epoch {int(name.removeprefix('epoch-'))}" if name.startswith("epoch-") else name


def pick_checkpoint(kept: list[KeptCheckpoint], run_id: int) -> str:
    """A slider over the kept epochs, then last and best (the default, as without kept checkpoints)."""
    if not kept:
        return "best"
    return st.select_slider("Checkpoint", [*(k.name for k in kept), "last", "best"], value="best",
                            format_func=checkpoint_label, key=f"explain.checkpoint.{run_id}",
                            help="explain the model as it was after this epoch (kept with checkpoint_every), "
                                 "or its last or best checkpoint")


def _result(store: Store, task: OverTrainingTask) -> OverTraining | None:
    """The stored result; else its job's progress or error, and a button that queues it."""
    return queued_result(store, lambda: task_result(store, task), lambda: find_job(store, task),
                         lambda: submit_task(store, task),
                         "Explain these samples under every kept checkpoint on the worker", "explain.over.submit",
                         "over-training job")


def show(store: Store, loaded: LoadedRun, kept: list[KeptCheckpoint], methods: list[str], indices: list[int] | None,
         baseline: str = "zeros", params: dict[str, dict] | None = None) -> None:
    """Images and tables: maps per checkpoint side by side, scores and the settling curve against the epoch."""
    st.markdown(f"**{len(kept)} kept checkpoints** (epochs {', '.join(str(k.epoch) for k in kept)}): the samples "
                "above explained under each; the class explained is the final checkpoint's prediction.")
    if not methods or not indices:
        st.info("Choose at least one method and some test samples (over training explains test samples).")
        return
    task = OverTrainingTask(run_id=loaded.run_id, methods=methods, indices=indices[:MAX_SAMPLES], baseline=baseline,
                            params=params or {})
    result = _result(store, task)
    if result is None:
        return
    st.plotly_chart(charts.score_curves(result), key="explain.over.curves", config={"displayModeBar": False})
    shown = st.selectbox("Maps of", methods, format_func=lambda m: METHODS[m].label, key="explain.over.method")
    st.plotly_chart(charts.map_rows(result, shown, loaded.meta.classes), key="explain.over.maps",
                    config={"displayModeBar": False})


def show_text(store: Store, loaded: LoadedRun, kept: list[KeptCheckpoint]) -> None:
    """Text: token attributions and attention per checkpoint, for a few test sentences."""
    st.subheader("Over training", divider="gray")
    text = st.text_input("Test sentences (indices)", "0, 1, 2", key="explain.over.sentences")
    try:
        indices = [int(part) for part in text.replace(",", " ").split()]
    except ValueError:
        st.error(md(f"sentences: {text!r} is not a list of whole numbers such as 0, 5, 12"))
        return
    methods = st.multiselect("Methods", methods_for("text"), explain_text.DEFAULT_METHODS[:1],
                             key="explain.over.text_methods", format_func=lambda m: METHODS[m].label)
    st.markdown(f"**{len(kept)} kept checkpoints** (epochs {', '.join(str(k.epoch) for k in kept)}).")
    if not methods or not indices:
        st.info("Choose at least one method and one sentence.")
        return
    task = OverTrainingTask(run_id=loaded.run_id, methods=methods, indices=indices[:MAX_SAMPLES], text=True)
    result = _result(store, task)
    if result is not None:
        explain_text.show_over_training(result, loaded.meta.classes)
