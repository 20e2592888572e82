"""Image folders larger than the in-memory limit train through a DataLoader with worker processes."""
from __future__ import annotations

import pytest
import torch

from dlx.data import load_dataset
from dlx.data.streaming import FolderSplit
from dlx.data.user_sets import import_image_folder
from dlx.store import default_store
from tests.helpers.files import png_folder
from tests.helpers.processes import train_in_process


@pytest.fixture(autouse=True)
def data_roots(tmp_path, monkeypatch):
    """Server folders are registered from this test's own folder (DLX_DATA_ROOTS)."""
    monkeypatch.setenv("DLX_DATA_ROOTS", str(tmp_path))


def test_two_thousand_pngs_train_through_the_streaming_path(tmp_path, monkeypatch):
    monkeypatch.setenv("DLX_IN_MEMORY_BYTES", "0")  # stream whatever the size
    monkeypatch.setenv("DLX_LOADER_WORKERS", "2")
    import_image_folder(default_store(), png_folder(tmp_path / "pngs", classes=4, per_class=500), "many", side=8)
    bundle = load_dataset("many")
    assert isinstance(bundle.train, FolderSplit) and len(bundle.train) + len(bundle.val) + len(bundle.test) == 2000
    x, y = next(iter(bundle.train.loader(64, torch.device("cpu"), shuffle=True, generator=torch.Generator())))
    assert x.shape == (64, 1, 8, 8) and bundle.train.loader(64, torch.device("cpu")).num_workers == 2
    run_id = train_in_process({"dataset": "many", "model": "cnn", "epochs": 2, "lr": 3e-3, "batch_size": 64})
    run = default_store().get_run(run_id)
    assert run.status == "succeeded" and run.summary["test_acc"] >= 0.9
    assert run.summary["train_size"] == len(bundle.train)


def test_streamed_and_in_memory_sets_split_and_normalise_alike(tmp_path, monkeypatch):
    import_image_folder(default_store(), png_folder(tmp_path / "pngs", classes=2, per_class=20), "alike", side=8)
    held = load_dataset("alike")
    load_dataset.cache_clear()
    monkeypatch.setenv("DLX_IN_MEMORY_BYTES", "0")
    streamed = load_dataset("alike")
    assert isinstance(streamed.test, FolderSplit) and not isinstance(held.test, FolderSplit)
    assert torch.equal(streamed.test.y, held.test.y)
    x = torch.cat([batch for batch, _ in streamed.test.loader(8, torch.device("cpu"), workers=0)])
    assert torch.allclose(x, held.test.x, atol=1e-6)
    assert torch.equal(streamed.test.x, held.test.x)  # what the Explain page reads as the test samples


def test_augmentation_applies_to_the_training_split_only(tmp_path, monkeypatch):
    import_image_folder(default_store(), png_folder(tmp_path / "pngs", classes=2, per_class=20, side=16),
                        "augmented", side=16, augment=("crop", "flip"))
    bundle = load_dataset("augmented")
    assert isinstance(bundle.train, FolderSplit)  # augmenting sets stream, whatever their size
    assert bundle.train.augmented is not None and bundle.test.augmented is None
    assert bundle.train.augmented.augment == ("flip", "crop") and bundle.train.dataset.augment == ()
