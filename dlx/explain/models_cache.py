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
from dlx.data.registry import Split
from dlx.errors import DlxError
from dlx.explain.image.layers import explainable_copy
from dlx.explain.samples import input_batches
from dlx.models.saved_pretrained import FORMAT, load_saved, read_samples
from dlx.store import Store
from dlx.tracking.models import FORMAT as BUILT
from dlx.tracking.models import builder_function
from dlx.training.checkpoints import load_run_model, no_checkpoint, read_weights

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


@dataclass
class SavedTextRun(LoadedRun):
    """A run whose checkpoint is a transformers `save_pretrained` folder (the Trainer integration's):
    its test split is the sentences stored beside the weights, not a registered data set's."""

    data: DataBundle | None = field(default=None, repr=False)

    @property
    def bundle(self) -> DataBundle:
        assert self.data is not None  # set by load_saved_run
        return self.data


def load_saved_run(store: Store, run_id: int, checkpoint: str, path: Path, device: torch.device) -> SavedTextRun:
    """The save_pretrained folder holding `path` as a text run: the model and its stored sentences."""
    run = store.get_run(run_id)
    model = load_saved(path.parent).to(device)
    texts, labels, classes = read_samples(path.parent)
    labels_of = getattr(model.encoder.config, "id2label", None) or {}
    classes = classes or [str(labels_of.get(i, i)) for i in range(model.encoder.config.num_labels)]
    meta = DatasetMeta(f"run-{run_id}-samples", "text", tuple(classes), (model.max_length,))
    empty = torch.zeros((len(texts), 0), dtype=torch.int64)
    test = Split(empty, torch.tensor(labels, dtype=torch.int64), texts=tuple(texts))
    none = Split(torch.zeros((0, 0), dtype=torch.int64), torch.zeros(0, dtype=torch.int64))
    config = RunConfig(dataset=meta.name, model=str((run.config if run else {}).get("model", "transformers")))
    return SavedTextRun(run_id, checkpoint, file_sha256(path), config, model, device, store,
                        data=DataBundle(meta, none, none, test))


_cache: OrderedDict[tuple, LoadedRun] = OrderedDict()
_lock = threading.Lock()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checkpoint_meta(store: Store, run_id: int, checkpoint: str) -> dict:
    """What a run's checkpoint artifact says of itself: no "format" for dlx's own file of a registry model,
    "transformers" for a save_pretrained folder, "builder" for a model logged by `run.log_model`."""
    for artifact in store.artifacts(run_id, "checkpoint"):
        if artifact.name == checkpoint:
            return dict(artifact.meta or {})
    return {}


def load_builder_run(store: Store, run_id: int, checkpoint: str, path: Path, meta: dict,
                     device: torch.device) -> LoadedRun:
    """A model logged with `run.log_model`: rebuilt by its builder (the user's code, where allowed), its weights
    loaded from safetensors, explained on the registered data set it declared."""
    model = builder_function(str(meta.get("builder")))(**dict(meta.get("kwargs") or {}))
    if not isinstance(model, nn.Module):
        raise DlxError(f"builder: {meta.get('builder')} returned a {type(model).__name__}, not a torch module",
                       field="builder")
    try:
        model.load_state_dict(read_weights(path, run_id))
    except RuntimeError as err:
        raise DlxError(f"checkpoint: the weights of run #{run_id} do not fit the model {meta.get('builder')} builds "
                       f"({str(err).splitlines()[0]})", field="checkpoint") from None
    config = RunConfig(dataset=str(meta.get("input")), model=str(meta.get("builder")))
    load_dataset(config.dataset)  # an unknown data set is a DlxError naming it, now
    return LoadedRun(run_id, checkpoint, file_sha256(path), config, explainable_copy(model).to(device).eval(),
                     device, store)


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
    loaded: LoadedRun
    meta = checkpoint_meta(store, run_id, checkpoint)
    if meta.get("format") == FORMAT:
        loaded = load_saved_run(store, run_id, checkpoint, path, device)
    elif meta.get("format") == BUILT:
        loaded = load_builder_run(store, run_id, checkpoint, path, meta, device)
    else:
        model, config = load_run_model(store, run_id, checkpoint, device)
        loaded = LoadedRun(run_id, checkpoint, file_sha256(path), config, explainable_copy(model), device, store)
    with _lock:
        _cache[key] = loaded
        while len(_cache) > CAPACITY:
            _cache.popitem(last=False)
    return loaded
