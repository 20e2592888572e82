"""The `dlx` command, run as a user runs it: a real process, a real worker started on demand."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest

from dlx.cli import main
from dlx.store import default_store
from tests.helpers.processes import wait_for
from tests.helpers.ui import STARTED_UIS, children, ctrl_c, first_line, listening_addresses, running, start_ui


def dlx(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dlx.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ))


def test_run_wait_trains_on_an_auto_started_worker(dlx_home, spawned_workers):
    result = dlx("run", "--dataset", "breast_cancer", "--model", "mlp", "--epochs", "3", "--wait")
    if (dlx_home / "worker.spawn").exists():
        spawned_workers.append(int((dlx_home / "worker.spawn").read_text().split()[0]))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "queued run 1 (job 1): breast_cancer/mlp"
    assert "run 1: succeeded" in lines
    final = json.loads(result.stdout[result.stdout.index("{"):])
    assert final["run"] == 1 and final["status"] == "succeeded" and final["error"] is None
    assert final["test_acc"] >= 0.95

    listed = dlx("runs", "--json")
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert (row["id"], row["status"]) == (1, "succeeded")
    assert (row["dataset"], row["model"]) == ("breast_cancer", "mlp")
    assert row["params"]["epochs"] == 3
    assert row["test_acc"] == final["test_acc"]

    exported = dlx("export", "1", "--format", "json")
    assert exported.returncode == 0, exported.stderr
    metrics = json.loads(exported.stdout)
    total_steps = default_store().get_run(1).summary["total_steps"]
    assert metrics["train_loss"]["step"] == list(range(1, total_steps + 1))
    assert len(metrics["val_acc"]["value"]) == 3
    assert metrics["test_acc"]["value"] == [final["test_acc"]]


def test_run_rejects_a_bad_value_naming_the_field():
    result = dlx("run", "--set", "lr=-1", "--no-worker")
    assert result.returncode != 0
    assert "lr: Input should be greater than 0" in result.stderr
    assert result.stdout == ""
    assert default_store().list_runs() == []  # nothing was queued


def test_run_rejects_a_setting_without_a_value(capsys):
    assert main(["run", "--set", "lr", "--no-worker"]) == 2
    assert "--set: 'lr' is not KEY=VALUE" in capsys.readouterr().err


def test_run_with_ray_and_no_address_queues_nothing_and_says_why(monkeypatch):
    monkeypatch.setenv("DLX_EXECUTOR", "ray")
    monkeypatch.delenv("DLX_RAY_ADDRESS", raising=False)
    result = dlx("run", "--epochs", "1", "--wait", timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: DLX_RAY_ADDRESS: the ray executor needs the address")
    assert default_store().list_runs() == []


def test_run_wait_stops_with_the_worker_error_on_a_line_of_its_own(dlx_home, spawned_workers, monkeypatch):
    monkeypatch.setenv("DLX_CPU_JOBS", "many")  # the worker refuses it and exits; the run cannot start
    result = dlx("run", "--dataset", "iris", "--model", "mlp", "--epochs", "1", "--wait", timeout=60)
    if (dlx_home / "worker.spawn").exists():
        spawned_workers.append(int((dlx_home / "worker.spawn").read_text().split()[0]))
    assert result.returncode == 2
    assert result.stdout == "queued run 1 (job 1): iris/mlp\nrun 1: queued\n"
    [line] = result.stderr.splitlines()
    assert line.startswith("error: run 1: the worker started for it has stopped and no other is running")
    assert line.endswith("ends: error: DLX_CPU_JOBS: expected a whole number (0 or more), got 'many'")


def test_run_without_worker_queues_and_cancel_ends_it(capsys):
    store = default_store()
    assert main(["run", "--dataset", "iris", "--model", "mlp", "--set", "lr=0.01", "--no-worker"]) == 0
    assert capsys.readouterr().out == "queued run 1 (job 1): iris/mlp\n"
    assert store.get_run(1).config["lr"] == 0.01
    assert main(["cancel", "1"]) == 0
    assert capsys.readouterr().out == "run 1: cancelled\n"
    assert store.get_run(1).status == "cancelled"


def test_export_writes_csv_rows(capsys):
    from dlx.tracking import start_run

    with start_run(handle_signals=False) as run:
        run.log_metrics({"loss": 0.5}, step=1)
        run.log_metrics({"loss": 0.25}, step=2)
    assert main(["export", str(run.id)]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["key", "step", "value", "time"]
    assert [(r[0], r[1], r[2]) for r in rows[1:]] == [("loss", "1", "0.5"), ("loss", "2", "0.25")]


def test_export_of_a_missing_run_names_it(capsys):
    assert main(["export", "42", "--format", "json"]) == 2
    assert "run: there is no run #42" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["runs"], ["db", "upgrade"]])
def test_read_only_commands_work_on_a_fresh_data_directory(command, capsys):
    assert main(command) == 0
    assert capsys.readouterr().out


# -- dlx ui, dlx worker --stop, and the store each command names ------------------------------------


@pytest.fixture(autouse=True)
def _stop_started_uis():
    yield
    while STARTED_UIS:
        process = STARTED_UIS.pop()
        if process.poll() is None:
            ctrl_c(process)


def test_ui_refuses_an_exposed_address_without_a_secret(dlx_home):
    env = {**os.environ, "DLX_TOKEN": ""}  # the generated token turned off, and no password
    env.pop("DLX_PASSWORD", None)
    result = subprocess.run([sys.executable, "-m", "dlx.cli", "ui", "--host", "0.0.0.0", "--port", "9"],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 2
    assert "refusing to listen on 0.0.0.0" in result.stderr and "DLX_PASSWORD" in result.stderr
    assert result.stdout == ""
    assert not (dlx_home / "worker.spawn").exists()  # nothing was started


def test_ui_listens_on_loopback_by_default_and_prints_one_line(dlx_home):
    from tests.helpers.browser import free_port

    port = free_port()
    process = start_ui("--port", str(port), env={"DLX_AUTOSTART_WORKER": "0"})
    assert first_line(process) == f"dlx: http://127.0.0.1:{port}/  (Ctrl-C stops the app)"
    assert listening_addresses(port) == {"127.0.0.1"}
    assert ctrl_c(process) == 0
    assert set(process.stdout.read().split()) <= {"Stopping..."}  # Streamlit's goodbye; no banner, no logs
    err = process.stderr.read()
    assert err.splitlines()[0] == f"dlx store: {dlx_home} (sqlite)"  # which store the app shows, in one line
    assert "Inotify" not in err


def test_ctrl_c_on_ui_stops_the_worker_it_started_and_its_standby(dlx_home):
    from dlx.jobs.standby import request as standby_request
    from tests.helpers.browser import free_port

    process = start_ui("--port", str(free_port()), env={"DLX_PREWARM": "1"})
    assert first_line(process).endswith("(Ctrl-C stops the app and its worker)")
    worker = int((dlx_home / "worker.spawn").read_text().split()[0])
    standby_request()  # as the Launch page does when opened: the worker starts a standby
    standby = wait_for(lambda: children(worker), message="the worker's standby job process")
    assert running(worker) and all(running(pid) for pid in standby)
    assert ctrl_c(process) == 0
    wait_for(lambda: not running(worker), timeout=30, message="the worker to stop with the app")
    wait_for(lambda: not any(running(pid) for pid in standby), timeout=30, message="the standby to end")


def test_a_worker_started_to_stop_with_its_parent_stops_when_the_parent_is_killed(dlx_home):
    import signal

    parent = subprocess.Popen([sys.executable, "-c", "import time\nfrom dlx.jobs import ensure_worker\n"
                               "from dlx.store import default_store\n"
                               "print(ensure_worker(default_store(), stop_with_parent=True).pid, flush=True)\n"
                               "time.sleep(600)"],
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "DLX_PREWARM": "0"})
    worker = int(parent.stdout.readline())
    try:
        wait_for(lambda: store_workers(), message="the worker to register")
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        wait_for(lambda: not running(worker), timeout=30, message="the orphaned worker to stop")
        assert store_workers() == []  # it stopped in order: its row is gone
    finally:
        from tests.helpers.browser import stop_workers

        stop_workers([worker])


def store_workers() -> list[str]:
    from sqlalchemy import select

    from db.models import Worker

    with default_store().session() as s:
        return list(s.scalars(select(Worker.id)))


def test_worker_stop_ends_the_running_worker_and_its_job(dlx_home, capsys):
    from dlx.config import parse_config
    from tests.helpers.processes import start_worker, stop_process

    assert main(["worker", "--stop"]) == 0
    assert capsys.readouterr().out == f"no worker is running for store sqlite:///{dlx_home / 'dlx.sqlite'}\n"

    run_id, job_id = default_store().queue.submit(parse_config({"dataset": "digits", "model": "cnn", "epochs": 200}))
    process = start_worker(dlx_home, env={"DLX_PREWARM": "0"})
    try:
        job = wait_for(lambda: (j := default_store().queue.get_job(job_id)) and j.status == "running" and j.pid and j,
                       message="the job to run")
        assert main(["worker", "--stop"]) == 0
        assert capsys.readouterr().out == f"stopped worker {process.pid}\n"
        assert process.poll() is not None  # --stop waited for it
        assert not running(job.pid)
        assert default_store().queue.get_job(job_id).status == "failed"
        assert default_store().get_run(run_id).status == "failed"
    finally:
        stop_process(process)


def test_runs_names_the_store_it_reads_first(dlx_home, capsys):
    assert main(["runs"]) == 0
    out, err = capsys.readouterr()
    assert err == f"dlx store: {dlx_home} (sqlite)\n" and out.startswith("no runs here")
    assert main(["runs", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == []  # the JSON stays clean
    assert err == f"dlx store: {dlx_home} (sqlite)\n"


def test_the_store_is_named_with_its_password_hidden(monkeypatch):
    from db.engine import database_label

    monkeypatch.setenv("DLX_DATABASE_URL", "postgresql+psycopg://dlx:s3cret@db.example:5432/dlx")
    assert database_label() == "postgresql+psycopg://dlx:***@db.example:5432/dlx"


def test_make_app_says_it_is_installing_before_it_starts(tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    # PYTHON=false: the venv step fails at once, after the message (nothing is installed)
    make = ["make", "--no-print-directory", "-C", str(root), "app", f"VENV={tmp_path / 'venv'}", "PYTHON=false"]
    result = subprocess.run(make, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "installing dlx's requirements (a few minutes the first time)" in result.stdout.splitlines()[0]


# -- issue 13: the same defaults and sweeps as the form, refusals before queueing -----------------
def test_run_sweeps_comma_separated_values_as_the_form_does():
    result = dlx("run", "--dataset", "iris", "--set", "lr=1e-3,3e-3", "--set", "seed=0,1",
                 "--set", "sweep=lr-seed", "--no-worker")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "queued sweep lr-seed: runs 1-4 (4 runs: Learning rate (2) × Seed (2))\n"
    runs = default_store().list_runs()
    assert {r.sweep for r in runs} == {"lr-seed"} and {r.model for r in runs} == {"mlp"}
    assert sorted((r.config["lr"], r.config["seed"]) for r in runs) == \
        [(1e-3, 0), (1e-3, 1), (3e-3, 0), (3e-3, 1)]
    assert {r.name for r in runs} >= {"lr=0.001 seed=0", "lr=0.003 seed=1"}


def test_run_without_settings_uses_the_launch_forms_defaults_for_every_data_set_and_model(
        tmp_path, monkeypatch, capsys):
    from dlx.data import DATASETS
    from dlx.data.registry import missing_files
    from dlx.training.fits import launch_config
    from dlx.views import launch

    monkeypatch.setenv("DLX_DATASETS", str(tmp_path))
    for name in DATASETS:  # empty stand-ins: only the launch's file check reads them
        for path in missing_files(name):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
    pairs = [(dataset, model) for dataset in DATASETS for model in launch.models_for(dataset)]
    assert ("patterns", "cnn") in pairs and ("mnist", "resnet18") in pairs
    for dataset, model in pairs:
        assert main(["run", "--dataset", dataset, "--model", model, "--no-worker"]) == 0, capsys.readouterr()
        queued = default_store().list_runs(limit=1)[0].config
        assert queued == launch_config(launch.defaults_for(dataset, model)).model_dump(), (dataset, model)
    assert default_store().list_runs(limit=1000)[-1].config["epochs"] == launch.defaults_for("digits", "cnn")["epochs"]


def test_run_picks_a_model_that_fits_when_none_is_given(capsys):
    assert main(["run", "--dataset", "wine", "--no-worker"]) == 0
    assert capsys.readouterr().out == "queued run 1 (job 1): wine/mlp\n"


def test_run_refuses_a_data_set_whose_files_are_missing_naming_the_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DLX_DATASETS", str(tmp_path))
    assert main(["run", "--dataset", "fashion_mnist", "--no-worker"]) == 2
    err = capsys.readouterr().err
    assert f"error: dataset: fashion_mnist files are missing: looked in {tmp_path}/FashionMNIST/raw" in err
    assert default_store().list_runs() == []


def test_runs_sorted_by_a_key_show_that_column(dlx_home, capsys):
    from dlx.tracking import start_run

    for lr, loss, optimizer in ((0.1, 0.5, "sgd"), (0.001, 0.25, "adam"), (0.01, 0.75, "adamw")):
        with start_run(config={"lr": lr}, handle_signals=False) as run:
            run.log_params({"lr": lr, "optimizer": optimizer, "wd": lr / 10})
            run.log_metrics({"val_loss": loss}, step=1)
    capsys.readouterr()

    def table(*args: str) -> list[list[str]]:
        assert main(["runs", *args]) == 0
        return [line.split() for line in capsys.readouterr().out.splitlines()[1:]]

    header, *rows = table("--sort", "val_loss")
    assert header[:5] == ["id", "status", "dataset", "model", "test_acc"] and header[5] == "val_loss"
    assert [row[2] for row in rows] == ["0.25", "0.5", "0.75"]  # the sorted column, in its order
    header, *rows = table("--sort", "param.wd", "--desc")
    assert header[5] == "param.wd" and [row[2] for row in rows] == ["0.01", "0.001", "0.0001"]
    header, *rows = table("--sort", "status")  # a column the table shows already: not twice
    assert header == ["id", "status", "dataset", "model", "test_acc", "params"]
