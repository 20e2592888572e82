"""The Launch page's Search: the form's run as the base, a space per parameter, sampler, pruner, budget and
objective; the number of trials shown before launch. Called from pages/launch.py; logic in dlx/views/search."""
from typing import Any

import streamlit as st

from dlx import settings
from dlx.errors import DlxError
from dlx.jobs import ensure_worker
from dlx.search.spec import PRUNERS, SAMPLERS
from dlx.store import Store
from dlx.views import search
from dlx.views.text import md, shorten

LAST = "launch.search.last"  # the study the last press of Launch search started
SPACE_HELP = ("One parameter per line, NAME=SPEC: values (lr=1e-3,3e-3, a grid), float:LOW:HIGH, "
              "log:LOW:HIGH, int:LOW:HIGH or choice:a,b,c. Any training field, or model_options.NAME.")


def key(field: str) -> str:
    return f"launch.search.{field}"


def section(store: Store, form: dict[str, Any]) -> None:
    """The search's own fields, its trial count (or the problem), and the button."""
    st.subheader("Search", divider="gray")
    st.caption("An Optuna study proposes each trial from the ones finished; every trial is an ordinary run of "
               "the form above, with the space's values set.")
    space = st.text_area("Search space", value="lr=log:1e-4:1e-1\nbatch_size=choice:16,32,64", key=key("space"),
                         help=SPACE_HELP, height=100)
    columns = st.columns(4)
    sampler = columns[0].selectbox("Sampler", SAMPLERS, key=key("sampler"),
                                   help="tpe learns from finished trials; grid walks a space of value lists; "
                                   "cmaes needs numeric parameters.")
    pruner = columns[1].selectbox("Pruner", PRUNERS, key=key("pruner"),
                                  help="Stop trials whose epochs fall behind the others' (median, hyperband).")
    trials = columns[2].number_input("Trials", min_value=1, max_value=1000, value=12, step=1, key=key("trials"),
                                     help="The trial budget (the grid sampler: at most its size).")
    parallel = columns[3].number_input("In parallel", min_value=1, max_value=64, value=1, step=1,
                                       key=key("parallel"), help="Trials queued at once; the worker's slots "
                                       "(or the Ray cluster's) run them.")
    columns = st.columns(4)
    objective = columns[0].text_input("Objective", value="val_acc", key=key("objective"),
                                      help="A metric the runs log; several, comma-separated, make a "
                                      "multi-objective search (e.g. val_acc, parameters).")
    direction = columns[1].text_input("Direction", value="maximize", key=key("direction"),
                                      help="maximize or minimize, one per objective.")
    minutes = columns[2].number_input("Time budget (min)", min_value=0.0, value=0.0, step=5.0, key=key("minutes"),
                                      help="No new trial after this long; 0: none.")
    name = columns[3].text_input("Search name", key=key("name"), placeholder="search-DATASET-MODEL-time")
    spec = None
    try:
        spec = search.spec_from_form(store, form, search.parse_space_text(space), objective, direction, sampler,
                                     pruner, int(trials), minutes * 60 or None, int(parallel))
    except DlxError as err:
        st.error(f"**{md(err)}**  \nFix this field to launch; nothing has been queued.", icon=":material/error:")
    if spec is not None:
        st.info(f"This searches with **{md(search.trial_count(spec))}**, {sampler} sampler, pruner {pruner}.",
                icon=":material/travel_explore:")
    if st.button("Launch search", type="primary", icon=":material/travel_explore:", disabled=spec is None,
                 key=key("submit")) and spec is not None:
        try:
            study, _ = search.launch_search(store, spec, name)
        except DlxError as err:
            st.error(f"**{md(err)}**", icon=":material/error:")
        else:
            if settings.autostart_worker():
                ensure_worker(store, stop_with_parent=True)
            st.session_state[LAST] = study
            st.toast(f"Queued search {study}", icon=":material/check:")
    last = st.session_state.get(LAST)
    if last:
        st.success(f"Queued search **{md(shorten(last))}**.", icon=":material/check_circle:")
        st.page_link("pages/compare.py", label="Follow the search", icon=":material/arrow_forward:",
                     query_params={"study": last})
