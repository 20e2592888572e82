"""Launch: pick a data set and a model, adjust training, queue one run or a sweep."""
from typing import Any

import streamlit as st

from dlx import settings
from dlx.data import DATASETS
from dlx.data.registry import files_problem, missing_files
from dlx.errors import DlxError
from dlx.jobs import ensure_worker, standby
from dlx.models import MODELS
from dlx.store import default_store
from dlx.views import launch, small_data
from dlx.views.text import md, shorten
from pages import enter_frame, launch_search

enter_frame()
store = default_store()

SAVED = "launch.saved"  # the last form, kept while other pages are open (widget state is not)
PREFILLED = "launch.prefilled"  # the run id the form was last filled from
LAST = "launch.last"  # what the last press of Launch queued
FIELDS = ("dataset", "model", "optimizer", "schedule", "lr", "batch_size", "epochs", "seed",
          "weight_decay", "momentum", "grad_clip", "early_stopping_patience", "early_stopping_metric",
          "device", "amp", "val_fraction", "test_fraction", "download", "label_permutation", "experiment",
          "name", "checkpoint_every", "keep_checkpoints", "label_noise")
SWEEP_HELP = "One value, or several separated by commas to sweep (one run per combination), e.g. "


def key(field: str) -> str:
    return f"launch.{field}"


def option_key(name: str) -> str:
    return f"launch.option.{name}"


def load_form(values: dict[str, Any]) -> None:
    """Put values into the widgets' state; only ever before the widgets are drawn (or in callbacks)."""
    for field, value in launch.to_form(values).items():
        if field == "model_options":
            for name, option in value.items():
                st.session_state[option_key(name)] = option
        else:
            st.session_state[key(field)] = value


def on_dataset_change() -> None:
    dataset = st.session_state[key("dataset")]
    models = launch.models_for(dataset)
    model = st.session_state.get(key("model"))
    load_form(launch.recipe(dataset, model if model in models else launch.default_model(dataset)))


def on_model_change() -> None:
    load_form(launch.recipe(st.session_state[key("dataset")], st.session_state[key("model")]))


def reset_to_defaults() -> None:
    st.query_params.pop("from_run", None)
    st.session_state.pop(PREFILLED, None)
    dataset = st.session_state[key("dataset")]
    load_form(launch.defaults_for(dataset, launch.default_model(dataset)))


def fill_form() -> None:
    """Fill the widgets on a session's first visit, from a run to re-run (?from_run=N), or as left."""
    source = st.query_params.get("from_run")
    if source and st.session_state.get(PREFILLED) != source:
        try:
            run = store.get_run(int(source)) if source.isdigit() else None
            if run is None:
                raise DlxError(f"There is no run #{source} to start from", field="run")
            load_form(launch.from_run(run))
            st.session_state[PREFILLED] = source
            return
        except DlxError as err:
            st.query_params.pop("from_run")
            st.warning(f"{md(err)}; the form shows the defaults instead.", icon=":material/search_off:")
    if key("dataset") not in st.session_state:
        load_form(st.session_state.get(SAVED) or launch.defaults_for(*launch.first_choice()))


def collect() -> dict[str, Any]:
    """The form as values (the launch module parses and validates them)."""
    form = {field: st.session_state[key(field)] for field in FIELDS}
    form["model_options"] = {name: st.session_state[option_key(name)]
                             for name in launch.model_option_defaults(form["model"])}
    return form


def data_and_model() -> None:
    left, right = st.columns(2)
    missing = {name for name in DATASETS if missing_files(name)}
    with left:
        dataset = st.selectbox("Data set", list(DATASETS), key=key("dataset"), on_change=on_dataset_change,
                               format_func=lambda name: name + (" (files missing)" if name in missing else ""),
                               help="Every registered data set; built-in ones work offline.")
        st.caption(md(DATASETS[dataset].description))
        if dataset in missing:
            st.warning(f"{md(files_problem(dataset))}.", icon=":material/folder_off:")
    with right:
        options = launch.models_for(dataset)
        model = st.selectbox("Model", options, key=key("model"), on_change=on_model_change,
                             help="The registered models that take this kind of data.")
        st.caption(MODELS[model].description)


def training() -> None:
    st.subheader("Training", divider="gray")
    left, right = st.columns(2)
    left.pills("Optimizer", launch.CHOICE_FIELDS["optimizer"], selection_mode="multi", key=key("optimizer"),
               help="Choose several to sweep over optimizers.")
    right.pills("Schedule", launch.CHOICE_FIELDS["schedule"], selection_mode="multi", key=key("schedule"),
                help="How the learning rate changes over training; one-cycle learns fastest here.")
    columns = st.columns(4)
    columns[0].text_input("Learning rate", key=key("lr"), help=SWEEP_HELP + "1e-3, 3e-3")
    columns[1].text_input("Batch size", key=key("batch_size"), help=SWEEP_HELP + "16, 32, 64")
    columns[2].text_input("Epochs", key=key("epochs"), help=SWEEP_HELP + "3, 10")
    columns[3].text_input("Seed", key=key("seed"), help=SWEEP_HELP + "0, 1, 2 (repeats to see the spread)")


def more_options(model: str) -> None:
    with st.expander("More options: regularisation, early stopping, device, splits, model"):
        columns = st.columns(4)
        columns[0].text_input("Weight decay", key=key("weight_decay"), help=SWEEP_HELP + "0, 1e-4")
        columns[1].text_input("Momentum", key=key("momentum"), help="SGD only. " + SWEEP_HELP + "0.9, 0.99")
        columns[2].number_input("Gradient clipping", key=key("grad_clip"), min_value=0.0, step=0.5,
                                placeholder="off", help="Clip the gradient norm to this; empty: off.")
        columns[3].selectbox("Device", device_options(), key=key("device"),
                             help="auto: the first GPU when there is one, else the CPU.")
        columns = st.columns(4)
        columns[0].number_input("Early stopping patience", key=key("early_stopping_patience"),
                                min_value=1, step=1, placeholder="off",
                                help="Stop after this many epochs without improvement; empty: off.")
        columns[1].selectbox("Early stopping metric", ["val_loss", "val_acc"],
                             key=key("early_stopping_metric"),
                             help="Also picks the best checkpoint, the one tested at the end.")
        columns[2].number_input("Validation fraction", key=key("val_fraction"), min_value=0.0,
                                max_value=1.0, step=0.05, format="%.2f")
        columns[3].number_input("Test fraction", key=key("test_fraction"), min_value=0.0, max_value=1.0,
                                step=0.05, format="%.2f")
        columns = st.columns(4)
        columns[0].toggle("Mixed precision (bf16)", key=key("amp"), help="Used on CUDA only.")
        columns[1].toggle("Allow download", key=key("download"),
                          help="torchvision data sets: download the files when they are missing "
                          "(needs network).")
        columns[2].number_input("Checkpoint every (epochs)", key=key("checkpoint_every"), min_value=0, step=1,
                                help="Keep a checkpoint every N epochs (and the final one's) to explain the "
                                     "model over training on the Explain page; 0: only best and last.")
        columns[3].number_input("Checkpoints kept", key=key("keep_checkpoints"), min_value=0, step=1,
                                help="At most this many per-epoch checkpoints, the oldest thinned first; "
                                     "0: keep all.")
        columns = st.columns(4)
        columns[0].toggle("Permute labels", key=key("label_permutation"),
                          help="Train on a seeded permutation of the training labels (validation and test "
                          "keep the true ones): it trains to chance, the data randomisation sanity check.")
        columns[1].number_input("Label noise", key=key("label_noise"), min_value=0.0, max_value=0.99, step=0.05,
                                format="%.2f",
                                help="Flip this fraction of the training labels (seeded) to another class; the "
                                     "flipped ones are kept with the run, so the Explain page's Influence tab can "
                                     "score how well self-influence finds them. 0: off.")
        defaults = launch.model_option_defaults(model)
        if defaults:
            st.markdown(f"**{model} options**")
            for column, (name, default) in zip(st.columns(max(4, len(defaults))), defaults.items()):
                column.number_input(name, key=option_key(name), step=1 if isinstance(default, int) else 0.05,
                                    help=f"default {default}")


def naming() -> None:
    left, right = st.columns(2)
    left.text_input("Experiment", key=key("experiment"), help="Runs are grouped by experiment.")
    right.text_input("Run name", key=key("name"), placeholder="optional",
                     help="Shown in the runs table; a sweep adds what each run varies.")


def device_options() -> list[str]:
    choices = launch.device_choices()
    current = st.session_state.get(key("device"))
    return choices if current in choices or current is None else [*choices, current]


def submit_button(form: dict[str, Any]) -> None:
    """The count (and any problem) right above the button, so nothing is queued by surprise."""
    st.subheader("Launch", divider="gray")
    planned: launch.Plan | None = None
    error: DlxError | None = None
    try:
        planned = launch.plan(store, form)
    except DlxError as err:
        error = err
    sweep_name = None
    if planned is None:
        st.error(f"**{md(error)}**  \nFix this field to launch; nothing has been queued.",
                 icon=":material/error:")
    elif planned.count > 1:
        st.info(f"This queues **{planned.count} runs**, one per combination: {md(planned.describe())}.",
                icon=":material/grid_view:")
        typed = st.text_input("Sweep name", key=key("sweep"),
                              placeholder=launch.default_sweep_name(planned.base),
                              help="The sweep's runs are grouped under this name; empty: the placeholder.")
        sweep_name = (typed or "").strip() or None
    else:
        st.caption(f"This queues 1 run: {md(form['dataset'])} / {md(form['model'])}.")
    if planned is not None and (small := small_data.small_set_warning(planned.configs)):
        st.warning(md(small), icon=":material/data_alert:")
    if form["device"] not in launch.device_choices():
        st.warning(f"This machine has no {md(form['device'])}; only a worker on a machine with it will run "
                   "this.", icon=":material/memory:")
    count = planned.count if planned else 0
    pressed = st.button(f"Launch {count} runs" if count > 1 else "Launch", type="primary",
                        icon=":material/rocket_launch:", disabled=planned is None, key="launch.submit")
    if pressed and planned is not None:
        run_ids = launch.submit_plan(store, planned, sweep_name)
        if settings.autostart_worker():
            ensure_worker(store, stop_with_parent=True)  # it stops with the app
        first = store.get_run(run_ids[0])
        sweep = first.sweep if first is not None and len(run_ids) > 1 else None
        st.session_state[LAST] = {"runs": run_ids, "sweep": sweep}
        if len(run_ids) == 1:  # one run: follow it now, not after a click on its link (issue 30)
            st.switch_page("pages/runs.py", query_params={"run": str(run_ids[0])})
        st.toast(f"Queued {len(run_ids)} runs", icon=":material/check:")
    last_launch()


def last_launch() -> None:
    last = st.session_state.get(LAST)
    if not last:
        return
    runs = last["runs"]
    if last["sweep"]:
        st.success(f"Queued sweep **{md(shorten(last['sweep']))}**: runs #{runs[0]} to #{runs[-1]}.",
                   icon=":material/check_circle:")
        st.page_link("pages/runs.py", label=f"Follow the sweep's {len(runs)} runs",
                     icon=":material/arrow_forward:", query_params={"sweep": last["sweep"]})
    else:
        st.success(f"Queued run #{runs[0]}.", icon=":material/check_circle:")
        st.page_link("pages/runs.py", label=f"Follow run #{runs[0]}", icon=":material/arrow_forward:",
                     query_params={"run": str(runs[0])})


standby.request()  # whoever fills this form launches soon: the workers get a job process ready
st.title("Launch a training run")
st.caption("Several values in a field (or several choices) make a sweep: one run per combination, "
           "queued together.")
fill_form()
source = st.session_state.get(PREFILLED)
if source and st.query_params.get("from_run") == source:
    left, right = st.columns([4, 1], vertical_alignment="center")
    left.info(f"Filled in from run #{source}: change what you like, then launch.", icon=":material/edit:")
    right.button("Start from defaults", on_click=reset_to_defaults, key="launch.reset")
data_and_model()
training()
more_options(st.session_state[key("model")])
naming()
form = collect()
st.session_state[SAVED] = form
if st.segmented_control("Launch as", ["Sweep", "Search"], default="Sweep", key="launch.mode",
                        help="Sweep: one run per combination of the values above. Search: an Optuna study "
                        "proposes the trials.") == "Search":
    launch_search.section(store, form)
else:
    submit_button(form)
