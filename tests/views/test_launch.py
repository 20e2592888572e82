"""The Launch page's logic without Streamlit: defaults that fit, sweep fields, plans, submission, progress."""
from __future__ import annotations

import inspect
import typing
from pathlib import Path

import numpy as np
import pytest
import torchvision.datasets

from dlx.config import parse_config
from dlx.data import torchvision_sets
from dlx.errors import DlxError
from dlx.models import MODELS
from dlx.store import History, default_store
from dlx.training.fits import launch_config
from dlx.views import launch, progress
from tests.helpers.pages import form


def test_defaults_fit_each_data_set_and_model():
    assert launch.first_choice() == ("digits", "cnn")
    digits = launch.defaults_for("digits", "cnn")
    recipe = [digits[key] for key in ("optimizer", "lr", "schedule", "batch_size", "epochs")]
    assert recipe == ["adam", 3e-3, "onecycle", 32, 3]
    assert launch.defaults_for("iris", "mlp")["lr"] == 1e-2
    assert launch.defaults_for("breast_cancer", "mlp")["epochs"] == 20  # the data set's own entry wins
    assert launch.models_for("wine") == ["mlp"]
    for dataset in ("digits", "iris"):
        for model in launch.models_for(dataset):
            launch_config(launch.defaults_for(dataset, model))  # every pairing offered is valid


def test_model_options_come_from_the_builder_signature():
    assert launch.model_option_defaults("cnn") == {"width": 32, "hidden": 128, "dropout": 0.25}
    values = launch.to_form({"dataset": "digits", "model": "cnn", "model_options": {"dropout": 0}})
    assert values["model_options"] == {"width": 32, "hidden": 128, "dropout": 0.0}


@pytest.mark.parametrize("text, values", [("1e-3, 3e-3", [1e-3, 3e-3]), ("0.01", [0.01]),
                                          ("1e-3; 1e-3 , 2e-3,", [1e-3, 2e-3])])
def test_sweep_fields_read_comma_separated_numbers(text, values):
    assert launch.parse_values("lr", text) == values


@pytest.mark.parametrize("field, text, message", [
    ("lr", "fast", "Learning rate: 'fast' is not a number"),
    ("epochs", "1.5", "Epochs: '1.5' is not a whole number"),
    ("batch_size", " ", "Batch size: enter a value"),
    ("lr", "inf", "Learning rate: 'inf' is not a finite number"),
])
def test_bad_sweep_values_name_the_field(field, text, message):
    with pytest.raises(DlxError, match=message) as caught:
        launch.parse_values(field, text)
    assert caught.value.field == field


def test_plan_counts_every_combination_and_says_where_it_comes_from():
    planned = launch.plan(default_store(), form(lr="1e-3, 3e-3", batch_size="16, 32, 64", optimizer=["adam", "sgd"]))
    assert planned.count == 12
    assert planned.describe() == "Optimizer (2) × Learning rate (2) × Batch size (3)"
    assert launch.plan(default_store(), form()).count == 1


def test_plan_rejects_bad_values_with_the_field_label():
    with pytest.raises(DlxError, match="Learning rate: input should be greater than 0"):
        launch.plan(default_store(), form(lr="0.01, -1"))
    with pytest.raises(DlxError, match="Optimizer: choose at least one"):
        launch.plan(default_store(), form(optimizer=[]))
    with pytest.raises(DlxError, match=r"sweep: 125 runs is more than 100"):
        launch.plan(default_store(), form(lr="1,2,3,4,5", seed="1,2,3,4,5", epochs="1,2,3,4,5"))


def test_submitting_a_sweep_groups_and_names_its_runs():
    store = default_store()
    run_ids = launch.submit_plan(store, launch.plan(store, form(lr="1e-3, 3e-3", name="probe")), sweep="lr-probe")
    runs = [store.get_run(i) for i in run_ids]
    assert [(r.sweep, r.name, r.config["lr"]) for r in runs] == \
        [("lr-probe", "probe lr=0.001", 1e-3), ("lr-probe", "probe lr=0.003", 3e-3)]


def test_a_single_run_is_not_a_sweep():
    store = default_store()
    (run_id,) = launch.submit_plan(store, launch.plan(store, form()), sweep="ignored")
    assert store.get_run(run_id).sweep is None


def test_rerun_and_edit_start_from_the_run_outside_its_sweep():
    store = default_store()
    run_id = launch.submit_plan(store, launch.plan(store, form(seed="0, 1")))[0]
    values = launch.from_run(store.get_run(run_id))
    assert values["sweep"] is None and values["name"] is None and values["seed"] == "0"
    again = store.get_run(launch.rerun(store, run_id))
    assert again.sweep is None and again.config["seed"] == 0 and again.status == "queued"


def test_progress_estimates_fraction_rate_and_time_left():
    store = default_store()
    run_id, _ = store.queue.submit(parse_config({"epochs": 2}))
    run = store.get_run(run_id)
    run.summary = {"total_steps": 100, "epochs": 2}
    losses = History(np.arange(10, 51, 10), np.ones(5), np.array([0.0, 1.0, 2.0, 3.0, 4.0]))
    epochs = History(np.array([50]), np.array([1.0]), np.array([4.0]))
    rates = History(np.array([10, 20, 30]), np.array([300.0, 3200.0, 3000.0]), np.zeros(3))
    state = progress.estimate(run, losses, epochs, rates, now=4.0)
    assert state.fraction == 0.5 and state.samples_per_s == 3000.0
    assert state.eta_s == pytest.approx(5.0)  # 10 steps a second since the second window
    assert state.describe() == "Epoch 2 of 2 · step 50 of 100 · 3,000 samples/s · about 5.0 s left"


def test_throughput_weighs_each_window_by_its_steps():
    """A 3 s run on a busy machine: three short slow windows at the start, two long fast ones."""
    cold_start = History(np.array([6, 12, 16, 83, 111]), np.array([354.8, 222.3, 192.7, 4216.0, 7075.1]), np.zeros(5))
    assert progress.throughput(cold_start) == 4216.0  # a plain median said 354.8
    steady = History(np.array([10, 20, 30]), np.array([300.0, 3200.0, 3000.0]), np.zeros(3))
    assert progress.throughput(steady) == 3000.0  # equal windows: the median, warm-up outvoted
    older = History(np.arange(1, 9) * 10, np.array([1.0, 1, 1, 9, 9, 9, 9, 9]), np.zeros(8))
    assert progress.throughput(older) == 9.0  # only the last five windows count
    assert progress.throughput(History(np.array([5, 5]), np.array([10.0, 30.0]), np.zeros(2))) == 20.0
    assert progress.throughput(History(np.array([], dtype=np.int64), np.array([]), np.array([]))) is None


def test_progress_before_training_starts_says_so():
    store = default_store()
    run_id, _ = store.queue.submit(parse_config({}))
    empty = History(np.array([], dtype=np.int64), np.array([]), np.array([]))
    state = progress.estimate(store.get_run(run_id), empty, empty, empty)
    assert state.fraction is None and state.describe().startswith("Starting")


@pytest.mark.parametrize("seconds, text", [(0.84, "0.8 s"), (42, "42 s"), (192, "3 min 12 s"),
                                           (7500, "2 h 5 min")])
def test_durations_read_like_people_say_them(seconds, text):
    assert progress.format_duration(seconds) == text


def test_log_tail_reads_the_last_lines_of_a_big_log(tmp_path):
    log = tmp_path / "job.log"
    log.write_text("".join(f"line {i}\n" for i in range(100_000)))
    assert progress.tail(log, lines=3).splitlines() == ["line 99997", "line 99998", "line 99999"]
    assert progress.tail(tmp_path / "missing.log") == ""


def test_progress_once_training_starts_but_before_the_first_window():
    store = default_store()
    run_id, _ = store.queue.submit(parse_config({}))
    run = store.get_run(run_id)
    run.summary = {"total_steps": 111, "epochs": 3}
    empty = History(np.array([], dtype=np.int64), np.array([]), np.array([]))
    state = progress.estimate(run, empty, empty, empty)
    assert state.fraction == 0.0
    assert state.describe() == "Epoch 1 of 3 · training the first steps of 111"


# -- issue 13: what a new user trips over --------------------------------------------------------
def test_the_patterns_defaults_learn_the_data_set():
    """3 epochs of the image defaults stopped at 0.37 test accuracy; the patterns entry reaches 0.9."""
    from tests.helpers.processes import train_in_process

    run_id = train_in_process(launch.defaults_for("patterns", "cnn"))
    assert default_store().get_run(run_id).summary["test_acc"] >= 0.9


def test_a_script_run_is_not_relaunched_and_says_why():
    store = default_store()
    from dlx.tracking import start_run

    with start_run(experiment="mine", config={"lr": 0.1}, handle_signals=False) as run:
        run.log_metrics({"loss": 1.0}, step=0)
    reason = launch.why_not_rerun(store.get_run(run.id))
    assert reason and "tracked from a script" in reason and "no data set" in reason
    with pytest.raises(DlxError, match="tracked from a script") as caught:
        launch.rerun(store, run.id)
    assert caught.value.field == "run"
    with pytest.raises(DlxError, match="tracked from a script"):
        launch.from_run(store.get_run(run.id))
    assert [r.id for r in store.list_runs()] == [run.id]  # no digits training was queued


def test_a_launched_run_can_be_relaunched():
    store = default_store()
    (run_id,) = launch.submit_plan(store, launch.plan(store, form()))
    assert launch.why_not_rerun(store.get_run(run_id)) is None


MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")


def test_a_data_set_without_its_files_is_refused_before_queueing_naming_where_it_looked(tmp_path, monkeypatch):
    from dlx.data.registry import missing_files

    monkeypatch.setenv("DLX_DATASETS", str(tmp_path))
    assert [p.name for p in missing_files("mnist")] == list(MNIST_FILES)
    assert missing_files("digits") == [] and missing_files("patterns") == []
    with pytest.raises(DlxError, match=f"Data set: mnist files are missing: looked in {tmp_path}/MNIST/raw "
                       "for train-images-idx3-ubyte") as caught:
        launch.plan(default_store(), form(dataset="mnist", model="cnn"))
    assert caught.value.field == "dataset"
    assert default_store().list_runs() == []
    store = default_store()
    (run_id,) = launch.submit_plan(store, launch.plan(store, form(dataset="mnist", model="cnn", download=True)))
    assert launch.why_not_rerun(default_store().get_run(run_id)) is None  # it may fetch them
    queued = parse_config({"dataset": "mnist", "model": "cnn"})
    run_id, _ = default_store().queue.submit(queued)  # queued before they went
    assert launch.why_not_rerun(default_store().get_run(run_id)).startswith("mnist files are missing")
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_FILES:
        (raw / name).write_bytes(b"")
    assert missing_files("mnist") == []
    assert launch.plan(default_store(), form(dataset="mnist", model="cnn")).count == 1


def test_cifar_files_are_checked_by_torchvision_names(tmp_path, monkeypatch):
    from dlx.data.registry import missing_files

    monkeypatch.setenv("DLX_DATASETS", str(tmp_path))
    names = [p.name for p in missing_files("cifar10")]
    assert names == [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]
    assert {p.parent for p in missing_files("cifar10")} == {tmp_path / "cifar-10-batches-py"}


def test_command_line_text_sweeps_like_the_form():
    text = launch.form_from_text("iris", "mlp", {"lr": "1e-3,3e-3", "optimizer": "adam,sgd", "seed": "7"})
    planned = launch.plan(default_store(), text, name=launch.config_key)
    assert planned.count == 4 and planned.describe() == "Optimizer (2) × Learning rate (2)"
    expected = {**launch.defaults_for("iris", "mlp"), "seed": 7}
    for config in planned.configs:
        assert {k: v for k, v in config.model_dump().items() if k not in ("lr", "optimizer")} == \
            {k: v for k, v in launch_config(expected).model_dump().items() if k not in ("lr", "optimizer")}
    with pytest.raises(DlxError, match="^lr: 'fast' is not a number"):
        launch.plan(default_store(), launch.form_from_text("iris", "mlp", {"lr": "fast"}), name=launch.config_key)
    with pytest.raises(DlxError, match="model: 'cnn' does not take table data"):
        launch.form_from_text("iris", "cnn", {})


@pytest.mark.parametrize("model", list(MODELS))
def test_options_read_from_the_source_are_the_builders_signature(model):
    """The registry reads options without importing the builder (issue 18); they must be its own."""
    builder = MODELS[model].builder
    parameters = list(inspect.signature(builder).parameters.values())[1:]
    hints = typing.get_type_hints(builder)
    assert [(o.name, o.default, o.annotation) for o in MODELS[model].options] == \
        [(p.name, p.default, hints[p.name]) for p in parameters]


def test_torchvision_file_lists_are_the_classes_own():
    """Written out so checking for the files needs no torchvision; they must be what it reads."""
    for cls_name, (folder, names) in torchvision_sets.FILES.items():
        cls = getattr(torchvision.datasets, cls_name)
        if hasattr(cls, "resources"):
            assert folder == f"{cls.__name__}/raw"
            assert names == tuple(Path(url).name.removesuffix(".gz") for url, _ in cls.resources)
        else:
            assert folder == cls.base_folder
            assert names == tuple(name for name, _ in cls.train_list + cls.test_list)
