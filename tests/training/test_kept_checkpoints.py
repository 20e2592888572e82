"""Checkpoints kept over training (`checkpoint_every`, `keep_checkpoints`): written, indexed and thinned."""
from __future__ import annotations

import pytest

from dlx import settings
from dlx.cli import main
from dlx.config import parse_config
from dlx.errors import DlxError
from dlx.store import default_store
from dlx.training.kept import kept_checkpoints
from tests.helpers.processes import train_in_process

TINY = {"dataset": "digits", "model": "mlp"}


def checkpoint_files(run_id: int) -> list[str]:
    return sorted(p.name for p in (settings.run_dir(run_id) / "checkpoints").glob("*.safetensors"))


def test_keep_checkpoints_2_of_4_epochs_keeps_the_last_two_files_and_rows():
    run_id = train_in_process({**TINY, "epochs": 4, "checkpoint_every": 1, "keep_checkpoints": 2})
    store = default_store()
    assert sorted(a.name for a in store.artifacts(run_id, "checkpoint")) == ["best", "epoch-0003", "epoch-0004", "last"]
    assert checkpoint_files(run_id) == ["best.safetensors", "epoch-0003.safetensors", "epoch-0004.safetensors",
                                        "last.safetensors"]
    kept = kept_checkpoints(store, run_id)
    assert [k.epoch for k in kept] == [3, 4]
    assert {"val_loss", "val_acc", "train_loss_epoch", "train_acc"} <= set(kept[0].metrics)
    assert kept[1].size_bytes == kept[1].path.stat().st_size > 0
    assert store.get_run(run_id).params["checkpoint_every"] == "1"


def test_checkpoint_every_2_keeps_every_second_epoch_and_the_final_one_all_when_uncapped():
    run_id = train_in_process({**TINY, "epochs": 3, "checkpoint_every": 2, "keep_checkpoints": 0})
    assert [k.name for k in kept_checkpoints(default_store(), run_id)] == ["epoch-0002", "epoch-0003"]


def test_a_default_run_keeps_only_best_and_last_and_logs_the_params_it_always_did():
    run_id = train_in_process({**TINY, "epochs": 2})
    store = default_store()
    assert sorted(a.name for a in store.artifacts(run_id, "checkpoint")) == ["best", "last"]
    assert checkpoint_files(run_id) == ["best.safetensors", "last.safetensors"]
    assert kept_checkpoints(store, run_id) == []
    assert not {"checkpoint_every", "keep_checkpoints"} & set(store.get_run(run_id).params)


@pytest.mark.parametrize("field", ["checkpoint_every", "keep_checkpoints"])
def test_negative_checkpoint_options_are_refused_naming_the_field(field):
    with pytest.raises(DlxError, match=f"^{field}: Input should be greater than or equal to 0") as err:
        parse_config({field: -1})
    assert err.value.field == field


def test_cli_run_accepts_checkpoint_every_and_refuses_a_bad_value_naming_it(capsys):
    assert main(["run", "--set", "checkpoint_every=1", "--set", "keep_checkpoints=3", "--no-worker"]) == 0
    run, = default_store().list_runs()
    assert run.config["checkpoint_every"] == 1 and run.config["keep_checkpoints"] == 3
    capsys.readouterr()
    assert main(["run", "--set", "checkpoint_every=-2", "--no-worker"]) != 0
    assert "checkpoint_every: Input should be greater than or equal to 0" in capsys.readouterr().err
    assert len(default_store().list_runs()) == 1  # nothing more was queued
