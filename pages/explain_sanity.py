"""The Explain page's "Sanity checks" section (Adebayo et al. 2018): run the check as a worker job, then a
badge per method and the randomisation curves. Called from pages/explain.py; computing is in
dlx.explain.sanity and its job in dlx.explain.jobs."""
from __future__ import annotations

import streamlit as st

from dlx.explain import METHODS
from dlx.explain.jobs import SanityTask, find_job, sanity_result, submit_task
from dlx.explain.models_cache import LoadedRun
from dlx.store import Store
from dlx.views.charts.sanity import MEASURE_TITLES, randomisation_curves
from dlx.views.charts.style import STATUS_BADGES
from dlx.views.text import md
from pages import queued_result

CHART = {"displayModeBar": False}
DEFAULT_METHODS = ["saliency", "guided_backprop", "integrated_gradients", "grad_cam"]


def show_sanity(store: Store, loaded: LoadedRun, runs: list, available: list[str]) -> None:
    """The controls, the job, and the verdicts and curves of the chosen check once it is stored."""
    st.markdown("**Model-parameter randomisation**: each method's maps of the trained model against its maps "
                "after re-initialising the layers, cascading from the output layer down and one layer at a "
                "time, on a seeded draw of test samples. A method whose maps stay similar once the model has "
                "forgotten what it learnt explains the input, not the model.")
    c1, c2, c3 = st.columns([3, 1, 2])
    chosen = c1.multiselect("Methods to check", available, [m for m in DEFAULT_METHODS if m in available],
                            format_func=lambda m: METHODS[m].label, key="explain.sanity.methods")
    n = c2.number_input("Samples", 2, min(1000, len(loaded.bundle.test)), min(32, len(loaded.bundle.test)),
                        key="explain.sanity.n")
    permuted = [r for r in runs if r.id != loaded.run_id and r.dataset == loaded.config.dataset
                and r.config.get("label_permutation")]
    against = c3.selectbox("Against a run on permuted labels", [None, *permuted], key="explain.sanity.against",
                           format_func=lambda r: "none" if r is None else f"{r.label} · {r.model}",
                           help="data randomisation: a run of the same data launched with "
                                "label_permutation (Launch, More options: Permute labels)")
    if not chosen:
        st.info("Choose at least one method to check.")
        return
    task = SanityTask(run_id=loaded.run_id, methods=chosen, n_samples=int(n), seed=0,
                      against=None if against is None else against.id)
    result = queued_result(store, lambda: sanity_result(loaded, task), lambda: find_job(store, task),
                           lambda: submit_task(store, task), "Run the sanity checks on the worker",
                           "explain.sanity.run", "sanity job")
    if result is not None:
        show_result(result)


def show_result(result: dict) -> None:
    """A badge per method (its Spearman correlation after full randomisation), the rule, and the curves."""
    badges = []
    for entry in result["methods"].values():
        verdict = "passed" if entry["passed"] else "failed"
        colour = STATUS_BADGES["succeeded" if entry["passed"] else "failed"]
        badges.append(f":{colour}-badge[{md(entry['label'])}: {verdict} (ρ = {entry['spearman']:.2f})]")
    st.markdown(" ".join(badges))
    st.caption(f"A method fails when the Spearman rank correlation of its absolute maps with the trained model's, "
               f"after randomising every layer, is above {result['threshold']}"
               + (" (or, against the permuted-label run, above it too)" if result.get("against") else "")
               + f". {result['samples']} samples; intervals: {result['interval']}.")
    measure = st.radio("Similarity", list(MEASURE_TITLES), horizontal=True, key="explain.sanity.measure",
                       format_func=lambda m: MEASURE_TITLES[m])
    left, right = st.columns(2)
    left.plotly_chart(randomisation_curves(result, measure, "curve"), key="explain.sanity.cascade", config=CHART)
    right.plotly_chart(randomisation_curves(result, measure, "independent"), key="explain.sanity.independent",
                       config=CHART)
    if result.get("against"):
        rows = [{"method": e["label"], "spearman |map|": e["data"]["spearman"], "spearman": e["data"]["spearman_signed"],
                 "ssim": e["data"]["ssim"], "hog": e["data"]["hog"], "passed": e["data"]["passed"]}
                for e in result["methods"].values()]
        st.markdown(f"**Data randomisation**: similarity to the maps of run #{result['against']}, trained on "
                    "permuted labels")
        st.dataframe(rows, hide_index=True, key="explain.sanity.data")
