"""Explanations over training: the same samples explained under each checkpoint a run kept
(`checkpoint_every`), with the prediction under each, faithfulness per epoch and the Spearman rank
correlation of each map with the final checkpoint's ("when the explanation settles").

Runs as the worker job "explain_over_training" with progress; each checkpoint's maps go through the
explanation cache (keyed with the checkpoint's id), so a map computed once on a checkpoint is read back,
and the whole result is stored under a key of the task and the kept files.
Text runs the same: token attributions and the last layer's attention (heads averaged) per checkpoint.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from db.models import Job
from dlx.errors import DlxError, validated
from dlx.explain.attention.text import attention_maps, spearman
from dlx.explain.cache import digest, explain_cached_many, explain_text_cached
from dlx.explain.faithfulness import deletion_insertion
from dlx.explain.image.baselines import BASELINES, make_baseline
from dlx.explain.image.localisation import mask_mass
from dlx.explain.methods import get_method, get_way
from dlx.explain.models_cache import LoadedRun, get_loaded_run
from dlx.explain.samples import sample_inputs
from dlx.explain.text.tokens import encode
from dlx.jobs.kinds import register_job_kind
from dlx.store import Store
from dlx.training.devices import resolve_device
from dlx.training.kept import KeptCheckpoint, kept_checkpoints

KIND = "explain_over_training"
MAX_SAMPLES = 16


class OverTrainingTask(BaseModel):
    """What an explain_over_training job computes; its payload is exactly this, as JSON."""

    model_config = ConfigDict(extra="forbid")

    run_id: int
    methods: list[str] = Field(min_length=1)
    indices: list[int] = Field(min_length=1, max_length=MAX_SAMPLES)  # test samples (sentences for text)
    text: bool = False  # a text run: the methods' text ways, sentences for samples
    baseline: str = "zeros"
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    target: Literal["final", "true"] = "final"  # the class the final checkpoint predicts, or the true one

    def check(self) -> OverTrainingTask:
        """Resolve every method's parameters now, so a mistake is reported before queuing."""
        if self.baseline not in BASELINES:
            raise DlxError(f"baseline: unknown baseline {self.baseline!r}; choose one of {sorted(BASELINES)}",
                           field="baseline")
        way = (lambda m: get_way(m, "text")) if self.text else (lambda m: get_method(m).on_tensors)
        resolved = {m: way(m).resolve(self.params.get(m, {})) for m in self.methods}
        return self.model_copy(update={"params": resolved})


def parse_task(payload: dict[str, Any]) -> OverTrainingTask:
    return validated(OverTrainingTask, payload).check()


@dataclass
class OverTraining:
    """Per kept checkpoint (axis 0) and sample (axis 1): predictions, maps and scores."""

    names: list[str]
    epochs: list[int]
    indices: list[int]
    targets: list[int]
    probs: np.ndarray  # (C, N, classes)
    maps: dict[str, list[list[Tensor]]] = field(default_factory=dict)  # method -> [checkpoint][sample]
    # method -> metric -> (C, N): spearman (with the final map), deletion_auc, insertion_auc, mask_mass
    metrics: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    tokens: list[list[str]] | None = None  # text: each sentence's word pieces
    attention: list[list[Tensor]] | None = None  # text: [checkpoint][sample] (T, T), last layer, heads averaged

    def curve(self, method: str, metric: str) -> np.ndarray:
        """(C,) the metric's mean over the samples at each checkpoint (NaN where no sample has one)."""
        values = self.metrics[method][metric]
        counted = np.isfinite(values).sum(1)
        return np.where(counted > 0, np.nansum(values, 1) / np.maximum(counted, 1), np.nan)

    def to_stored(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        meta = {"names": self.names, "tokens": self.tokens, "methods": list(self.maps)}
        tensors = {"epochs": torch.tensor(self.epochs), "indices": torch.tensor(self.indices),
                   "targets": torch.tensor(self.targets), "probs": torch.as_tensor(self.probs)}
        for method, per_checkpoint in self.maps.items():
            for c, maps in enumerate(per_checkpoint):
                for i, values in enumerate(maps):
                    tensors[f"map/{method}/{c}/{i}"] = values.contiguous()
            for metric, scores in self.metrics[method].items():
                tensors[f"metric/{method}/{metric}"] = torch.as_tensor(scores)
        for c, maps in enumerate(self.attention or []):
            for i, values in enumerate(maps):
                tensors[f"attention/{c}/{i}"] = values.contiguous()
        return meta, tensors

    @classmethod
    def from_stored(cls, meta: dict[str, Any], tensors: dict[str, Tensor]) -> OverTraining:
        c, n = len(meta["names"]), len(tensors["indices"])
        result = cls(meta["names"], tensors["epochs"].tolist(), tensors["indices"].tolist(),
                     tensors["targets"].tolist(), tensors["probs"].numpy(), tokens=meta["tokens"])
        for method in meta["methods"]:
            result.maps[method] = [[tensors[f"map/{method}/{k}/{i}"] for i in range(n)] for k in range(c)]
            prefix = f"metric/{method}/"
            result.metrics[method] = {name.removeprefix(prefix): value.numpy()
                                      for name, value in tensors.items() if name.startswith(prefix)}
        if "attention/0/0" in tensors:
            result.attention = [[tensors[f"attention/{k}/{i}"] for i in range(n)] for k in range(c)]
        return result


def checkpoints_of(store: Store, run_id: int) -> list[KeptCheckpoint]:
    """The run's kept checkpoints; a DlxError saying how to get some when it kept none."""
    kept = kept_checkpoints(store, run_id)
    if not kept:
        raise DlxError(f"checkpoint: run #{run_id} kept no checkpoints over training; launch it with "
                       "checkpoint_every=1 (Launch, More options) to see its explanations change", field="checkpoint")
    return kept


def task_key(task: OverTrainingTask, kept: list[KeptCheckpoint]) -> str:
    """The task and the kept files' identities (name, size, modification time: no file is read)."""
    files = [(k.name, k.size_bytes, k.path.stat().st_mtime_ns) for k in kept]
    return digest({"job": KIND, "task": task.check().model_dump(), "checkpoints": files})


def task_result(store: Store, task: OverTrainingTask) -> OverTraining | None:
    """The stored result of this task on the run's current checkpoints, or None when not computed."""
    stored = store.explanations.load(task_key(task, checkpoints_of(store, task.run_id)))
    return None if stored is None else OverTraining.from_stored(*stored)


def submit_task(store: Store, task: OverTrainingTask) -> int:
    task = task.check()
    checkpoints_of(store, task.run_id)  # refused now, not in the job
    return store.queue.submit_job(KIND, task.model_dump(), task.run_id, "auto")


def find_job(store: Store, task: OverTrainingTask) -> Job | None:
    return store.queue.find_job(KIND, task.run_id, task.check().model_dump())


def over_training(store: Store, task: OverTrainingTask, device: str | torch.device = "cpu",
                  progress: Callable[[float], None] | None = None) -> OverTraining:
    """Compute the task over every kept checkpoint and store it under its key."""
    task = task.check()
    kept = checkpoints_of(store, task.run_id)
    loads = (lambda k: get_loaded_run(store, task.run_id, k.name, device))
    final = loads(kept[-1])
    count = len(final.bundle.test.texts) if task.text else len(final.bundle.test)
    outside = [i for i in task.indices if not 0 <= i < count]
    if outside:
        raise DlxError(f"indices: {outside[0]} is outside the test split (0 to {count - 1})", field="indices")
    compute = _over_sentences if task.text else _over_samples
    result = compute(final, loads, kept, task, progress or (lambda fraction: None))
    for method, per_checkpoint in result.maps.items():
        result.metrics[method]["spearman"] = np.array(
            [[spearman(m.flatten().numpy(), last.flatten().numpy()) for m, last in zip(maps, per_checkpoint[-1])]
             for maps in per_checkpoint])
    store.explanations.save(task_key(task, kept), task.run_id, f"job:{KIND}", *result.to_stored())
    return result


def _over_samples(final: LoadedRun, loads, kept: list[KeptCheckpoint], task: OverTrainingTask,
                  progress: Callable[[float], None]) -> OverTraining:
    """Images and tables: each checkpoint's maps (through the cache), deletion/insertion and mask mass."""
    test = final.bundle.test
    inputs = sample_inputs(test, task.indices)
    targets = (final.predict(inputs).argmax(1) if task.target == "final" else test.y[task.indices]).tolist()
    masks = test.extras["mask"][task.indices] if "mask" in test.extras else None
    probs = []
    result = OverTraining([k.name for k in kept], [k.epoch for k in kept], task.indices, targets, np.empty(0))
    for method in task.methods:
        result.maps[method] = []
        names = ["deletion_auc", "insertion_auc"] + (["mask_mass"] if masks is not None else [])
        result.metrics[method] = {name: np.full((len(kept), len(inputs)), np.nan) for name in names}
    for c, checkpoint in enumerate(kept):
        loaded = loads(checkpoint)
        probs.append(loaded.predict(inputs).numpy())
        found = explain_cached_many(loaded, inputs, targets, task.methods, task.baseline, task.params)
        x = inputs.to(loaded.device)
        target = torch.tensor(targets, device=loaded.device)
        base = make_baseline(task.baseline, x, loaded.meta.mean)
        for method in task.methods:
            values = found[method].values.cpu()
            result.maps[method].append(list(values))
            with loaded.lock:
                curves = deletion_insertion(loaded.model, x, values.to(loaded.device), target, base)
            scores = result.metrics[method]
            scores["deletion_auc"][c], scores["insertion_auc"][c] = curves.deletion_auc, curves.insertion_auc
            if masks is not None:
                scores["mask_mass"][c] = mask_mass(values, masks).numpy()
        progress((c + 1) / len(kept))
    result.probs = np.stack(probs)
    return result


def _over_sentences(final: LoadedRun, loads, kept: list[KeptCheckpoint], task: OverTrainingTask,
                    progress: Callable[[float], None]) -> OverTraining:
    """Text: each checkpoint's token attributions (through the cache) and its last layer's attention."""
    test = final.bundle.test
    model = final.model
    sentences = [encode(model.tokenizer, test.texts[i], getattr(model, "max_length", 128)) for i in task.indices]
    final_probs = _sentence_probs(final, sentences)
    targets = (final_probs.argmax(1) if task.target == "final" else test.y[task.indices].numpy()).tolist()
    attention: list[list[Tensor]] = []
    result = OverTraining([k.name for k in kept], [k.epoch for k in kept], task.indices, targets, np.empty(0),
                          tokens=[list(e.tokens) for e in sentences], attention=attention)
    for method in task.methods:
        result.maps[method], result.metrics[method] = [], {}
    probs = []
    for c, checkpoint in enumerate(kept):
        loaded = loads(checkpoint)
        probs.append(_sentence_probs(loaded, sentences))
        for method in task.methods:
            # Text methods run with their defaults, as the page's token view calls them (cache shared).
            result.maps[method].append([explain_text_cached(loaded, e, method, t).values.cpu()
                                        for e, t in zip(sentences, targets)])
        with loaded.lock:
            attention.append([attention_maps(loaded.model, e)[-1].mean(0) for e in sentences])
        progress((c + 1) / len(kept))
    result.probs = np.stack(probs)
    return result


@torch.no_grad()
def _sentence_probs(loaded: LoadedRun, sentences) -> np.ndarray:
    device = loaded.device
    with loaded.lock:
        return np.stack([torch.softmax(loaded.model(e.input_ids.to(device), e.attention_mask.to(device)).float(),
                                       -1)[0].cpu().numpy() for e in sentences])


@register_job_kind(KIND)
def over_training_job(store: Store, job: Job) -> None:
    task = parse_task(job.payload)
    device = resolve_device(job.device)
    print(f"{KIND} job {job.id}: {task.methods} on {len(task.indices)} samples of run #{task.run_id} "
          f"over its kept checkpoints on {device}", flush=True)
    over_training(store, task, device, lambda fraction: store.queue.set_progress(job.id, fraction))
    store.queue.set_progress(job.id, 1.0)
