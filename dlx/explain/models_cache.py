"""Loaded run models, kept in an in-process LRU so a second look at a run is instant.

An entry is keyed by the checkpoint file's identity (path, size, modification time): a run that
writes a new best checkpoint is loaded again, an unchanged one never is.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from dlx.config import RunConfig
from dlx.data import DataBundle, DatasetMeta, load_dataset
from dlx.errors import DlxError
from dlx.explain.image.layers import explainable_copy
from dlx.explain.samples import input_batches
from dlx.store import Store
from dlx.training.checkpoints import load_run_model, no_checkpoint

CAPACITY = 4  # models held at once; a ResNet-18 is about 45 MB


@dataclass
class LoadedRun:
    """A run's model ready for attribution, with its data set and what identifies its weights."""

    run_id: int
    checkpoint: str
    checkpoint_id: str  # sha256 of the checkpoint file: part of every cache key
    config: RunConfig
    model: nn.Module  # the explainable copy (distinct non-in-place ReLUs), eval mode
    device: torch.device
    store: Store = field(repr=False, compare=False)  # where its explanations are cached and its jobs queued
    # Captum hooks the model's modules while it attributes: one user of the model at a time
    # (pages of two browser sessions share this object).
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _test_probs: Tensor | None = field(default=None, repr=False)

    @property
    def bundle(self) -> DataBundle:
        c = self.config
        return load_dataset(c.dataset, c.seed, c.val_fraction, c.test_fraction)

    @property
    def meta(self) -> DatasetMeta:
        return self.bundle.meta

    @torch.no_grad()
    def predict(self, inputs: Tensor, batch: int = 1024) -> Tensor:
        """Class probabilities (on the CPU) for a batch of inputs."""
        with self.lock:
            out = [torch.softmax(self.model(inputs[i:i + batch].to(self.device)).float(), dim=1).cpu()
                   for i in range(0, len(inputs), batch)]
        return torch.cat(out) if out else torch.empty(0, self.meta.num_classes)

    def test_probs(self) -> Tensor:
        """Probabilities on the whole test split, computed once (sample pickers sort by them)."""
        if self._test_probs is None:
            parts = [self.predict(inputs) for inputs in input_batches(self.bundle.test)]
            self._test_probs = torch.cat(parts) if parts else torch.empty(0, self.meta.num_classes)
        return self._test_probs


_cache: OrderedDict[tuple, LoadedRun] = OrderedDict()
_lock = threading.Lock()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def get_loaded_run(store: Store, run_id: int, checkpoint: str = "best",
                   device: str | torch.device = "cpu") -> LoadedRun:
    """The run's model from the LRU, loading it (safetensors only) when absent or changed."""
    path = store.checkpoint_path(run_id, checkpoint)
    if path is None:
        run = store.get_run(run_id)
        if run is None:
            raise DlxError(f"run: there is no run #{run_id}", field="run")
        raise no_checkpoint(run, checkpoint)
    stat = path.stat()
    device = torch.device(device)
    key = (store.url, run_id, checkpoint, str(path), stat.st_size, stat.st_mtime_ns, str(device))
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    model, config = load_run_model(store, run_id, checkpoint, device)
    loaded = LoadedRun(run_id, checkpoint, file_sha256(path), config, explainable_copy(model), device, store)
    with _lock:
        _cache[key] = loaded
        while len(_cache) > CAPACITY:
            _cache.popitem(last=False)
    return loaded
