"""Paths read back from the database, corrupt checkpoints, and values refused before anything is queued.

Each test here failed on the code before its fix (issue 12): a crafted path was shown, a corrupt
checkpoint raised a traceback, bad configs failed only inside their job, and so on.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from db.models import Artifact
from db.models import Run as RunRow
from db.models import Worker as WorkerRow
from dlx import settings
from dlx.cli import main
from dlx.config import MAX_SEED
from dlx.data import load_dataset
from dlx.errors import DlxError
from dlx.jobs.supervisor import why_waiting
from dlx.models import registry
from dlx.store import default_store
from dlx.tracking import start_run
from dlx.training.checkpoints import load_run_model
from dlx.training.fits import launch_config
from dlx.views import launch
from tests.helpers.processes import start_worker, stop_process, train_in_process, wait_for

APP = Path(__file__).resolve().parents[2] / "streamlit_app.py"
SECRET = "TOP-SECRET-OUTSIDE-THE-DATA-DIRECTORY"


@pytest.fixture(autouse=True)
def no_autostart(monkeypatch):
    """Only the workers a test starts itself run, so queued jobs stay as the test made them."""
    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "0")


def open_app(page: str, **query: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.query_params.update(query)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def shown(at: AppTest) -> str:
    kinds = ("title", "markdown", "caption", "info", "warning", "error", "code")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


def outside_file(dlx_home: Path) -> Path:
    secret = dlx_home.parent / "secret.txt"
    secret.write_text(SECRET)
    return secret


# -- paths read from the database --------------------------------------------------------------------
def test_stored_path_keeps_every_read_inside_the_data_directory(dlx_home):
    outside = outside_file(settings.home())
    (dlx_home / "logs").mkdir(parents=True, exist_ok=True)
    (dlx_home / "logs" / "link.log").symlink_to(outside)
    assert settings.stored_path("runs/1/best.safetensors") == dlx_home / "runs" / "1" / "best.safetensors"
    for crafted in ("../secret.txt", "logs/../../secret.txt", str(outside), "logs/link.log", "", "."):
        with pytest.raises(DlxError) as err:
            settings.stored_path(crafted)
        assert err.value.field == "path"


def test_logging_an_artifact_outside_the_data_directory_is_refused(dlx_home):
    with start_run(handle_signals=False) as run:
        with pytest.raises(DlxError, match="outside the data directory"):
            run.log_artifact("log", "stolen", "../secret.txt")
        run.log_artifact("log", "own", "logs/own.log")
    assert [a.path for a in default_store().artifacts(run.id)] == ["logs/own.log"]


def test_runs_page_never_shows_a_log_from_outside_the_data_directory(dlx_home):
    store = default_store()
    outside_file(settings.home())
    run_id = store.create_run({"dataset": "digits", "model": "cnn"}, status="failed")
    with store.session() as s, s.begin():  # a row as a crafted script (or an edited database) leaves it
        s.add(Artifact(run_id=run_id, kind="log", name="job-1", path="../secret.txt"))
    at = open_app("pages/runs.py", run=str(run_id))
    assert SECRET not in shown(at)
    assert any("outside the data directory" in w.value for w in at.warning)
    assert at.title[0].value.startswith(f"Run #{run_id}")


# -- corrupt checkpoints -----------------------------------------------------------------------------
@pytest.fixture
def corrupt_run(dlx_home) -> tuple[int, Path]:
    """A trained run whose best checkpoint was then cut short (a full disk, a killed copy)."""
    run_id = train_in_process({"dataset": "digits", "model": "mlp", "epochs": 1})
    path = default_store().checkpoint_path(run_id, "best")
    path.write_bytes(path.read_bytes()[:100])
    return run_id, path


def test_a_corrupt_checkpoint_is_a_clear_error_naming_the_file(corrupt_run):
    store = default_store()
    run_id, path = corrupt_run
    with pytest.raises(DlxError) as err:
        load_run_model(store, run_id)
    assert err.value.field == "checkpoint"
    assert path.name in str(err.value) and f"run #{run_id}" in str(err.value)
    path.write_bytes(b"not a safetensors file at all")
    with pytest.raises(DlxError, match=path.name):
        load_run_model(store, run_id)


def test_explain_page_shows_a_corrupt_checkpoint_as_an_error(corrupt_run):
    run_id, path = corrupt_run
    at = open_app("pages/explain.py", run=str(run_id))
    assert any(path.name in e.value and "cannot be read" in e.value for e in at.error)
    assert at.selectbox(key="explain.run").value.id == run_id  # the run picker stays usable


# -- configs refused before anything is queued ---------------------------------------------------------
@pytest.mark.parametrize("options, words", [
    ({"widht": 64}, "model_options.widht: model 'cnn' has no option 'widht'; it takes width, hidden, dropout"),
    ({"width": "wide"}, "model_options.width: 'wide' is not valid for 'cnn'"),
    ({"width": 100_000}, "parameters, more than the 50,000,000 allowed (DLX_MAX_PARAMS)"),
    ({"dropout": 1.5}, "model_options: 'cnn' cannot be built"),
])
def test_model_options_are_checked_against_the_builder(options, words):
    with pytest.raises(DlxError) as err:
        launch_config({"dataset": "digits", "model": "cnn", "model_options": options})
    assert err.value.field == "model_options"
    assert words in str(err.value)


def test_model_options_are_converted_to_the_builders_types():
    config = launch_config({"dataset": "digits", "model": "cnn", "model_options": {"width": 16.0}})
    assert config.model_options == {"width": 16} and isinstance(config.model_options["width"], int)


ROOT = Path(__file__).resolve().parents[2]
TORCHLESS_CHECK = """
import json, sys
from dlx.errors import DlxError
from dlx.training.fits import launch_config
answers = []
for options in ({"width": 8}, {"width": 100_000}, {"dropout": 1.5}):
    try:
        answers.append(["ok", launch_config({"dataset": "digits", "model": "cnn", "model_options": options}).model_options])
    except DlxError as err:
        answers.append([err.field, str(err)])
print(json.dumps({"answers": answers, "torch": "torch" in sys.modules}))
"""


def test_a_process_without_torch_counts_in_a_child_and_refuses_as_one_with_torch(tmp_path):
    """The app's server validates configs without importing torch (issue 18): same counts, same refusals."""
    env = {**os.environ, "DLX_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", TORCHLESS_CHECK], capture_output=True, text=True, env=env,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout.strip().splitlines()[-1])
    assert shown["torch"] is False
    (ok, options), (field, oversize), (field_2, unbuildable) = shown["answers"]
    assert ok == "ok" and options == {"width": 8}
    assert field == "model_options" and "parameters, more than the 50,000,000 allowed (DLX_MAX_PARAMS)" in oversize
    assert field_2 == "model_options" and "model_options: 'cnn' cannot be built" in unbuildable
    key = ("cnn", "image", (1, 8, 8), 10, (("width", 8),))
    registry._count_in_child([key])
    assert registry._CHILD_COUNTS.pop(key) == registry._count(*key)


def test_the_parameter_cap_comes_from_the_environment(monkeypatch):
    launch_config({"dataset": "digits", "model": "cnn"})
    monkeypatch.setenv("DLX_MAX_PARAMS", "1000")
    with pytest.raises(DlxError, match="more than the 1,000 allowed"):
        launch_config({"dataset": "digits", "model": "cnn"})
    monkeypatch.setenv("DLX_MAX_PARAMS", "lots")
    with pytest.raises(DlxError, match="DLX_MAX_PARAMS: expected a whole number"):
        launch_config({"dataset": "digits", "model": "cnn"})


@pytest.mark.parametrize("seed", [2**32, 2**64, 2**70])
def test_seeds_the_splitter_cannot_take_are_refused(seed):
    with pytest.raises(DlxError) as err:
        launch_config({"dataset": "digits", "seed": seed})
    assert err.value.field == "seed" and str(MAX_SEED) in str(err.value)


def test_the_largest_accepted_seed_splits_the_data():
    config = launch_config({"dataset": "wine", "model": "mlp", "seed": MAX_SEED})
    bundle = load_dataset(config.dataset, config.seed, config.val_fraction, config.test_fraction)
    assert len(bundle.train) and len(bundle.val) and len(bundle.test)


@pytest.mark.parametrize("values, field", [
    ({"dataset": "digits", "val_fraction": 0.49, "test_fraction": 0.49}, "test_fraction"),
    ({"dataset": "iris", "model": "mlp", "test_fraction": 0.01}, "test_fraction"),
    ({"dataset": "iris", "model": "mlp", "val_fraction": 0.01}, "val_fraction"),
])
def test_fractions_that_leave_a_split_too_small_are_refused(values, field):
    with pytest.raises(DlxError) as err:
        launch_config(values)
    assert err.value.field == field


def test_the_smallest_accepted_fractions_split_the_data():
    """The check uses the splitter's own arithmetic: what it accepts really splits."""
    config = launch_config({"dataset": "iris", "model": "mlp", "test_fraction": 0.02, "val_fraction": 0.03})
    bundle = load_dataset(config.dataset, config.seed, config.val_fraction, config.test_fraction)
    assert len(bundle.test) == 3 and len(bundle.val) == 5


@pytest.mark.parametrize("lr", [float("nan"), float("inf"), "nan"])
def test_a_learning_rate_that_is_not_finite_says_so(lr):
    with pytest.raises(DlxError) as err:
        launch_config({"lr": lr})
    assert err.value.field == "lr" and "finite number" in str(err.value)


# -- devices ----------------------------------------------------------------------------------------
def runs_in_database() -> int:
    with default_store().session() as s:
        return s.scalar(select(func.count()).select_from(RunRow))


def test_a_gpu_this_machine_lacks_is_refused_at_launch(dlx_home):
    missing = f"cuda:{torch.cuda.device_count()}"
    config = launch_config({"dataset": "digits", "device": missing})  # a config is machine-independent
    with pytest.raises(DlxError) as err:
        launch.submit_plan(default_store(), launch.Plan(config.model_dump(), {}, [config]))  # the way runs are queued
    assert err.value.field == "device" and missing in str(err.value)
    form = launch.to_form({**launch.defaults_for("digits", "cnn"), "device": missing})
    with pytest.raises(DlxError, match="Device: "):
        launch.plan(default_store(), form)
    assert runs_in_database() == 0


def test_a_gpu_a_running_worker_has_is_accepted(dlx_home):
    """Workers elsewhere (another machine on the same database) register what they have."""
    store = default_store()
    missing = torch.cuda.device_count()
    with default_store().session() as s, s.begin():
        s.add(WorkerRow(id="gpu-host:1", info={"gpus": missing + 1, "cpu_slots": 1}))
    config = launch_config({"dataset": "digits", "device": f"cuda:{missing}"})
    [run_id] = launch.submit_plan(store, launch.Plan(config.model_dump(), {}, [config]))
    assert store.get_run(run_id).status == "queued"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine whose workers have no GPU")
def test_runs_page_says_why_a_gpu_job_waits(dlx_home):
    store = default_store()
    run_id = default_store().create_run({"dataset": "digits", "model": "cnn", "device": "cuda:0"}, status="queued")
    job_id = store.queue.submit_job("train", {}, run_id, "cuda:0")  # queued before this machine lost its GPU
    assert "No worker is running" in why_waiting(store, store.queue.get_job(job_id))
    worker = start_worker(dlx_home)
    try:
        wait_for(lambda: store.workers.alive(), message="the worker to register")
        assert "no running worker has a GPU" in why_waiting(store, store.queue.get_job(job_id))
        at = open_app("pages/runs.py", run=str(run_id))
        assert any("cuda:0" in i.value and "no running worker has a GPU" in i.value for i in at.info)
        assert store.queue.get_job(job_id).status == "queued"
    finally:
        stop_process(worker)


# -- ?run= and the command line ---------------------------------------------------------------------------
@pytest.mark.parametrize("typed", ["٣", "²", "99999999999999999999", "3 ; drop"])
def test_runs_page_takes_only_ascii_digits_in_the_url(dlx_home, typed):
    for _ in range(3):
        default_store().create_run({"dataset": "digits", "model": "cnn"}, status="succeeded")
    at = open_app("pages/runs.py", run=typed)
    assert any("is not a run number" in w.value for w in at.warning)
    assert at.title[0].value == "Runs"  # the list, not run #3


def test_json_export_writes_null_for_nan(dlx_home, capsys):
    with start_run(handle_signals=False) as run:
        run.log_metric("train_loss", 0.5, step=1)
        run.log_metric("train_loss", math.nan, step=2)
    assert main(["export", str(run.id), "--format", "json"]) == 0
    out = capsys.readouterr().out

    def refuse(name: str):
        raise ValueError(f"{name} is not JSON")

    assert json.loads(out, parse_constant=refuse)["train_loss"] == {"step": [1, 2], "value": [0.5, None]}


def test_runs_status_must_be_a_real_status(dlx_home, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["runs", "--status", "bogus"])
    assert exit_.value.code == 2
    assert "invalid choice: 'bogus'" in capsys.readouterr().err
    assert main(["runs", "--status", "failed", "--json"]) == 0


SAVED_COUNT_CHECK = """
import json, sys
from dlx.data.registry import DatasetMeta
from dlx.models import registry
def no_child(keys):
    raise AssertionError("a child was started")
if sys.argv[1] == "saved":
    registry._count_in_child = no_child
try:
    count = registry.count_parameters("cnn", DatasetMeta("digits", "image", tuple("0123456789"), (1, 8, 8)),
                                     {"width": 12})
except AssertionError as err:
    count = str(err)
print(json.dumps({"count": count, "torch": "torch" in sys.modules}))
"""


def _count_torchless(home: Path, mode: str) -> dict:
    env = {**os.environ, "DLX_HOME": str(home), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", SAVED_COUNT_CHECK, mode], capture_output=True, text=True,
                          env=env, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_counts_are_kept_across_restarts_and_dropped_when_the_builder_changes(tmp_path):
    """A restarted app answers a count it has seen from DLX_HOME, without a child importing torch."""
    first = _count_torchless(tmp_path, "child")
    assert first["torch"] is False and first["count"] == registry._count("cnn", "image", (1, 8, 8), 10,
                                                                           tuple(sorted({"width": 12}.items())))
    assert _count_torchless(tmp_path, "saved") == first
    saved = tmp_path / "cache" / "parameter_counts.json"
    entries = json.loads(saved.read_text())
    # Another fingerprint (the builder's source or the libraries changed): those counts are not used.
    saved.write_text(json.dumps({"0" * 16 + text[16:]: count for text, count in entries.items()}))
    assert _count_torchless(tmp_path, "saved")["count"] == "a child was started"
    saved.write_text("{not json")  # a damaged file is only a cache: counted again, then replaced
    assert _count_torchless(tmp_path, "child") == first
    assert json.loads(saved.read_text()).keys() == entries.keys()
