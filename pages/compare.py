"""Compare: filter, sort and page runs in SQL, pick several, and see their curves, differing parameters and finals.

Everything the view shows is in the URL (?filter=...&sort=...&runs=1,2,3&metric=val_acc), so a link reopens it.
"""
import pandas as pd
import streamlit as st

from dlx.errors import DlxError
from dlx.store import FINAL_STATES, RunInfo, default_store, run_info
from dlx.store.edits import parse_tags
from dlx.views import compare, export
from dlx.views.charts import compare as charts_compare
from dlx.views.charts import curves as charts
from dlx.views.charts import style
from dlx.views.text import md, shorten
from pages import compare_search, enter_frame
from pages.whole_text import READABLE, whole

enter_frame()
store = default_store()

PAGE_SIZES = (25, 50, 100, 500)
BUCKETS = 800  # about a chart's width in pixels: one bucket per pixel
DEFAULT_SELECTION = 10
PARALLEL_AXES = 6  # parameters on the parallel-coordinates chart at first (the varying ones); more on request


def url_value(name: str, default: str = "") -> str:
    return st.query_params.get(name, default)


def keep_in_url(**values: str) -> None:
    """The view's state in the query string (empty values removed), so the address is shareable."""
    for name, value in values.items():
        if value:
            st.query_params[name] = value
        else:
            st.query_params.pop(name, None)


def url_runs() -> list[int]:
    return [int(part) for part in url_value("runs").split(",") if part.strip().isdigit()]


CONFIRM = "compare.confirm"  # ("archive" | "delete", run ids) awaiting a yes


def manage(selected: list[RunInfo]) -> None:
    """Archive, restore or delete the compared runs; archive and delete ask first, naming how many."""
    ids = [run.id for run in selected]
    active = [run.id for run in selected if run.status not in FINAL_STATES]
    a, b, c, _ = st.columns([1, 1, 1, 2])
    if a.button(f"Archive {len(ids)} runs", icon=":material/archive:", key="compare.archive"):
        st.session_state[CONFIRM] = ("archive", ids)
    if b.button("Restore", icon=":material/unarchive:", key="compare.restore",
                disabled=not any(run.archived for run in selected), help="Un-archive the archived ones."):
        store.set_archived(ids, archived=False)
        st.rerun()
    if c.button(f"Delete {len(ids)} runs", icon=":material/delete:", key="compare.delete", disabled=bool(active),
                help=f"Cancel the active runs first (#{', #'.join(map(str, active))})." if active else
                "Delete the runs, their metrics and their files."):
        st.session_state[CONFIRM] = ("delete", ids)
    pending = st.session_state.get(CONFIRM)
    if not pending or pending[1] != ids:
        return
    action, _ = pending
    with st.container(border=True):
        st.warning(f"Archive {len(ids)} runs? They stay whole, hidden unless \"Show archived runs\" is on."
                   if action == "archive" else
                   f"Delete {len(ids)} runs for good? Their metrics, checkpoints and explanations go too.",
                   icon=":material/warning:")
        yes, no, _ = st.columns([1, 1, 3])
        if yes.button(f"Yes, {action} them", type="primary", key="compare.confirmed"):
            if action == "archive":
                store.set_archived(ids)
            else:
                for run_id in ids:
                    store.delete_run(run_id)
            st.session_state.pop(CONFIRM, None)
            st.query_params.pop("runs", None)
            st.toast(f"{action.capitalize()}d {len(ids)} runs", icon=":material/check:")
            st.rerun()
        if no.button("Keep them", key="compare.kept"):
            st.session_state.pop(CONFIRM, None)
            st.rerun()


st.title("Compare runs")
compare_search.section(store)
left, middle, right, size = st.columns([5, 2, 1, 1], vertical_alignment="bottom")
expression = left.text_input("Filter", value=url_value("filter"), key="compare.filter",
                             placeholder='lr < 0.01 and val_acc > 0.9 or status = "failed"',
                             help="Run fields (status, model, dataset, experiment, sweep, id, created), parameters "
                             "and final metrics; and, or, not, parentheses, = != < <= > >=, in (...); text in "
                             "quotes; tag.NAME, param.NAME, metric.NAME to be explicit.")
sort = middle.text_input("Sort by", value=url_value("sort"), key="compare.sort", placeholder="newest first",
                         help="A run field, a parameter or a metric (its final value).")
descending = right.toggle("Descending", value=url_value("desc", "1") == "1", key="compare.desc")
page_size = size.selectbox("Per page", PAGE_SIZES, index=1, key="compare.page_size")
show_archived = st.toggle("Show archived runs", value=url_value("archived") == "1", key="compare.archived",
                          help="Archived runs are kept whole but hidden from lists unless this is on.")
archived = None if show_archived else False
keep_in_url(filter=expression.strip(), sort=sort.strip(), desc="" if descending else "0",
            archived="1" if show_archived else "")

try:
    total = store.count_runs(filter=expression, archived=archived, bound=run_info.COUNT_BOUND)  # "10,000+"
    pages = max(1, -(-total // page_size))  # past the bound: up to the page that holds its first run beyond
    page = st.number_input("Page", 1, pages, min(int(url_value("page", "1") or 1), pages), key="compare.page") \
        if pages > 1 else 1
    keep_in_url(page="" if page == 1 else str(page))
    runs = store.list_runs(filter=expression, sort=sort.strip() or None, descending=descending,
                           limit=page_size, offset=(page - 1) * page_size, archived=archived)
except DlxError as err:
    st.error(md(err), icon=":material/filter_alt_off:")
    st.stop()

if not runs:
    st.info("No runs match." if total == 0 and expression.strip() else "No runs yet: launch one first.",
            icon=":material/search_off:")
    st.stop()

differing_on_page, page_table = compare.param_table(runs)
metric_keys = compare.shared_metric_keys(store, [run.id for run in runs])[:6]
frame = pd.DataFrame({
    # Cells are text (no Markdown), cut to `shorten`'s length: a 10 MB param or note froze the page.
    "id": [run.id for run in runs], "run": [shorten(run.title) for run in runs],
    "status": [run.status for run in runs], "experiment": [shorten(run.experiment) for run in runs],
    "tags": [shorten(", ".join(k if not v else f"{k}={v}" for k, v in run.user_tags.items())) for run in runs],
    "note": [shorten(run.note) for run in runs],
    **{shorten(key, 80): [shorten(v) if v is not None else "" for v in page_table[key]]
       for key in differing_on_page[:8]},
    # A metric named like a parameter (lr: the param, and the schedule's last value) gets its own column.
    **{shorten(key if key not in page_table else f"{key} (final)", 80): [run.metrics.get(key) for run in runs]
       for key in metric_keys},
})
st.caption(f"Runs {(page - 1) * page_size + 1}–{(page - 1) * page_size + len(runs)} of {run_info.counted(total)}. "
           "Select rows to compare them; with none selected, the ones in the link or the first ten are compared.")
event = st.dataframe(frame, hide_index=True, on_select="rerun", selection_mode="multi-row", width="stretch",
                     key="compare.table", placeholder="",  # a value a run lacks is blank, not "None"
                     height=min(400, 38 + 35 * len(frame)))
picked = [int(frame.iloc[row]["id"]) for row in event.selection.rows]
selected_ids = picked or url_runs() or [run.id for run in runs[:DEFAULT_SELECTION]]
keep_in_url(runs=",".join(map(str, selected_ids)) if picked or url_runs() else "")
selected = store.list_runs(ids=selected_ids, limit=None)
selected.sort(key=lambda run: selected_ids.index(run.id))
if not selected:
    st.info("The runs in the link no longer exist.", icon=":material/search_off:")
    st.stop()
colors = compare.run_colors([run.id for run in selected])
labels = {run.id: shorten(run.label, 80) for run in selected}

st.subheader("Curves")
keys = compare.glance_keys(store, [run.id for run in selected], count=None)  # accuracy and loss first
if keys:
    chosen = url_value("metric") or compare.default_metric(store, [run.id for run in selected])
    a, b, c, d = st.columns([3, 2, 2, 1], vertical_alignment="bottom")
    metric = a.selectbox("Metric", keys, index=keys.index(chosen) if chosen in keys else 0, key="compare.metric",
                         help="Opens on a metric most of these runs log.")
    x_default = compare.default_x(store, [run.id for run in selected], metric)
    x_axis = b.segmented_control("x", compare.X_AXES, key="compare.x",
                                 default=url_value("x") if url_value("x") in compare.X_AXES else x_default,
                                 help="Per-epoch metrics open against epochs.") or x_default
    smoothing = c.slider("Smoothing (EMA)", 0.0, 0.99, float(url_value("smooth", "0") or 0), 0.01,
                         key="compare.smooth")
    log_y = d.toggle("Log scale", value=url_value("log") == "1", key="compare.log")
    keep_in_url(metric=metric, smooth="" if smoothing == 0 else f"{smoothing:g}", log="1" if log_y else "",
                x="" if x_axis == x_default else x_axis)
    by_id = {run.id: run for run in selected}
    zoom = compare.parse_zoom(url_value("zoom")) if x_axis == "step" else None
    reduced = {run_id: r for (run_id, _), r in
               store.reduced_history([run.id for run in selected], [metric], BUCKETS, step_range=zoom).items()}
    x_title = {"step": "step", "epoch": "epoch", "wall time": "seconds since the first point"}[x_axis]
    figure = charts_compare.overlay(reduced, labels, colors, metric, smoothing, log_y, x_title=x_title,
                                    x_of=lambda run_id, steps: compare.x_positions(store, by_id[run_id], metric, steps,
                                                                                   x_axis))
    if x_axis == "step":  # a box drawn over the chart fetches that range again at full resolution
        figure.update_layout(dragmode="select", selectdirection="h")
        chart_event = st.plotly_chart(figure, key="compare.curves", on_select="rerun", selection_mode="box")
        boxed = compare.zoom_from_box(chart_event.selection.box) if chart_event and chart_event.selection else None
        if boxed is not None and boxed != zoom:
            keep_in_url(zoom=f"{boxed[0]}-{boxed[1]}")
            st.rerun()
    else:
        st.plotly_chart(figure, key="compare.curves")
    if zoom is not None:
        st.caption(f"Zoomed to steps {zoom[0]:,}–{zoom[1]:,}, read again from the database at full resolution.")
        if st.button("Show every step", icon=":material/zoom_out_map:", key="compare.unzoom"):
            keep_in_url(zoom="")
            st.rerun()
    st.caption(f"Each line is a run's value at the end of each of up to {BUCKETS} step buckets; the band is "
               "the bucket's min to max, so spikes show at any zoom."
               + (" Draw a box over the chart to zoom into those steps." if x_axis == "step" else "")
               + (" Runs that logged no epochs are left out." if x_axis == "epoch" else ""))
    group_params = compare.param_table(selected)[0]
    if group_params and len(selected) > 2:
        chosen_group = url_value("group")
        group = st.selectbox("Group by a parameter (mean and min–max band per value)", ["(none)", *group_params],
                             index=group_params.index(chosen_group) + 1 if chosen_group in group_params else 0,
                             key="compare.group")
        keep_in_url(group="" if group == "(none)" else group)
        if group != "(none)":
            curves = compare.group_curves(reduced, compare.groups_by(selected, group))
            st.plotly_chart(charts_compare.grouped(curves, metric, log_y), key="compare.grouped")
            grouped_values = compare.param_table(selected)[1][group]
            if compare.numeric(grouped_values):  # the groups' finals over the parameter (log where it spans decades)
                st.plotly_chart(charts_compare.group_finals(selected, grouped_values, group, metric),
                                key="compare.group_finals")
else:
    st.info("These runs have logged no metrics yet.", icon=":material/show_chart:")

st.subheader("Parameters")
differing, table = compare.param_table(selected)
if differing:
    params = pd.DataFrame({"parameter": [shorten(k) for k in differing],
                           **{labels[run.id]: ["" if table[k][i] is None else shorten(table[k][i]) for k in differing]
                              for i, run in enumerate(selected)}})
    st.dataframe(params.style.set_properties(**{"background-color": style.HIGHLIGHT}),
                 hide_index=True, width="stretch", key="compare.params")
    st.caption(f"{len(differing)} of {len(table)} parameters differ between these runs: only those are shown.")
else:
    st.caption(f"All {len(table)} parameters are the same in these runs.")

if differing and keys:
    finals = [key for key in keys if any(run.metrics.get(key) is not None for run in selected)]
    if finals:
        target = st.selectbox("Final metric", finals, key="compare.final",
                              index=finals.index(metric) if metric in finals else 0)
        one, two = st.columns([3, 2])
        ordered = compare.by_variation(differing, table)
        axes = one.multiselect("Parallel coordinates: parameters", ordered, default=ordered[:PARALLEL_AXES],
                               key="compare.parallel_params",
                               help="The parameters these runs vary come first; add more here.")
        if len(ordered) > len(axes):
            one.caption(f"{len(axes)} of the {len(ordered)} differing parameters shown; add more above.")
        one.plotly_chart(charts_compare.parallel_coordinates(selected, table, axes, target),
                         key="compare.parallel")
        param = two.selectbox("Parameter", ordered, key="compare.scatter_param")
        two.plotly_chart(charts_compare.scatter(selected, table[param], param, target, colors),
                         key="compare.scatter")

matrices = [run for run in selected if run.summary.get("confusion_matrix")]
if matrices:
    st.subheader("Confusion matrices")
    for start in range(0, len(matrices), 3):
        for column, run in zip(st.columns(3), matrices[start:start + 3]):
            column.text(run.label)
            column.plotly_chart(charts.confusion_matrix(run.summary["confusion_matrix"], run.summary.get("classes", []),
                                                        height=320), key=f"compare.confusion.{run.id}")
    st.caption("On each run's test split; colour is each true class's share, numbers are counts.")

st.subheader("Tags and notes")
editing = st.selectbox("Run", selected, format_func=lambda run: run.label, key="compare.edit_run")
with st.form(f"compare.edit.{editing.id}", border=False):
    tags_text = st.text_input("Tags", value=", ".join(k if not v else f"{k}={v}" for k, v in editing.user_tags.items()),
                              placeholder="baseline, owner=ana", help="Comma-separated; NAME or NAME=VALUE. "
                              "Filter on them with tag.NAME.")
    editable = len(editing.note) <= READABLE  # a longer note is not sent whole to be edited here
    note_text = st.text_area("Note", value=editing.note, height=80) if editable else editing.note
    if not editable:
        st.caption(f"Note: {md(shorten(editing.note))} (too long to edit here; kept as it is)")
    if st.form_submit_button("Save tags and note", icon=":material/save:"):
        try:
            store.set_tags(editing.id, parse_tags(tags_text))
            store.set_note(editing.id, note_text)
        except DlxError as err:
            st.error(md(err), icon=":material/error:")
        else:
            st.toast(f"Saved tags and note of {md(editing.label)}", icon=":material/save:")
            st.rerun()
whole("the note", editing.note, f"compare.whole_note.{editing.id}", READABLE)

manage(selected)

st.subheader("Export")
if st.toggle("Prepare an export of these runs (parameters, final metrics, full histories)", key="compare.export"):
    data = export.selection(store, [run.id for run in selected])
    x, y = st.columns(2)
    x.download_button("Download CSV", export.to_csv(data), "runs.csv", "text/csv", key="compare.csv")
    y.download_button("Download JSON", export.to_json(data), "runs.json", "application/json", key="compare.json")
