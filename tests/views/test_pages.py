"""The app's pages under streamlit.testing: they render in every state, and their buttons do what they say."""
from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from db.engine import dispose_all
from db.models import Artifact, utcnow
from db.models import Worker as WorkerRow
from dlx import settings
from dlx.config import parse_config
from dlx.store import default_store
from dlx.tracking import Run
from dlx.views import launch
from tests.helpers.browser import stop_spawned_workers
from tests.helpers.pages import APP, open_app, texts
from tests.helpers.processes import train_in_process

DIVERGED = "loss diverged at step 12 (loss=nan); try a lower learning rate or gradient clipping"


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    """Pages only: nothing picks up (or reaps) the jobs these tests queue, so they stay as made."""
    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "0")
    monkeypatch.setenv("DLX_STALE_AFTER", "86400")


def queued_configs() -> list[dict]:
    return [run.config for run in default_store().list_runs(status=["queued"])]


@pytest.fixture(scope="module")
def every_status_home(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    """A data directory with one run in each status, made once through the real queue and trainer."""
    home = tmp_path_factory.mktemp("every-status") / "dlx-data"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DLX_HOME", str(home))
        ids = {"succeeded": train_in_process({"dataset": "digits", "model": "cnn", "epochs": 1})}
        config = parse_config({"dataset": "digits", "model": "cnn", "epochs": 2})
        ids["running"], _ = default_store().queue.submit(config)
        default_store().queue.claim("test-worker", cpu_only=True)
        run = Run(default_store(), ids["running"])
        run.update_summary({"total_steps": 68, "steps_per_epoch": 34, "epochs": 2})
        for step in range(1, 21):
            run.log_metrics({"train_loss": 2.3 / step}, step)
        run.log_metrics({"samples_per_s": 5000.0}, 20)
        run.finish("running")
        ids["failed"], job = default_store().queue.submit(config)
        default_store().queue.claim("test-worker", cpu_only=True)
        default_store().queue.finish_job(job, "failed", DIVERGED)
        ids["cancelled"], _ = default_store().queue.submit(config)
        default_store().queue.cancel_run(ids["cancelled"])
        ids["queued"], _ = default_store().queue.submit(config)
        assert {s: default_store().get_run(i).status for s, i in ids.items()} == {s: s for s in ids}
        dispose_all()
    return home, ids


@pytest.fixture
def every_status(every_status_home, dlx_home) -> dict[str, int]:
    """This test's own copy of the every-status data directory: status -> run id."""
    template, ids = every_status_home
    shutil.copytree(template, dlx_home, dirs_exist_ok=True)
    return ids


# -- rendering ------------------------------------------------------------------------------------
def test_launch_page_renders_on_an_empty_store_with_digits_and_the_cnn():
    at = open_app()
    assert at.title[0].value == "Launch a training run"
    assert at.selectbox(key="launch.dataset").value == "digits"
    assert at.selectbox(key="launch.model").value == "cnn"
    assert at.text_input(key="launch.lr").value == "0.003"
    assert at.text_input(key="launch.epochs").value == "3"
    assert at.button(key="launch.submit").label == "Launch"


def test_runs_page_on_an_empty_store_points_to_launch():
    at = open_app("pages/runs.py")
    assert "No runs yet" in texts(at)
    assert any(link.proto.page.endswith("launch") for link in at.get("page_link"))


def test_sidebar_shows_data_directory_database_worker_and_device():
    at = open_app()
    sidebar = "\n".join(str(e.value) for kind in ("markdown", "caption", "code")
                        for e in getattr(at.sidebar, kind))
    assert str(settings.home()) in sidebar
    assert "dlx.sqlite" in sidebar
    assert "not running" in sidebar and "0 running · 0 queued" in sidebar
    assert "CPU" in sidebar or "cuda" in sidebar
    assert at.sidebar.button(key="sidebar.start_worker")


def test_sidebar_says_which_executor_and_how_many_nodes_and_gpus_the_workers_offer():
    """Heartbeat rows as two Ray workers on one 3-node, 4-GPU cluster and a local worker write them."""
    beats = {"head:11": {"executor": "ray", "nodes": 3, "gpus": 4, "cpu_slots": 24},
             "head:12": {"executor": "ray", "nodes": 3, "gpus": 4, "cpu_slots": 24},
             "laptop:13": {"executor": "local", "gpus": 0, "cpu_slots": 1}}
    with default_store().session() as s, s.begin():
        s.add_all(WorkerRow(id=worker_id, heartbeat_at=utcnow(), info=info) for worker_id, info in beats.items())
    at = open_app()
    sidebar = "\n".join(str(e.value) for e in at.sidebar.caption)
    assert "3 workers" in sidebar
    assert "Executor local, ray · 4 nodes · 4 GPUs" in sidebar  # the cluster counted once, the laptop once
    assert "dlx.sqlite" in "\n".join(str(e.value) for e in at.sidebar.code)


def test_sidebar_shows_no_executor_line_without_a_live_worker():
    at = open_app()
    assert not any("Executor" in str(e.value) for e in at.sidebar.caption)


def test_a_database_that_cannot_be_opened_gets_a_message_not_a_traceback(monkeypatch, tmp_path):
    monkeypatch.setenv("DLX_DATABASE_URL", f"sqlite:///{tmp_path}/missing/folder/dlx.sqlite")
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception
    assert "cannot be opened" in at.error[0].value and "DLX_DATABASE_URL" in at.error[0].value


def test_the_frame_writes_nothing_of_its_own_above_a_page():
    at = open_app()  # a bare expression in the frame is written into the page by Streamlit's magic
    assert not [element.value for element in at.main.get("code")]


@pytest.mark.parametrize("variable, value", [("DLX_STALE_AFTER", "abc"), ("DLX_STALE_AFTER", "1"), ("DLX_CPU_JOBS", "two")])
def test_a_bad_setting_is_named_once_not_raised_from_every_page(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception
    assert len(at.error) == 1 and variable in at.error[0].value


def test_runs_table_lists_runs_of_every_status(every_status):
    at = open_app("pages/runs.py")
    table = at.dataframe[0].value
    assert sorted(table["id"]) == sorted(every_status.values())
    shown = {row["id"]: row["status"][0] for _, row in table.iterrows()}
    assert shown == {run_id: status for status, run_id in every_status.items()}
    succeeded = table[table["id"] == every_status["succeeded"]].iloc[0]
    assert succeeded["test acc"] > 0.5 and succeeded["progress"] == 1.0
    running = table[table["id"] == every_status["running"]].iloc[0]
    assert running["progress"] == pytest.approx(20 / 68)


def test_status_filter_shows_only_the_chosen_statuses(every_status):
    at = open_app("pages/runs.py")
    at.pills(key="runs.status_filter").set_value(["failed", "cancelled"]).run()
    assert sorted(at.dataframe[0].value["id"]) == sorted([every_status["failed"], every_status["cancelled"]])


@pytest.mark.parametrize("status", ["queued", "running", "succeeded", "failed", "cancelled"])
def test_run_detail_renders_in_every_status(every_status, status):
    at = open_app("pages/runs.py", run=str(every_status[status]))
    assert at.title[0].value.startswith(f"Run #{every_status[status]}")
    assert status in at.title[0].value
    assert at.expander  # config (and log, where there is one)


def test_failed_run_shows_its_reason_at_the_top(every_status):
    at = open_app("pages/runs.py", run=str(every_status["failed"]))
    assert DIVERGED in at.error[0].value
    drawn = [node.type for node in at.main]
    assert drawn.index("error") < drawn.index("button")  # above the actions, curves and log


def test_running_run_shows_progress_with_steps_and_rate(every_status):
    at = open_app("pages/runs.py", run=str(every_status["running"]))
    bar = at.get("progress")[0]
    assert bar.proto.value == round(100 * 20 / 68)
    assert "step 20 of 68" in bar.proto.text and "5,000 samples/s" in bar.proto.text
    assert at.get("plotly_chart")  # the live curves


def test_succeeded_run_shows_test_accuracy_curves_and_confusion_matrix(every_status):
    at = open_app("pages/runs.py", run=str(every_status["succeeded"]))
    metrics = {m.label: m.value for m in at.metric}
    assert float(metrics["Test accuracy"]) > 0.5
    charts = at.get("plotly_chart")
    assert len(charts) == 3  # curves, the other metrics (lr, throughput...) and the confusion matrix
    assert "Heatmap" in charts[2].proto.spec or "heatmap" in charts[2].proto.spec
    more = at.expander[0]
    assert more.label.startswith("More metrics:") and "lr" in more.label and "samples_per_s" in more.label


def test_sweep_link_lists_only_that_sweeps_runs():
    store = default_store()
    form = {**launch.to_form(launch.defaults_for("digits", "cnn")), "seed": "0, 1"}
    swept = launch.submit_plan(store, launch.plan(default_store(), form), sweep="seeds")
    store.queue.submit(parse_config({}))  # outside the sweep
    at = open_app("pages/runs.py", sweep="seeds")
    assert sorted(at.dataframe[0].value["id"]) == sorted(swept)
    assert "Sweep **seeds**: 2 runs, 0 finished." in at.info[0].value
    at.button(key="runs.show_all").click().run()
    assert len(at.dataframe[0].value) == 3


def test_queued_run_says_how_many_are_ahead_and_that_no_worker_runs(every_status):
    at = open_app("pages/runs.py", run=str(every_status["queued"]))
    assert "Waiting for a worker" in texts(at) and "No worker is running" in texts(at)


def test_missing_run_says_so():
    at = open_app("pages/runs.py", run="999")
    assert "There is no run #999" in texts(at)


# -- launching ------------------------------------------------------------------------------------
def test_launch_queues_one_run_with_the_form_values_and_follows_it_at_once():
    at = open_app()
    at.text_input(key="launch.lr").set_value("0.01")
    at.text_input(key="launch.epochs").set_value("2").run()
    at.button(key="launch.submit").click().run()
    assert not at.exception
    configs = queued_configs()
    assert len(configs) == 1
    assert (configs[0]["dataset"], configs[0]["model"], configs[0]["lr"], configs[0]["epochs"]) == \
        ("digits", "cnn", 0.01, 2)
    run_id = default_store().list_runs()[0].id
    # the same click opened the run's live page: no link to press, no poll to wait for
    assert at.query_params["run"] == str(run_id)
    assert any(f"Run #{run_id}" in str(t.value) for t in at.title) and "Waiting for a worker" in texts(at)
    at.switch_page("pages/launch.py").run()  # back on Launch, the run it queued is still named and linked
    assert f"Queued run #{run_id}" in at.success[0].value
    link = at.get("page_link")[-1].proto
    assert link.page.endswith("runs") and f"run={run_id}" in link.query_string


def test_sweep_of_two_by_three_values_shows_the_count_and_queues_six_runs():
    at = open_app()
    at.text_input(key="launch.lr").set_value("1e-3, 3e-3")
    at.text_input(key="launch.batch_size").set_value("16, 32, 64").run()
    assert "**6 runs**" in at.info[0].value
    assert at.button(key="launch.submit").label == "Launch 6 runs"
    at.text_input(key="launch.sweep").set_value("lr-vs-batch").run()
    at.button(key="launch.submit").click().run()
    runs = default_store().list_runs(status=["queued"])
    assert len(runs) == 6
    assert {r.sweep for r in runs} == {"lr-vs-batch"}
    assert sorted((r.config["lr"], r.config["batch_size"]) for r in runs) == \
        sorted((lr, b) for lr in (1e-3, 3e-3) for b in (16, 32, 64))
    assert {r.name for r in runs} >= {"lr=0.001 batch_size=16", "lr=0.003 batch_size=64"}


def test_sweep_over_optimizers_chosen_together():
    at = open_app()
    at.pills(key="launch.optimizer").set_value(["adam", "sgd"])
    at.text_input(key="launch.seed").set_value("0, 1").run()
    assert "**4 runs**" in at.info[0].value
    at.button(key="launch.submit").click().run()
    assert sorted((c["optimizer"], c["seed"]) for c in queued_configs()) == \
        [("adam", 0), ("adam", 1), ("sgd", 0), ("sgd", 1)]


@pytest.mark.parametrize("field, value, message", [
    ("launch.lr", "-1", "Learning rate: input should be greater than 0"),
    ("launch.batch_size", "abc", "Batch size: 'abc' is not a number"),
    ("launch.epochs", "2.5", "Epochs: '2.5' is not a whole number"),
])
def test_invalid_value_names_the_field_and_queues_nothing(field, value, message):
    at = open_app()
    at.text_input(key=field).set_value(value).run()
    assert message in at.error[0].value
    assert at.button(key="launch.submit").disabled  # a browser cannot press it
    assert default_store().list_runs() == []


def test_choosing_a_table_data_set_switches_to_a_model_and_defaults_that_fit():
    at = open_app()
    at.selectbox(key="launch.dataset").select("iris").run()
    assert at.selectbox(key="launch.model").value == "mlp"
    assert at.selectbox(key="launch.model").options == ["mlp"]
    assert (at.text_input(key="launch.lr").value, at.text_input(key="launch.epochs").value) == ("0.01", "30")


def test_edit_and_rerun_opens_launch_filled_from_the_run(every_status):
    run_id = default_store().queue.submit(parse_config({"dataset": "wine", "model": "mlp", "lr": 0.02, "epochs": 7,
                                  "optimizer": "sgd", "name": "tuned"}))[0]
    at = open_app("pages/runs.py", run=str(run_id))
    at.button(key="runs.edit").click().run()
    assert not at.exception
    assert at.title[0].value == "Launch a training run"
    assert at.selectbox(key="launch.dataset").value == "wine"
    assert at.text_input(key="launch.lr").value == "0.02"
    assert at.text_input(key="launch.epochs").value == "7"
    assert at.pills(key="launch.optimizer").value == ["sgd"]
    assert at.text_input(key="launch.name").value == "tuned"
    assert f"Filled in from run #{run_id}" in texts(at)


def test_starting_from_a_missing_run_says_so_and_shows_the_defaults():
    at = open_app(from_run="404")
    assert "There is no run #404 to start from" in at.warning[0].value
    assert at.text_input(key="launch.lr").value == "0.003"


# -- actions on a run -----------------------------------------------------------------------------
def test_cancel_button_cancels_a_queued_run(every_status):
    at = open_app("pages/runs.py", run=str(every_status["queued"]))
    at.button(key="runs.cancel").click().run()
    assert default_store().get_run(every_status["queued"]).status == "cancelled"
    assert "cancelled" in at.title[0].value


def test_delete_asks_first_then_removes_the_run_and_its_files(every_status):
    store = default_store()
    run_id = every_status["succeeded"]
    folder = settings.home() / "runs" / str(run_id)
    log = settings.logs_dir() / "job-7.log"
    log.write_text("epoch 1/1: ...\n")
    with default_store().session() as s, s.begin():
        s.add(Artifact(run_id=run_id, kind="log", name="job-7", path="logs/job-7.log"))
    assert folder.exists()
    at = open_app("pages/runs.py", run=str(run_id))
    at.button(key="runs.delete").click().run()
    assert store.get_run(run_id) is not None  # only asked so far
    assert "Delete run" in at.warning[0].value
    at.button(key="runs.delete_confirmed").click().run()
    assert store.get_run(run_id) is None and not folder.exists() and not log.exists()
    assert at.title[0].value == "Runs" and "run" not in at.query_params


def test_delete_is_refused_while_a_run_is_active(every_status):
    at = open_app("pages/runs.py", run=str(every_status["running"]))
    assert at.button(key="runs.delete").disabled


def test_rerun_queues_the_same_config_and_opens_it(every_status):
    store = default_store()
    at = open_app("pages/runs.py", run=str(every_status["succeeded"]))
    at.button(key="runs.rerun").click().run()
    new = store.list_runs()[0]
    assert new.status == "queued" and new.id not in every_status.values()
    assert new.config == {**store.get_run(every_status["succeeded"]).config, "sweep": None}
    assert at.title[0].value.startswith(f"Run #{new.id}")


# -- issue 13: what a new user trips over ---------------------------------------------------------
def values(array) -> np.ndarray:
    """A trace's numbers as Plotly's JSON carries them: a list, or base64 bytes with a dtype."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array)


def readme_example() -> int:
    """The README's tracking example, as a user's script runs it."""
    import dlx

    with dlx.start_run(experiment="mine", config={"lr": 0.1}, handle_signals=False) as run:
        run.log_params({"lr": 0.1})
        for step in range(100):
            run.log_metrics({"loss": 1 / (step + 1)}, step=step)
    return run.id


def test_a_script_runs_page_draws_every_metric_it_logs_under_a_header_that_fits():
    run_id = readme_example()
    at = open_app("pages/runs.py", run=str(run_id))
    [chart] = at.get("plotly_chart")
    [trace] = json.loads(chart.proto.spec)["data"]
    assert trace["name"] == "loss"
    assert np.allclose(values(trace["y"]), 1 / np.arange(1, 101))  # all 100 points
    header = at.markdown[0].value
    assert "experiment mine" in header and "logged from a script" in header
    assert "None" not in texts(at)
    assert {m.label: m.value for m in at.metric}["loss"] == "0.01"  # its last value, up top


def test_rerun_is_not_offered_for_a_script_run_and_the_page_says_why():
    store = default_store()
    run_id = readme_example()
    at = open_app("pages/runs.py", run=str(run_id))
    assert at.button(key="runs.rerun").disabled and at.button(key="runs.edit").disabled
    assert "Re-run is not offered: run #1 was tracked from a script" in texts(at)
    assert store.list_runs() != [] and len(store.list_runs()) == 1


def test_runs_table_shows_what_varies_and_leaves_missing_values_blank():
    script = readme_example()
    store = default_store()
    form = {**launch.to_form(launch.defaults_for("digits", "cnn")), "seed": "0, 1"}
    swept = launch.submit_plan(store, launch.plan(store, form), sweep="seeds")
    at = open_app("pages/runs.py")
    table = at.dataframe[0].value
    assert list(table["id"]) == [*reversed(swept), script]
    assert {"seed", "experiment", "lr", "sweep"} <= set(table.columns)  # the script's own lr differs
    assert not {"optimizer", "batch", "epochs", "schedule"} & set(table.columns)  # the same where present
    assert list(table["seed"][:2]) == [1, 0] and list(table["lr"]) == [3e-3, 3e-3, 0.1]
    row = table[table["id"] == script].iloc[0]
    assert row["experiment"] == "mine" and pd.isna(row["data set"]) and pd.isna(row["model"])
    assert at.dataframe[0].proto.HasField("placeholder") and at.dataframe[0].proto.placeholder == ""


def test_runs_table_pages_past_fifty_runs_newest_first():
    from dlx.views.run_table import PAGE_ROWS

    config = parse_config({})
    ids = [default_store().queue.submit(config)[0] for _ in range(PAGE_ROWS + 1)]
    at = open_app("pages/runs.py")
    assert list(at.dataframe[0].value["id"]) == ids[:0:-1]  # the newest 50
    at.number_input(key="runs.page").set_value(2).run()
    assert list(at.dataframe[0].value["id"]) == [ids[0]]


def test_launch_marks_a_data_set_without_files_and_refuses_it_naming_the_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("DLX_DATASETS", str(tmp_path))
    at = open_app()
    assert "mnist (files missing)" in at.selectbox(key="launch.dataset").options
    assert "digits" in at.selectbox(key="launch.dataset").options
    at.selectbox(key="launch.dataset").set_value("mnist").run()
    assert f"looked in {tmp_path}/MNIST/raw" in at.warning[0].value
    assert "Data set: mnist files are missing" in at.error[0].value
    assert at.button(key="launch.submit").disabled
    assert default_store().list_runs() == []


def test_the_form_and_the_command_line_queue_the_same_patterns_defaults(capsys):
    from dlx.cli import main

    at = open_app()
    at.selectbox(key="launch.dataset").set_value("patterns").run()
    assert (at.text_input(key="launch.lr").value, at.text_input(key="launch.epochs").value) == ("0.005", "8")
    at.button(key="launch.submit").click().run()
    assert main(["run", "--dataset", "patterns", "--no-worker"]) == 0
    form_run, cli_run = sorted(default_store().list_runs(), key=lambda r: r.id)
    assert form_run.config == cli_run.config


# -- the worker ------------------------------------------------------------------------------------
def test_app_starts_a_worker_on_a_sessions_first_visit_only(monkeypatch, dlx_home):
    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "1")
    try:
        at = open_app()
        marker = dlx_home / "worker.spawn"
        assert marker.exists()
        first = marker.read_text()
        at.run()
        assert marker.read_text() == first  # a rerun spawns nothing
    finally:
        stop_spawned_workers(dlx_home)
