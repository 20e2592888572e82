"""`dlx import tensorboard LOGDIR` (issue 32): a log written by torch's SummaryWriter, one run per folder, every
scalar with its steps, values and wall times; a second import adds nothing."""
from __future__ import annotations

import pytest

from dlx.cli import main
from dlx.store import default_store

pytest.importorskip("tensorboard")


def test_scalars_of_every_run_folder_are_imported_once(tmp_path, capsys):
    from torch.utils.tensorboard import SummaryWriter

    logdir = tmp_path / "tb-logs"
    written = {}
    for name, scale in (("baseline", 1.0), ("wide/lr-0.1", 2.0)):
        writer = SummaryWriter(str(logdir / name))
        for step in range(0, 50, 5):
            writer.add_scalar("loss/train", scale / (step + 1), step, walltime=1_765_000_000 + step)
            writer.add_scalar("accuracy", 0.5 + step / 100, step, walltime=1_765_000_000 + step + 0.5)
        writer.close()
        written[name] = scale
    assert main(["import", "tensorboard", str(logdir)]) == 0
    assert "imported 2 TensorBoard runs (40 metric points, 1 experiments)" in capsys.readouterr().out
    store = default_store()
    runs = {run.name: run for run in store.list_runs()}
    assert set(runs) == {"baseline", "wide/lr-0.1"} and {r.experiment for r in runs.values()} == {"tb-logs"}
    for name, scale in written.items():
        loss = store.metric_history(runs[name].id, "loss/train")
        assert loss.steps.tolist() == list(range(0, 50, 5))
        assert loss.values.tolist() == pytest.approx([scale / (s + 1) for s in range(0, 50, 5)], rel=1e-6)  # float32
        assert loss.times.tolist() == [1_765_000_000 + s for s in range(0, 50, 5)]
        assert store.metric_history(runs[name].id, "accuracy").times[-1] == 1_765_000_045.5
        assert runs[name].status == "succeeded"
    assert main(["import", "tensorboard", str(logdir)]) == 0
    assert "imported 0 TensorBoard runs" in capsys.readouterr().out and len(store.list_runs()) == 2


def test_a_folder_without_event_files_is_a_clear_error(tmp_path, capsys):
    assert main(["import", "tensorboard", str(tmp_path)]) == 2
    assert "logdir: no TensorBoard event files" in capsys.readouterr().err
