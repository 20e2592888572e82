"""Runs: every run with its status and results, live while jobs run; one run's curves, log and actions."""
import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import numpy as np
import streamlit as st

from dlx.config import parse_run_id
from dlx.errors import DlxError
from dlx.jobs.supervisor import why_waiting
from dlx.store import FINAL_STATES, History, RunInfo, default_store, run_info
from dlx.store.edits import parse_tags
from dlx.training.kept import kept_checkpoints
from dlx.views import compare, live, progress, small_data
from dlx.views.charts import compare as charts_compare
from dlx.views.charts import curves as charts
from dlx.views.charts import style
from dlx.views.report import report_html
from dlx.views.run_table import PAGE_ROWS, table_rows
from dlx.views.text import md, shorten
from pages import enter_frame
from pages.whole_text import whole

enter_frame()
store = default_store()

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "pruned")
CURVES = ("train_loss", "val_loss", "train_acc", "val_acc", "test_loss", "test_acc", "epoch", "samples_per_s")
TABLE_VERSION = "runs.table_version"  # bumped to clear the table's row selection once it opened a run
CONFIRM_DELETE = "runs.confirm_delete"
CONFIRM_ARCHIVE = "runs.confirm_archive"  # the selected run ids awaiting a yes
GLANCE_RUNS = 10  # newest runs overlaid above the table when no sweep is open
GLANCE_SWEEP_RUNS = 30
GLANCE_BUCKETS = 300  # about a half-width chart's pixels
ERROR_SHOWN = 2_000  # characters of a run's error in its red box; the rest behind an expander or a download
CHARTS_PER_PAGE = 12  # metric charts drawn at once: a script may log 10,000 names; a pager reaches the others
CHARTS_PAGE = "runs.charts_page"
LISTED = 500  # newest runs in the table (its pager pages through them); Compare reaches every run
KEPT_METRICS = ("val_loss", "val_acc", "train_loss_epoch", "train_acc")  # a kept checkpoint's epoch metrics


def open_run(run_id: int) -> None:
    st.query_params["run"] = str(run_id)
    st.session_state[TABLE_VERSION] = st.session_state.get(TABLE_VERSION, 0) + 1
    st.rerun()


def close_run() -> None:
    st.query_params.pop("run", None)
    st.session_state.pop(CONFIRM_DELETE, None)


def show_all() -> None:
    st.query_params.pop("sweep", None)


def show(value) -> str:
    """A fact as people read it: 151,306 parameters, 0.1494, 2026-11-25 04:10:33 UTC."""
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S} UTC"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


# -- the list ------------------------------------------------------------------------------------
COLUMNS = {
    "id": st.column_config.NumberColumn("#", width=48, format="%d"),
    "status": st.column_config.MultiselectColumn("status", options=STATUSES,
                                                 color=[style.STATUS_COLORS[s] for s in STATUSES]),
    "lr": st.column_config.NumberColumn("lr", format="%.0e"),
    "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent",
                                                color="blue", width="small"),
    "test acc": st.column_config.NumberColumn("test acc", format="%.4f", help="on the held-out test split, "
                                              "with the best checkpoint"),
    "val acc": st.column_config.NumberColumn("val acc", format="%.4f", help="last epoch"),
    "started": st.column_config.DatetimeColumn("started", format="distance"),
}


def empty_state() -> None:
    st.info("No runs yet. Launch one: the digits data set with the small CNN learns to about 97% "
            "test accuracy in ten seconds on a laptop CPU.", icon=":material/lightbulb:")
    st.page_link("pages/launch.py", label="Launch a run", icon=":material/rocket_launch:")
    st.caption("Or from a terminal: `dlx run --dataset digits --model cnn --epochs 3`")


def sweep_banner(sweep: str, runs: list[RunInfo]) -> None:
    done = [r for r in runs if r.summary.get("test_acc") is not None]
    left, right = st.columns([4, 1], vertical_alignment="center")
    text = f"Sweep **{md(shorten(sweep))}**: {len(runs)} runs, {len(done)} finished."
    if done:
        best = max(done, key=lambda r: r.summary["test_acc"])
        text += (f" Best so far: #{best.id} {md(shorten(best.name or ''))}, "
                 f"test accuracy {best.summary['test_acc']:.4f}.")
    left.info(text, icon=":material/grid_view:")
    right.button("Show all runs", on_click=show_all, key="runs.show_all")


def glance(runs: list[RunInfo], sweep: str | None, chosen: bool = False) -> None:
    """The curves of the runs in view overlaid (the selected ones, else a sweep's, else the newest ten),
    reduced in SQL, one colour per run in every chart; redrawn with the list, so they move while runs train."""
    shown = runs[:GLANCE_SWEEP_RUNS if sweep or chosen else GLANCE_RUNS]
    ids = [run.id for run in shown]
    keys = compare.glance_keys(store, ids)
    if not keys:
        return
    colors, labels = compare.run_colors(ids), {run.id: run.label for run in shown}
    reduced = store.reduced_history(ids, keys, GLANCE_BUCKETS)
    for i, (column, key) in enumerate(zip(st.columns(len(keys)), keys)):
        column.plotly_chart(charts_compare.overlay({run_id: reduced[(run_id, key)] for run_id in ids}, labels,
                                                   colors, key, height=280, legend=i == 0),
                            key=f"runs.glance.{key}")
    whose = f"The {len(shown)} selected" if chosen else "The sweep's" if sweep else f"The newest {len(shown)}"
    st.caption(f"{whose} runs' curves, one colour per run. Compare them in depth on the Compare page.")


@st.fragment(run_every="2s")
def run_list() -> None:
    sweep = st.query_params.get("sweep")
    swept = store.list_runs(sweep=sweep) if sweep else []
    counts = Counter(r.status for r in swept) if sweep else store.status_counts()
    if not counts:
        empty_state()
        return
    chosen = st.pills("Status", STATUSES, selection_mode="multi", key="runs.status_filter",
                      format_func=lambda s: f"{s} {counts.get(s, 0)}", label_visibility="collapsed")
    left, right, _ = st.columns([1, 1, 3])
    many = left.toggle("Select several", key="runs.select_many",
                       help="Pick runs to overlay above the table, then compare, tag or archive them. "
                       "Off, selecting a row opens its run.")
    show_archived = right.toggle("Show archived runs", key="runs.show_archived",
                                 help="Archived runs are kept whole, hidden here unless this is on.")
    if sweep:
        sweep_banner(sweep, swept)
        runs = [r for r in swept if not chosen or r.status in chosen]
    else:
        runs = store.list_runs(status=chosen or None, archived=None if show_archived else False, limit=LISTED)
        if len(runs) == LISTED:  # more may match: how many, counted up to a bound ("10,000+")
            total = store.count_runs(status=chosen or None, archived=None if show_archived else False,
                                     bound=run_info.COUNT_BOUND)
            st.caption(f"The newest {LISTED} of {run_info.counted(total)} runs are listed here; Compare filters, "
                       "sorts and pages through them all.")
    if not runs:
        st.info("No runs match this filter.", icon=":material/filter_alt_off:")
        return
    curves = st.container()  # drawn once the table says which runs are selected
    frame = table_rows(store, runs)
    if sweep:
        frame = frame.drop(columns="sweep", errors="ignore")
    pages = -(-len(frame) // PAGE_ROWS)
    if pages > 1:
        page = st.number_input(f"Page (of {pages}, {PAGE_ROWS} runs each, newest first)", min_value=1,
                               max_value=pages, key="runs.page")
        frame = frame.iloc[(page - 1) * PAGE_ROWS:page * PAGE_ROWS]
    # As wide as the page, as tall as its rows (no box of ten rows to scroll), blank where a run
    # has no value (a script's run has no data set or accuracy).
    event = st.dataframe(frame, column_config=COLUMNS, hide_index=True, on_select="rerun",
                         # Off "Select several", a click on any cell of a row opens its run, as its checkbox does.
                         selection_mode="multi-row" if many else ["single-row", "single-cell"], width="stretch",
                         height="content", placeholder="",
                         key=f"runs.table.{st.session_state.get(TABLE_VERSION, 0)}.{many}")
    rows = list(event.selection.rows) or [cell[0] for cell in getattr(event.selection, "cells", [])]
    picked = [int(frame.iloc[row]["id"]) for row in rows]
    if not many:
        st.caption("Click a row to open the run: live curves, progress, log, confusion matrix and actions. "
                   "Params show where the listed runs differ.")
        if picked:
            open_run(picked[0])
    with curves:
        by_id = {run.id: run for run in runs}
        glance([by_id[run_id] for run_id in picked] if picked else runs, sweep, chosen=bool(picked))
    if many:
        selection_actions([by_id[run_id] for run_id in picked])


def selection_actions(picked: list[RunInfo]) -> None:
    """Compare, tag or archive the selected runs; archiving asks first."""
    if not picked:
        st.caption("Select runs to overlay their curves above, then compare, tag or archive them.")
        return
    ids = [run.id for run in picked]
    a, b, c = st.columns([1, 3, 1], vertical_alignment="bottom")
    if a.button(f"Compare {len(ids)}", icon=":material/compare_arrows:", key="runs.compare"):
        st.switch_page("pages/compare.py", query_params={"runs": ",".join(map(str, ids))})
    added = b.text_input("Add tags", key="runs.add_tags", placeholder="baseline, owner=ana",
                         help="Comma-separated NAME or NAME=VALUE, added to every selected run.")
    if b.button("Add", key="runs.add_tags_apply", disabled=not added.strip()):
        try:
            tags = parse_tags(added)
            for run in picked:
                store.set_tags(run.id, {**run.user_tags, **tags})
        except DlxError as err:
            st.error(md(err), icon=":material/error:")
        else:
            st.toast(f"Tagged {len(ids)} runs", icon=":material/sell:")
    if c.button(f"Archive {len(ids)}", icon=":material/archive:", key="runs.archive"):
        st.session_state[CONFIRM_ARCHIVE] = ids
    if st.session_state.get(CONFIRM_ARCHIVE) == ids:
        with st.container(border=True):
            st.warning(f"Archive {len(ids)} runs? They stay whole, hidden unless \"Show archived runs\" is on.",
                       icon=":material/warning:")
            yes, no, _ = st.columns([1, 1, 3])
            if yes.button("Yes, archive them", type="primary", key="runs.archive_confirmed"):
                store.set_archived(ids)
                st.session_state.pop(CONFIRM_ARCHIVE, None)
                st.session_state[TABLE_VERSION] = st.session_state.get(TABLE_VERSION, 0) + 1  # clear the selection
                st.rerun()
            if no.button("Keep them", key="runs.archive_kept"):
                st.session_state.pop(CONFIRM_ARCHIVE, None)
                st.rerun()


# -- one run -----------------------------------------------------------------------------------
def actions(run: RunInfo) -> None:
    # The Re-run check reads the data set and model registries; they import no torch (issue 18),
    # and a model's size is counted in a child process (dlx.models.size).
    from dlx.views import launch

    active = run.status not in FINAL_STATES
    columns = st.columns(5)
    columns[0].button("All runs", icon=":material/arrow_back:", on_click=close_run, key="runs.back")
    scripted = run.job_id is None  # tracked from a user's script: ending it asks the script to stop
    if columns[1].button("End" if scripted else "Cancel", icon=":material/stop_circle:", disabled=not active,
                         key="runs.cancel", help="Ask the script to stop on its next heartbeat; what it logged "
                         "stays." if scripted else "Stop this run; what it logged stays."):
        try:
            outcome = store.queue.cancel_run(run.id)
        except DlxError as err:
            st.error(md(err), icon=":material/error:")
        else:
            st.toast({"cancelled": f"Run #{run.id} cancelled", "cancelling": f"Stopping run #{run.id}…",
                      "finished": f"Run #{run.id} had already finished"}[outcome], icon=":material/stop_circle:")
            st.rerun()
    blocked = launch.why_not_rerun(run)
    if columns[2].button("Re-run", icon=":material/replay:", key="runs.rerun",
                         disabled=blocked is not None,
                         help=md(blocked) if blocked else "Queue a new run with exactly this config."):
        try:
            new_id = launch.rerun(store, run.id)
        except DlxError as err:
            st.error(md(err), icon=":material/error:")
        else:
            open_run(new_id)
    if columns[3].button("Edit & re-run", icon=":material/edit:", key="runs.edit",
                         disabled=blocked is not None,
                         help=md(blocked) if blocked else "Open the Launch page filled in with this config."):
        st.switch_page("pages/launch.py", query_params={"from_run": str(run.id)})
    if columns[4].button("Delete", icon=":material/delete:", disabled=active, key="runs.delete",
                         help="Cancel it first." if active else "Delete the run, its metrics and its files."):
        st.session_state[CONFIRM_DELETE] = run.id
    if blocked is not None:
        st.caption(f"Re-run is not offered: {md(blocked)}.")
    if st.session_state.get(CONFIRM_DELETE) == run.id and not active:
        confirm_delete(run)


def confirm_delete(run: RunInfo) -> None:
    with st.container(border=True):
        st.warning(f"Delete run #{run.id} for good? Its metrics, checkpoints and explanations go too.",
                   icon=":material/warning:")
        left, right, _ = st.columns([1, 1, 3])
        if left.button("Yes, delete it", type="primary", key="runs.delete_confirmed"):
            store.delete_run(run.id)
            close_run()
            st.toast(f"Deleted run #{run.id}", icon=":material/delete:")
            st.rerun()
        if right.button("Keep it", key="runs.delete_kept"):
            st.session_state.pop(CONFIRM_DELETE, None)
            st.rerun()


def headline(run: RunInfo) -> None:
    st.title(f"Run #{run.id} :{style.STATUS_BADGES[run.status]}-badge[{run.status}]")
    # Every part is typed by someone (a name, an experiment, an error's text): shown as text, cut when long.
    parts = [f"**{md(shorten(run.name))}**"] if run.name else []
    if run.dataset or run.model:
        parts.append(" / ".join(md(shorten(part)) for part in (run.dataset, run.model) if part))
    else:  # tracked from a user's script: it has no data set or model of ours to name
        parts.append("logged from a script")
    parts.append(f"experiment {md(shorten(run.experiment))}")
    if run.sweep:
        parts.append(f"sweep {md(shorten(run.sweep))}")
    st.markdown(" · ".join(parts))
    if run.status == "failed":
        st.error(f"**This run failed.** {md(shorten(run.error or 'No reason was recorded.', ERROR_SHOWN))}",
                 icon=":material/error:")
    elif run.status == "cancelled":
        st.warning(f"**This run was cancelled** ({md(shorten(run.error or 'by request', ERROR_SHOWN))}). What it "
                   "logged before stopping is kept.", icon=":material/stop_circle:")
    elif run.status == "pruned":
        st.info(f"**Its search pruned this trial** ({md(shorten(run.error or 'by its pruner', ERROR_SHOWN))}). "
                "What it logged before stopping is kept.", icon=":material/content_cut:")
    whole("the error", run.error or "", "runs.whole_error", ERROR_SHOWN)


def queued_note(run: RunInfo) -> None:
    job = store.queue.latest_job(run.id)
    text = why_waiting(store, job) if job is not None else "Queued, with no job to run it."
    st.info(text, icon=":material/hourglass_top:")


def live_state(run_id: int) -> live.LiveRun:
    """The run's curves as drawn so far, kept for this tab: each refresh reads only what is new."""
    name = f"runs.live.{run_id}"
    if name not in st.session_state:
        st.session_state[name] = live.LiveRun(store, run_id)
    return st.session_state[name]


def live_panel(run_id: int, shown_status: str, awaiting_first: bool = False) -> None:
    """Progress, headline numbers, curves and log; re-drawn every second while the run is active (more
    often while `awaiting_first` point: once it is drawn, the page reruns at the usual pace)."""
    run = store.get_run(run_id)
    if run is None or run.status != shown_status:
        st.rerun()  # the run ended (or vanished): the whole page changes, not only this panel
    state = live_state(run.id)
    page_groups, pages = chart_page(charts.metric_groups(sorted(store.latest_metrics(run.id))))
    state.refresh({*CURVES, *(key for keys in page_groups.values() for key in keys)})
    keys = state.keys()
    if awaiting_first and keys:
        st.rerun()  # the first point is here: redraw at the usual pace
    drawn = {key: state.get(key) for key in dict.fromkeys([*keys, *CURVES])}
    tails = {key: series.tail for key, series in drawn.items()}
    if run.status == "queued":
        queued_note(run)
    elif run.status == "running":
        estimate = progress.estimate(run, tails["train_loss"], tails["epoch"], tails["samples_per_s"])
        st.progress(estimate.fraction or 0.0, text=estimate.describe())
    numbers(run, tails)
    launched = run.dataset is not None
    to_epochs = charts.epoch_of(drawn, run.summary.get("steps_per_epoch"))
    # A script that logged per batch and at step=epoch, with no epoch series: each scale its own charts.
    mixed = not launched and to_epochs is None and charts.mixed_scales(charts.CURVE_KEYS, drawn)
    x_axis, smoothing = chart_controls(to_epochs is not None)
    x_of = x_placer(run, x_axis, to_epochs)
    x_title = {"step": "step", "epoch": "epoch", "wall time": "seconds since the run started"}[x_axis]
    if not mixed and ((launched and run.status in ("queued", "running"))
                      or any(k in keys for k in charts.CURVE_KEYS)):
        figure = charts.curves(drawn, run.summary.get("steps_per_epoch"), run.summary.get("epochs"),
                               smoothing=smoothing, x_of=x_of, x_title=x_title)
        st.plotly_chart(figure, width="stretch", key="runs.curves")
    if mixed:  # its loss and accuracy go with its other metrics, split by scale
        page_groups, pages = chart_page(charts.metric_groups(sorted(store.latest_metrics(run.id)), with_curves=True))
        state.refresh({key for keys in page_groups.values() for key in keys})
        drawn.update({key: state.get(key) for keys in page_groups.values() for key in keys})
    other_metrics(page_groups, pages, drawn, launched, x_of, x_title)
    try:
        log = progress.log_path(store, run.id)
    except DlxError as err:  # an index entry pointing outside the data directory is never read
        st.warning(md(err), icon=":material/gpp_bad:")
        log = None
    if log is not None:
        with st.expander("Log", expanded=run.status in ("running", "failed"), icon=":material/terminal:"):
            st.code(progress.tail(log) or "(empty so far)", language=None)


X_CHOSEN = "runs.x.chosen"  # the user picked the x axis: their choice stays


def chart_controls(has_epochs: bool) -> tuple[str, float]:
    """The charts' x axis (step, epoch where the run records epochs, wall time) and EMA smoothing (0: raw)."""
    left, right, _ = st.columns([2, 2, 3], vertical_alignment="bottom")
    axes = ("epoch", "step", "wall time") if has_epochs else ("step", "wall time")
    # The default follows the run until the user picks: a live run's first points come before its first
    # epoch ends (step then), and once it records epochs the charts move to epochs.
    if not st.session_state.get(X_CHOSEN) or st.session_state.get("runs.x") not in axes:
        st.session_state["runs.x"] = axes[0]
    x_axis = left.segmented_control("x axis", axes, key="runs.x",
                                    on_change=lambda: st.session_state.update({X_CHOSEN: True}),
                                    help="Per-epoch metrics are drawn against epochs by default.") or axes[0]
    smoothing = right.slider("Smoothing (EMA)", 0.0, 0.99, 0.6, 0.01, key="runs.smooth",
                             help="TensorBoard's smoothing of the per-step lines; the raw line stays faint.")
    return x_axis, smoothing


def x_placer(run: RunInfo, x_axis: str, to_epochs: Callable[[np.ndarray], np.ndarray] | None) -> charts.XPlacer:
    """Where a key's steps sit on the chosen axis: as logged, in epochs, or seconds since the run started."""
    if x_axis == "step":
        return lambda _key, steps: np.asarray(steps, dtype=np.float64)
    if x_axis == "epoch" and to_epochs is not None:
        return lambda _key, steps: to_epochs(steps)
    if x_axis == "wall time":
        return lambda key, steps: compare.seconds_since_start(store, run, key, steps)
    return lambda _key, steps: np.asarray(steps, dtype=np.float64)


def chart_page(groups: dict[str, list[str]]) -> tuple[dict[str, list[str]], int]:
    """The metric charts on the pager's current page (the first CHARTS_PER_PAGE at first), and how many pages.

    Read before the pager is drawn (its value from the last rerun), so only the keys drawn are read.
    """
    pages = max(1, -(-len(groups) // CHARTS_PER_PAGE))
    page = min(int(st.session_state.get(CHARTS_PAGE) or 1), pages)
    titles = list(groups)[(page - 1) * CHARTS_PER_PAGE:page * CHARTS_PER_PAGE]
    return {title: groups[title] for title in titles}, pages


def other_metrics(groups: dict[str, list[str]], pages: int, histories: dict[str, live.LiveSeries],
                  launched: bool, x_of: charts.XPlacer | None = None, x_title: str = "step") -> None:
    """Every key `curves` does not draw, grouped by name: a script's own metrics, a training's
    learning rate and throughput. A script's metrics are its main charts; a training's come second.
    A page of charts at a time: a run that logged 10,000 names gets a pager, not 10,000 charts."""
    if not groups:
        return
    if x_title == "step":  # as logged: a script's scales apart, never on one axis
        groups, titles = charts.split_scales(groups, histories)
    else:
        titles = dict.fromkeys(groups, x_title)
    figure = charts.metrics_figure(groups, histories, x_of=x_of, x_titles=titles)
    names = md(shorten(", ".join(groups), 120))
    place = st.expander(f"More metrics: {names}" + (f" (page of {pages:,})" if pages > 1 else ""),
                        icon=":material/monitoring:") if launched else st.container()
    with place:
        if pages > 1:
            st.number_input(f"Metric charts, page (of {pages:,}; {CHARTS_PER_PAGE} charts each, by name)",
                            min_value=1, max_value=pages, key=CHARTS_PAGE)
        st.plotly_chart(figure, width="stretch", key="runs.metrics")


def numbers(run: RunInfo, histories: dict[str, History]) -> None:
    """The headline numbers the run has so far, left to right, from each key's last points."""
    shown: list[tuple[str, str, str | None, str | None]] = []
    loss, val, rate = histories["train_loss"], histories["val_acc"], histories["samples_per_s"]
    if run.summary.get("test_acc") is not None:
        shown.append(("Test accuracy", f"{run.summary['test_acc']:.4f}", None,
                      "the best checkpoint on the held-out test split"))
    if len(val):
        delta = f"{val.values[-1] - val.values[-2]:+.4f}" if len(val) > 1 else None
        shown.append(("Validation accuracy", f"{val.values[-1]:.4f}", delta, "after the last epoch"))
    if len(loss):
        shown.append(("Train loss", f"{loss.values[-1]:.4f}", None, f"at step {loss.steps[-1]:,}, as logged"))
    if len(rate):
        shown.append(("Samples/s", f"{progress.throughput(rate):,.0f}", None,
                      "training throughput: the median of the last five logging windows, weighted by their steps"))
    if not shown:  # a script's run: the latest value of its first metrics
        for key in [k for k in sorted(histories) if k not in CURVES and len(histories[k])][:4]:
            last = histories[key]
            shown.append((md(shorten(key, 60)), f"{last.values[-1]:.4g}", None, f"at step {last.steps[-1]:,}"))
    if run.duration_s is not None:
        shown.append(("Duration", progress.format_duration(run.duration_s), None, None))
    for column, (name, value, delta, note) in zip(st.columns(5), shown):
        column.metric(name, value, delta=delta, help=note)


def results(run: RunInfo) -> None:
    summary = run.summary
    left, right = st.columns([3, 2])
    if summary.get("confusion_matrix"):
        with left:
            st.subheader("Confusion matrix", divider="gray")
            st.plotly_chart(charts.confusion_matrix(summary["confusion_matrix"], summary.get("classes", [])),
                            width="stretch", key="runs.confusion")
            st.caption("On the test split; colour is each true class's share, numbers are counts.")
    with right:
        st.subheader("Facts", divider="gray")
        facts = {"device": run.device, "parameters": summary.get("parameters"),
                 "training samples": summary.get("train_size"), "best epoch": summary.get("best_epoch"),
                 "epochs run": summary.get("epochs_run"), "test loss": summary.get("test_loss"),
                 "started": run.started_at, "ended": run.ended_at}
        lines = [f"**{name}** {md(shorten(show(value)))}" for name, value in facts.items() if value is not None]
        st.markdown("  \n".join(lines))


def kept_section(run: RunInfo) -> None:
    """The checkpoints kept over training (`checkpoint_every`): epoch, that epoch's metrics, file size."""
    kept = kept_checkpoints(store, run.id)
    if not kept:
        return
    st.subheader("Checkpoints over training", divider="gray")
    st.dataframe([{"epoch": k.epoch, **{name: k.metrics.get(name) for name in KEPT_METRICS},
                   "size (MB)": k.size_bytes / 1e6} for k in kept], hide_index=True, key="runs.kept",
                 column_config={name: st.column_config.NumberColumn(name, format="%.4f") for name in KEPT_METRICS})
    st.caption("Explain shows how the model's explanations change over these (Explain, Over training).")


def short_values(value):
    """A config with every long text cut (`shorten`), for showing; keys and numbers as they are."""
    if isinstance(value, dict):
        return {shorten(k): short_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [short_values(v) for v in value[:100]] + ([f"… {len(value) - 100:,} more"] if len(value) > 100 else [])
    return shorten(value) if isinstance(value, str) else value


def detail(run_id: int) -> None:
    run = store.get_run(run_id)
    if run is None:
        st.warning(f"There is no run #{run_id}: it may have been deleted.", icon=":material/search_off:")
        st.button("All runs", icon=":material/arrow_back:", on_click=close_run, key="runs.back")
        return
    headline(run)
    actions(run)
    age = (datetime.now(UTC) - run.created_at.replace(tzinfo=UTC)).total_seconds()
    every = live.refresh_every(run.status not in FINAL_STATES, bool(live_state(run.id).keys()), age)
    st.fragment(live_panel, run_every=every)(run.id, run.status, every == live.FIRST_POINT_EVERY)
    if run.status == "succeeded":
        if chance := small_data.chance_note(run):
            st.warning(md(chance), icon=":material/data_alert:")
        results(run)
    kept_section(run)
    st.download_button("Download report", partial(report_html, store, run.id), f"run-{run.id}.html",
                       "text/html", key="runs.report", icon=":material/download:", on_click="ignore",
                       help="This run as one HTML file that opens offline: config, curves, confusion "
                            "matrix, its stored explanations and scores.")
    with st.expander("Config", icon=":material/tune:"):
        st.json(short_values(run.config))  # a 10 MB param froze the page: each value cut, the whole a download away
        whole_config = json.dumps(run.config, indent=2, default=str)
        if whole_config != json.dumps(short_values(run.config), indent=2, default=str):
            st.download_button("Download the whole config (JSON)", whole_config, f"run-{run.id}-config.json",
                               "application/json", key="runs.whole_config", icon=":material/download:")


selected = st.query_params.get("run")
try:
    run_id = parse_run_id(selected) if selected else None
except DlxError as err:
    st.warning(md(err), icon=":material/search_off:")
    run_id = None
if run_id is not None:
    detail(run_id)
else:
    st.title("Runs")
    run_list()
