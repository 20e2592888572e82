"""The Compare page's Searches: a study's figures, its trials with their runs, the best one a click from its
run page, and Stop / Extend. Called from pages/compare.py; figures in dlx/views/charts/search."""
import pandas as pd
import streamlit as st

from dlx import settings
from dlx.errors import DlxError
from dlx.jobs import ensure_worker
from dlx.store import Store
from dlx.views import search
from dlx.views.charts import search as charts
from dlx.views.text import md, shorten

CHOSEN = "compare.study"


def section(store: Store) -> None:
    """Shown when the store holds a search's runs (or ?study= names one); Optuna is imported only then."""
    wanted = st.query_params.get("study", "")
    if not wanted and store.count_runs(tag="study") == 0:
        return
    names = search.study_names(store)
    if not names:
        return
    with st.expander("Searches", expanded=bool(wanted), icon=":material/travel_explore:"):
        index = names.index(wanted) if wanted in names else 0
        if wanted and wanted not in names:
            st.warning(f"There is no search named {md(shorten(wanted))}; showing the newest.",
                       icon=":material/search_off:")
        name = st.selectbox("Search", names, index=index, key=CHOSEN)
        if name != wanted:
            st.query_params["study"] = name
        try:
            study_view(store, name)
        except DlxError as err:
            st.error(md(err), icon=":material/error:")


def study_view(store: Store, name: str) -> None:
    found = search.result(store, name)
    states = pd.Series([t["state"] for t in found.trials]).value_counts().to_dict() if found.trials else {}
    budget = found.spec.budget()
    going = "stopped" if found.stopped else ("running" if found.active else "finished")
    st.markdown(f"**{md(shorten(name))}** · {going} · {len(found.trials)} trials"
                f"{f' of {budget}' if budget else ''} · "
                + ", ".join(f"{count} {state}" for state, count in states.items())
                + f" · {', '.join(f'{d} {o}' for o, d in zip(found.spec.objectives, found.spec.directions))}")
    if found.best is not None:
        value = found.best["value"]
        shown = ", ".join(f"{v:.4g}" for v in value) if isinstance(value, list) else f"{value:.4g}"
        st.page_link("pages/runs.py", label=f"Best: run #{found.best['run']} ({shown}) with "
                     + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in found.best["params"].items()),
                     icon=":material/emoji_events:", query_params={"run": str(found.best["run"])})
    controls(store, name, found.active, found.stopped)
    left, right = st.columns(2)
    for i, (title, figure) in enumerate(charts.figures(found)):
        with (left if i % 2 == 0 else right):
            st.markdown(f"**{title}**")
            if isinstance(figure, str):
                st.caption(figure)
            else:
                st.plotly_chart(figure, key=f"compare.study.{i}", width="stretch")
    rows = [{"trial": t["number"], "run": t["run"], "state": t["state"],
             "value": t["value"] if not isinstance(t["value"], list) else ", ".join(f"{v:.4g}" for v in t["value"])}
            for t in found.trials]
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def controls(store: Store, name: str, active: bool, stopped: bool) -> None:
    left, middle, right = st.columns([1, 1, 2], vertical_alignment="bottom")
    if left.button("Stop the search", icon=":material/stop_circle:", key="compare.study.stop",
                   disabled=stopped or not active, help="Ask no more trials; the running ones finish."):
        search.stop(store, name)
        st.rerun()
    more = right.number_input("Trials to add", min_value=1, max_value=1000, value=4, step=1,
                              key="compare.study.more")
    if middle.button("Extend", icon=":material/add_circle:", key="compare.study.extend",
                     help="Add trials to the budget (and lift a stop); the search goes on."):
        search.extend(store, name, int(more))
        if settings.autostart_worker():
            ensure_worker(store, stop_with_parent=True)
        st.toast(f"Search {name}: {int(more)} more trials", icon=":material/check:")
        st.rerun()
