"""What a new user tripped over (issue 31): charts' x axes, scales and smoothing; Compare with script and
launched runs mixed; log axes and legends; the Data page's units and names; small sets; Explain's and the
sidebar's words. Runs are written straight to the store (no training), so each test takes about a second."""
from __future__ import annotations

import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dlx.data import load_dataset
from dlx.data.browse import feature_stats, feature_values, histogram
from dlx.data.registry import DATASETS
from dlx.data.tables import entry, import_table
from dlx.data.user_intake import name_from, name_or_default
from dlx.store import default_store
from dlx.tracking import start_run
from dlx.views.charts.attention import head_view
from dlx.views.charts.explain import MapCell, SampleRow, explanation_grid, wrap_title
from tests.helpers.pages import open_app, texts


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "0")
    monkeypatch.setenv("DLX_STALE_AFTER", "86400")


def chart(at: AppTest, key: str) -> dict:
    [found] = [c for c in at.get("plotly_chart") if c.proto.id and key in c.proto.id]
    return json.loads(found.proto.spec)


def values(trace: dict, name: str) -> list[float]:
    import base64

    data = trace[name]
    if isinstance(data, dict):
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"]).tolist()
    return list(data)


def launched_run(lr: float = 0.003, name: str | None = None, epochs: int = 2, per_epoch: int = 10,
                 status: str = "succeeded", params: dict | None = None, **summary) -> int:
    """A run as the training loop writes it (per-step loss, an `epoch` series, per-epoch metrics), no training."""
    run_id = default_store().create_run({"dataset": "digits", "model": "cnn", "lr": lr}, name=name)
    with start_run(run_id=run_id, handle_signals=False) as run:
        run.log_params({"lr": lr, "weight_decay": lr / 10, "batch_size": 32, "epochs": epochs, **(params or {})})
        run.update_summary({"steps_per_epoch": per_epoch, "epochs": epochs, **summary})
        run.log_series("train_loss", [2.0 / (1 + s) for s in range(epochs * per_epoch)], 1)
        for epoch in range(1, epochs + 1):
            run.log_metrics({"epoch": epoch, "val_acc": 0.5 + epoch / 10, "val_loss": 1 / epoch}, step=epoch * per_epoch)
        if status != "succeeded":
            run.set_status(status)
    return run_id


def script_run(experiment: str = "mine", lr: float = 0.1) -> int:
    """A user's script: a loss per batch (steps 0..110) and a test accuracy at step=epoch (1..5), no name."""
    with start_run(experiment=experiment, config={"lr": lr}, handle_signals=False) as run:
        run.log_series("train_loss", [1.0 / (1 + s) for s in range(111)], 0)
        for epoch in range(1, 6):
            run.log_metrics({"test_acc": epoch / 10}, step=epoch)
        return run.id


# -- charts that mislead ------------------------------------------------------------------------------
def test_a_launched_run_draws_epochs_shows_the_last_loss_and_smooths_on_request():
    run_id = launched_run()
    at = open_app("pages/runs.py", run=str(run_id))
    assert {m.label: m.value for m in at.metric}["Train loss"] == f"{2.0 / 20:.4f}"  # the last value, not smoothed
    figure = chart(at, "runs.curves")
    assert figure["layout"]["xaxis"]["title"]["text"] == "epoch"
    val = next(t for t in figure["data"] if t.get("name") == "validation" and t["xaxis"] == "x2")
    assert values(val, "x") == [1.0, 2.0]  # per-epoch metrics at epochs 1, 2: not at steps 10, 20
    raw, smoothed = figure["data"][0], figure["data"][1]
    assert raw["opacity"] < 0.5 and values(smoothed, "y") != pytest.approx(values(raw, "y"))
    at.slider(key="runs.smooth").set_value(0.0).run()
    raw, smoothed = chart(at, "runs.curves")["data"][:2]
    assert values(smoothed, "y") == pytest.approx(values(raw, "y"))
    at.segmented_control(key="runs.x").set_value("step").run()
    figure = chart(at, "runs.curves")
    assert figure["layout"]["xaxis"]["title"]["text"] == "step"
    assert values(next(t for t in figure["data"] if t.get("name") == "validation" and t["xaxis"] == "x2"),
                  "x") == [10.0, 20.0]
    at.segmented_control(key="runs.x").set_value("wall time").run()
    assert chart(at, "runs.curves")["layout"]["xaxis"]["title"]["text"] == "seconds since the run started"


def test_a_scripts_per_batch_and_per_epoch_series_never_share_an_axis():
    run_id = script_run()
    at = open_app("pages/runs.py", run=str(run_id))
    assert not [c for c in at.get("plotly_chart") if "runs.curves" in c.proto.id]
    figure = chart(at, "runs.metrics")
    by_name = {t["name"]: t for t in figure["data"]}
    titles = {a["text"]: a for a in figure["layout"]["annotations"]}
    assert set(titles) == {"acc", "loss"}
    loss_axis = "xaxis" if by_name["train_loss"]["xaxis"] == "x" else "xaxis" + by_name["train_loss"]["xaxis"][1:]
    acc_axis = "xaxis" if by_name["test_acc"]["xaxis"] == "x" else "xaxis" + by_name["test_acc"]["xaxis"][1:]
    assert loss_axis != acc_axis
    assert figure["layout"][loss_axis]["title"]["text"] == "step"
    assert figure["layout"][acc_axis]["title"]["text"].startswith("epoch")
    assert values(by_name["test_acc"], "x") == [1, 2, 3, 4, 5]


# -- compare with mixed runs ------------------------------------------------------------------------
def test_compare_with_mixed_runs_opens_on_a_shared_metric_blank_where_missing_and_labelled():
    scripts = [script_run() for _ in range(2)]
    launched = launched_run(name=None)
    at = open_app("pages/compare.py", runs=",".join(map(str, [*scripts, launched])))
    assert at.selectbox(key="compare.metric").value in {"train_loss", "test_acc"}  # all three log train_loss
    assert at.selectbox(key="compare.metric").value == "train_loss"
    table = at.dataframe[0]
    assert table.proto.placeholder == ""  # a value a run lacks is shown blank
    shown = list(table.value["run"])
    assert f"run {scripts[0]} · mine" in shown and "digits/cnn" in shown and "None/None" not in shown
    params = at.dataframe[1].value  # the differing parameters (a Styler: it carries no key here)
    cells = params.drop(columns="parameter").to_numpy().ravel().tolist()
    assert "None" not in cells and "" in cells  # the script runs have no batch_size: blank
    names = [t["name"] for t in chart(at, "compare.curves")["data"] if t.get("name")]
    assert f"run {scripts[0]} · mine" in names and not any("None" in name for name in names)


def test_parameters_over_decades_on_log_axes_varying_first_and_every_scatter_has_a_legend():
    ids = [launched_run(lr=lr, name=f"lr{lr:g}", test_acc=0.5 + i / 10, params={"note_param": 1} if i == 0 else None)
           for i, lr in enumerate((1e-4, 1e-3, 1e-2, 1e-1))]  # note_param: a parameter only one run has
    at = open_app("pages/compare.py", runs=",".join(map(str, ids)), metric="val_acc")
    assert at.segmented_control(key="compare.x").value == "epoch"  # val_acc is logged once per epoch
    assert chart(at, "compare.curves")["layout"]["xaxis"]["title"]["text"] == "epoch"
    axes = at.multiselect(key="compare.parallel_params").value
    assert axes[:2] == ["lr", "weight_decay"] and axes[-1] == "note_param"  # varying first
    dimensions = chart(at, "compare.parallel")["data"][0]["dimensions"]
    lr = next(d for d in dimensions if d["label"] == "lr (log)")
    assert lr["values"] == pytest.approx([-4, -3, -2, -1]) and lr["ticktext"][0] == "1e-4"
    at.selectbox(key="compare.scatter_param").set_value("lr").run()
    scatter = chart(at, "compare.scatter")
    assert scatter["layout"]["xaxis"]["type"] == "log" and scatter["layout"]["showlegend"] is True
    assert [t["name"] for t in scatter["data"]] == [f"#{i} lr{lr:g}" for i, lr in zip(ids, (1e-4, 1e-3, 1e-2, 1e-1))]
    at.selectbox(key="compare.group").set_value("lr").run()
    groups = [t["name"] for t in chart(at, "compare.grouped")["data"] if t.get("name")]
    assert groups == ["lr=0.0001 (1 runs)", "lr=0.001 (1 runs)", "lr=0.01 (1 runs)", "lr=0.1 (1 runs)"]
    finals = chart(at, "compare.group_finals")
    assert finals["layout"]["xaxis"]["type"] == "log" and values(finals["data"][0], "x") == [1e-4, 1e-3, 1e-2, 1e-1]
    assert values(finals["data"][0], "y") == pytest.approx([0.7] * 4)  # each run's final val_acc


# -- data --------------------------------------------------------------------------------------------
def test_a_tables_statistics_and_histogram_in_its_own_units_and_its_name_from_the_file():
    rows = "\n".join(f"{100 + i},{(i * 7) % 13 / 10},{'ab'[i % 2]}" for i in range(60))
    name = name_or_default("", "Prices 2026.csv")
    assert name == "prices-2026" and name_or_default(" mine ", "x.csv") == "mine"
    user_set, _ = import_table(default_store(), f"price,ratio,kind\n{rows}\n".encode(), name, "kind", "Prices 2026.csv")
    DATASETS[user_set.name] = entry(user_set)
    try:
        bundle = load_dataset(user_set.name)
        stats = feature_stats(bundle)
        assert stats.loc["price", "mean"] == pytest.approx(129.5) and stats.loc["price", "max"] == pytest.approx(159)
        centres = histogram(feature_values(bundle, 0)).index.tolist()
        assert all(len(repr(c)) <= 6 for c in centres), centres  # 101.5, not 101.50000762939453
        at = open_app("pages/data.py")
        at.selectbox(key="data.browsed").set_value(user_set.name).run()
        assert "in the data's own units" in texts(at) and "standardised" in texts(at)
        assert at.dataframe[-1].value.loc["price", "mean"] == pytest.approx(129.5)
    finally:
        DATASETS.pop(user_set.name, None)


@pytest.mark.parametrize("source, expected", [("My Pets.tar.gz", "my-pets"), ("/srv/data/flowers/", "flowers"),
                                              ("digits.zip", "digits-2"), ("___.csv", "data")])
def test_a_data_sets_name_defaults_from_its_archive_folder_or_file(source, expected):
    assert name_from(source) == expected


def test_the_launch_form_warns_when_the_set_is_small_for_the_epochs_and_batch_size():
    at = open_app()
    assert "Small for these settings" not in texts(at)
    at.text_input(key="launch.epochs").set_value("1").run()
    warning = texts(at)
    assert "Small for these settings" in warning and "Train for about 2 epochs" in warning


def test_a_finished_run_at_chance_level_says_so():
    run_id = launched_run(test_acc=0.1, classes=[str(i) for i in range(10)], train_size=19, total_steps=3)
    at = open_app("pages/runs.py", run=str(run_id))
    assert "at chance level for 10 classes" in texts(at) and "19 training samples" in texts(at)
    good = launched_run(test_acc=0.9, classes=[str(i) for i in range(10)])
    assert "chance level" not in texts(open_app("pages/runs.py", run=str(good)))


# -- smaller -------------------------------------------------------------------------------------------
def test_the_sidebar_counts_runs_and_updates_when_one_ends():
    """A script's run counts (the worker's jobs did not), and ending it drops the count."""
    with start_run(experiment="mine", handle_signals=False) as run:
        run.log_metrics({"loss": 1.0}, step=1)
        at = open_app()
        assert "1 running · 0 queued" in "\n".join(str(c.value) for c in at.sidebar.caption)
    at = open_app()  # AppTest draws a rerun's sidebar fragment empty: a new session reads the store again
    assert "0 running · 0 queued" in "\n".join(str(c.value) for c in at.sidebar.caption)


def test_explain_says_a_script_run_has_no_checkpoint_and_how_to_get_one():
    run_id = script_run()
    at = open_app("pages/explain.py", run=str(run_id))
    assert at.selectbox(key="explain.run").format_func(at.selectbox(key="explain.run").value) == \
        f"run {run_id} · mine · logged from a script · succeeded · no checkpoint"
    error = at.error[0].value
    assert "logged from a script and has no checkpoint" in error and "dlx run" in error
    assert "finish at least one epoch" not in error


def test_long_method_titles_wrap_above_their_own_map_and_head_view_tokens_fit():
    assert wrap_title("CLS attention, last layer", 120).count("<br>") >= 1
    image = np.zeros((3, 8, 8))
    maps = [MapCell("CLS attention, last layer (a ViT's method)", np.ones((8, 8)), False, "saliency")
            for _ in range(4)]
    rows = [SampleRow(caption="a sample", image=image, top_k=[("a", 0.9)], maps=maps) for _ in range(2)]
    figure = explanation_grid(rows, columns=3).to_dict()["layout"]
    # every title sits above its own map's top and below the bottom of the row above it
    tops = sorted({round(figure[k]["domain"][1], 4) for k in figure if k.startswith("yaxis")})
    bottoms = sorted({round(figure[k]["domain"][0], 4) for k in figure if k.startswith("yaxis")})
    for note in figure["annotations"]:
        lines = note["text"].count("<br>") + 1
        top = min(t for t in tops if t <= note["y"] + 1e-6) if any(t <= note["y"] + 1e-6 for t in tops) else 0
        above = [b for b in bottoms if b > note["y"]]
        height_px = figure["height"] - figure["margin"]["t"] - figure["margin"]["b"]
        assert not above or (min(above) - note["y"]) * height_px >= 14 * lines, note["text"]
        assert note["y"] >= top
    tokens = ["[CLS]", "extraordinarily", "##long", "[SEP]"]
    view = head_view(np.full((1, 1, 4, 4), 0.25), tokens, 0, [0]).to_dict()["layout"]
    low, high = view["xaxis"]["range"]
    assert low <= -0.045 * len("extraordinarily") and high >= 1 + 0.045 * len("extraordinarily")


def test_a_run_followed_live_moves_to_epochs_once_it_records_them_until_the_user_picks():
    run_id = launched_run()
    at = open_app("pages/runs.py", run=str(run_id))
    at.session_state["runs.x"] = "step"  # what the page showed before the run's first epoch ended
    at.run()
    assert chart(at, "runs.curves")["layout"]["xaxis"]["title"]["text"] == "epoch"
    at.segmented_control(key="runs.x").set_value("step").run()
    at.run()  # the user's choice stays on later refreshes
    assert chart(at, "runs.curves")["layout"]["xaxis"]["title"]["text"] == "step"
