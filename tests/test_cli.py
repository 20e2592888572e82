"""The `dlx` command, run as a user runs it: a real process, a real worker started on demand."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys

import pytest

from dlx import store
from dlx.cli import main


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
    total_steps = store.get_run(1).summary["total_steps"]
    assert metrics["train_loss"]["step"] == list(range(1, total_steps + 1))
    assert len(metrics["val_acc"]["value"]) == 3
    assert metrics["test_acc"]["value"] == [final["test_acc"]]


def test_run_rejects_a_bad_value_naming_the_field():
    result = dlx("run", "--set", "lr=-1", "--no-worker")
    assert result.returncode != 0
    assert "lr: Input should be greater than 0" in result.stderr
    assert result.stdout == ""
    assert store.list_runs() == []  # nothing was queued


def test_run_rejects_a_setting_without_a_value(capsys):
    assert main(["run", "--set", "lr", "--no-worker"]) == 2
    assert "--set: 'lr' is not KEY=VALUE" in capsys.readouterr().err


def test_run_without_worker_queues_and_cancel_ends_it(capsys):
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


# -- issue 13: the same defaults and sweeps as the form, refusals before queueing -----------------
def test_run_sweeps_comma_separated_values_as_the_form_does():
    result = dlx("run", "--dataset", "iris", "--set", "lr=1e-3,3e-3", "--set", "seed=0,1",
                 "--set", "sweep=lr-seed", "--no-worker")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "queued sweep lr-seed: runs 1-4 (4 runs: Learning rate (2) × Seed (2))\n"
    runs = store.list_runs()
    assert {r.sweep for r in runs} == {"lr-seed"} and {r.model for r in runs} == {"mlp"}
    assert sorted((r.config["lr"], r.config["seed"]) for r in runs) == \
        [(1e-3, 0), (1e-3, 1), (3e-3, 0), (3e-3, 1)]
    assert {r.name for r in runs} >= {"lr=0.001 seed=0", "lr=0.003 seed=1"}


def test_run_without_settings_uses_the_launch_forms_defaults_for_every_data_set_and_model(
        tmp_path, monkeypatch, capsys):
    from dlx import launch
    from dlx.config import parse_config
    from dlx.data import DATASETS
    from dlx.data.registry import missing_files

    monkeypatch.setenv("DLX_DATASETS", str(tmp_path))
    for name in DATASETS:  # empty stand-ins: only the launch's file check reads them
        for path in missing_files(name):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
    pairs = [(dataset, model) for dataset in DATASETS for model in launch.models_for(dataset)]
    assert ("patterns", "cnn") in pairs and ("mnist", "resnet18") in pairs
    for dataset, model in pairs:
        assert main(["run", "--dataset", dataset, "--model", model, "--no-worker"]) == 0, capsys.readouterr()
        queued = store.list_runs(limit=1)[0].config
        assert queued == parse_config(launch.defaults_for(dataset, model)).model_dump(), (dataset, model)
    assert store.list_runs(limit=1000)[-1].config["epochs"] == launch.defaults_for("digits", "cnn")["epochs"]


def test_run_picks_a_model_that_fits_when_none_is_given(capsys):
    assert main(["run", "--dataset", "wine", "--no-worker"]) == 0
    assert capsys.readouterr().out == "queued run 1 (job 1): wine/mlp\n"


def test_run_refuses_a_data_set_whose_files_are_missing_naming_the_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DLX_DATASETS", str(tmp_path))
    assert main(["run", "--dataset", "fashion_mnist", "--no-worker"]) == 2
    err = capsys.readouterr().err
    assert f"error: dataset: fashion_mnist files are missing: looked in {tmp_path}/FashionMNIST/raw" in err
    assert store.list_runs() == []
