"""PyTorch Lightning with DlxLogger (issue 32): hyperparameters as params, metrics at their global steps,
the run's status at the end (succeeded, failed with the exception, cancelled on Ctrl-C), and ModelCheckpoint's
files recorded as the run's artifacts."""
from __future__ import annotations

import json
import signal

import pytest

from dlx.store import default_store

pytest.importorskip("lightning")


def module(fail_at: int | None = None, interrupt: bool = False):
    import lightning
    import torch
    from torch import nn

    class Tiny(lightning.LightningModule):
        def __init__(self, lr: float = 0.05, hidden: int = 8):
            super().__init__()
            self.save_hyperparameters()
            self.net = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 2))

        def training_step(self, batch, index):
            if fail_at is not None and self.global_step == fail_at:
                raise KeyboardInterrupt if interrupt else ValueError("bad batch")
            x, y = batch
            loss = nn.functional.cross_entropy(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, index):
            x, y = batch
            self.log("val_loss", nn.functional.cross_entropy(self.net(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    return Tiny()


def fit(tmp_path, logger, model, epochs: int = 2):
    import lightning
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    x = torch.randn(64, 4)
    data = TensorDataset(x, (x[:, 0] > 0).long())
    trainer = lightning.Trainer(max_epochs=epochs, logger=logger, log_every_n_steps=1, accelerator="cpu",
                                enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                                callbacks=[ModelCheckpoint(monitor="val_loss", save_top_k=1, save_last=True)])
    trainer.fit(model, DataLoader(data, batch_size=16), DataLoader(data, batch_size=32))
    return trainer


def test_fit_logs_hyperparameters_metrics_with_steps_status_and_checkpoints(tmp_path):
    from dlx.integrations.lightning import ARTIFACT_KIND, DlxLogger

    logger = DlxLogger(experiment="pl", name="tiny")
    fit(tmp_path, logger, module())
    store = default_store()
    run = store.get_run(logger.run.id)
    assert run.status == "succeeded" and run.name == "tiny" and run.experiment == "pl"
    assert json.loads(run.params["lr"]) == 0.05 and json.loads(run.params["hidden"]) == 8
    assert store.metric_history(run.id, "train_loss").steps.tolist() == list(range(8))  # 4 batches × 2 epochs
    assert store.metric_history(run.id, "val_loss").steps.tolist() == [3, 7]
    files = {a.name: a for a in store.artifacts(run.id, ARTIFACT_KIND)}
    assert "last.ckpt" in files and len(files) == 2  # top-1 and last: the first epoch's, deleted, is dropped
    best, = [a for a in files.values() if a.meta["best"]]
    assert best.meta["monitor"] == "val_loss"
    assert best.meta["score"] == pytest.approx(min(store.metric_history(run.id, "val_loss").values))
    from dlx import settings

    assert all(settings.stored_path(a.path).is_file() for a in files.values())
    assert {p.name for p in (settings.run_dir(run.id) / "lightning").iterdir()} == set(files)


def test_an_exception_fails_the_run_with_it(tmp_path):
    from dlx.integrations.lightning import DlxLogger

    logger = DlxLogger(name="broken")
    with pytest.raises(ValueError, match="bad batch"):
        fit(tmp_path, logger, module(fail_at=2))
    run = default_store().get_run(logger.run.id)
    assert run.status == "failed" and run.error == "ValueError: bad batch"
    assert default_store().metric_history(run.id, "train_loss").steps.tolist() == [0, 1]


def test_ctrl_c_cancels_the_run(tmp_path):
    from dlx.integrations.lightning import DlxLogger

    logger = DlxLogger(name="interrupted")
    handler = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit):  # Lightning's own answer to Ctrl-C
            fit(tmp_path, logger, module(fail_at=1, interrupt=True))
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning ignores SIGINT after one
    assert default_store().get_run(logger.run.id).status == "cancelled"


def test_a_module_fitted_with_input_is_kept_and_explained_on_the_page(tmp_path, monkeypatch):
    import lightning
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from dlx.data.registry import load_dataset
    from dlx.explain.models_cache import get_loaded_run
    from dlx.integrations.lightning import DlxLogger
    from tests.helpers.explain_page import charts, open_page, traces
    from tests.helpers.lightning_models import TableNet

    torch.manual_seed(0)
    data = load_dataset("breast_cancer")
    module, logger = TableNet(hidden=12), DlxLogger(experiment="pl", name="table", input="breast_cancer")
    trainer = lightning.Trainer(max_epochs=2, logger=logger, accelerator="cpu", enable_progress_bar=False,
                                enable_model_summary=False, enable_checkpointing=False, default_root_dir=tmp_path,
                                log_every_n_steps=1)
    trainer.fit(module, DataLoader(TensorDataset(data.train.x, data.train.y), batch_size=64, shuffle=True))
    store = default_store()
    best, = [a for a in store.artifacts(logger.run.id, "checkpoint") if a.name == "best"]
    assert best.meta == {"format": "builder", "builder": "tests.helpers.lightning_models:TableNet",
                         "kwargs": {"features": 30, "hidden": 12, "classes": 2, "lr": 0.01}, "input": "breast_cancer"}
    loaded = get_loaded_run(store, logger.run.id)
    x = data.test.x[:5]
    assert torch.equal(loaded.model(x), module.eval()(x))  # the fitted weights, rebuilt from the class
    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "0")
    at = open_page(run=str(logger.run.id))
    bars = charts(at)
    assert len(bars) == 4 and traces(bars[0], "bar") == 2  # four samples, IG and Feature Ablation, as a table run
    assert "mean radius" in str(bars[0]) or "worst" in str(bars[0])


def test_input_asks_for_a_module_another_process_can_import_before_training(tmp_path):
    from dlx.errors import DlxError
    from dlx.integrations.lightning import DlxLogger

    logger = DlxLogger(name="local class", input="breast_cancer")
    with pytest.raises(DlxError, match="define the LightningModule at the top level"):
        fit(tmp_path, logger, module())
    run = default_store().get_run(logger.run.id)
    assert run.status == "failed" and "DlxError" in run.error
    assert default_store().metric_history(run.id, "train_loss").steps.tolist() == []
