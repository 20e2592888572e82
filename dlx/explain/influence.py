"""Training-data attribution with TracIn (Pruthi et al. 2020) over a run's own kept checkpoints
(`checkpoint_every`): which training examples pushed a prediction towards its class (proponents) or away
(opponents), and the whole training set ranked by self-influence (likely mislabelled or atypical first).

Captum computes every score: `TracInCPFast` on the model's final linear layer by default (images, tables,
and text, where that layer is the classifier head: the encoder's own weights are not covered), or
`TracInCP` on the layers a task names. Each checkpoint's learning rate is the run's schedule rebuilt from its
config, averaged over the steps since the previous kept checkpoint. Runs as the worker job "influence" with
progress; each part (the self-influence of the training set, one sample's scores over it) is stored in the
explanation cache under a key of the run's kept files, so it is computed once per checkpoint set.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from db.models import Job
from dlx.config import RunConfig
from dlx.data import DataBundle, load_dataset
from dlx.data.text_tokens import crop
from dlx.errors import DlxError, validated
from dlx.explain.cache import digest, tensor_digest
from dlx.explain.over_training import checkpoints_of
from dlx.jobs.kinds import register_job_kind
from dlx.store import Store
from dlx.training.checkpoints import load_run_model, read_weights
from dlx.training.devices import resolve_device
from dlx.training.kept import KeptCheckpoint
from dlx.training.label_noise import recorded_label_noise, with_recorded_labels
from dlx.training.train import make_schedule, permute_labels, tokenize_bundle

KIND = "influence"
MAX_SAMPLES = 16
BATCH = 512  # training examples per Captum batch: each batch loads every checkpoint's weights once
SHARES = (0.05, 0.10, 0.20)  # the top of the self-influence ranking where planted noise is counted

Split = Literal["test", "train"]


class InfluenceTask(BaseModel):
    """What an influence job computes; its payload is exactly this, as JSON."""

    model_config = ConfigDict(extra="forbid")

    run_id: int
    indices: list[int] = Field(default_factory=list, max_length=MAX_SAMPLES)  # samples whose proponents are wanted
    split: Split = "test"  # where `indices` point: test samples, or training examples (their own proponents)
    layers: list[str] = Field(default_factory=list)  # empty: TracInCPFast on the final layer; else TracInCP on these
    self_influence: bool = True


def parse_task(payload: dict[str, Any]) -> InfluenceTask:
    return validated(InfluenceTask, payload)


@dataclass
class SelfInfluence:
    """The training set's self-influence (index i: training example i) and the checkpoints it sums over."""

    scores: np.ndarray
    names: list[str]
    epochs: list[int]
    rates: list[float]
    layers: list[str]
    labels: np.ndarray  # the labels the run trained on (planted noise included)

    @property
    def ranking(self) -> list[int]:
        """Training indices, most self-influential first (ties by index)."""
        return np.argsort(-self.scores, kind="stable").tolist()


@dataclass
class SampleInfluence:
    """One sample's influence scores over the training set, for the class `target` (its prediction)."""

    index: int
    split: Split | Literal["upload"]  # an upload's index is its place in the batch it came in
    target: int
    label: int  # its label in the split (a training example's as the run trained on it)
    scores: np.ndarray

    def top(self, k: int, proponents: bool = True) -> list[tuple[int, float]]:
        """The k training examples with the highest (proponents) or lowest (opponents) scores, with them."""
        order = np.argsort(-self.scores if proponents else self.scores, kind="stable")[:k]
        return [(int(i), float(self.scores[i])) for i in order]


# -- keys and the stored parts ------------------------------------------------------------------------

def _files(kept: list[KeptCheckpoint]) -> list[tuple[str, int, int]]:
    return [(k.name, k.size_bytes, k.path.stat().st_mtime_ns) for k in kept]


def self_key(run_id: int, layers: list[str], kept: list[KeptCheckpoint]) -> str:
    return digest({"job": KIND, "part": "self", "run": run_id, "layers": layers, "checkpoints": _files(kept)})


def sample_key(run_id: int, layers: list[str], kept: list[KeptCheckpoint], split: Split, index: int) -> str:
    return digest({"job": KIND, "part": "sample", "run": run_id, "layers": layers, "checkpoints": _files(kept),
                   "split": split, "index": index})


def upload_key(run_id: int, layers: list[str], kept: list[KeptCheckpoint], image: str) -> str:
    return digest({"job": KIND, "part": "upload", "run": run_id, "layers": layers, "checkpoints": _files(kept),
                   "input": image})


def stored_self_influence(store: Store, run_id: int, layers: list[str] | None = None) -> SelfInfluence | None:
    """The training set's self-influence on the run's current kept checkpoints, or None when not computed."""
    layers = layers or []
    found = store.explanations.load(self_key(run_id, layers, checkpoints_of(store, run_id)))
    if found is None:
        return None
    meta, tensors = found
    return SelfInfluence(tensors["scores"].numpy(), meta["names"], meta["epochs"], meta["rates"], meta["layers"],
                         tensors["labels"].numpy())


def stored_sample_influence(store: Store, run_id: int, index: int, split: Split = "test",
                            layers: list[str] | None = None) -> SampleInfluence | None:
    found = store.explanations.load(sample_key(run_id, layers or [], checkpoints_of(store, run_id), split, index))
    if found is None:
        return None
    meta, tensors = found
    return SampleInfluence(index, split, meta["target"], meta["label"], tensors["scores"].numpy())


def upload_influence(store: Store, run_id: int, inputs: Tensor, layers: list[str] | None = None,
                     device: str | torch.device = "cpu", compute: bool = True) -> list[SampleInfluence] | None:
    """Proponents and opponents of inputs that are not in the run's data (an uploaded image), for the class
    the final kept checkpoint predicts: computed here (an input costs what a test sample's job does, a pass
    over the training set per checkpoint) and cached by each input's digest. None when `compute` is off and
    any of them is not stored yet."""
    layers = layers or []
    kept = checkpoints_of(store, run_id)
    keys = [upload_key(run_id, layers, kept, tensor_digest(x)) for x in inputs]
    found = store.explanations.load_many(keys)
    missing = [i for i, key in enumerate(keys) if key not in found]
    if missing and not compute:
        return None
    if missing:
        setup = _setup(store, run_id, torch.device(device))
        x = inputs[missing].to(setup.device)
        with torch.no_grad():  # the final kept checkpoint's prediction, before TracIn loads the others
            targets = setup.model(x).argmax(1)
        scores = tracin(setup, layers).influence((x, targets), k=None).detach().cpu()
        named = layers or [final_layer(setup.model, setup.bundle.meta.num_classes)]
        for i, target, row in zip(missing, targets.tolist(), scores):
            found[keys[i]] = ({"target": target, "label": -1, "split": "upload", "index": i, "layers": named},
                              {"scores": row.clone()})
            store.explanations.save(keys[i], run_id, f"job:{KIND}", *found[keys[i]])
    return [SampleInfluence(i, "upload", found[key][0]["target"], -1, found[key][1]["scores"].numpy())
            for i, key in enumerate(keys)]


def missing_parts(store: Store, task: InfluenceTask) -> InfluenceTask | None:
    """The part of the task not stored yet (None: all of it is)."""
    kept = checkpoints_of(store, task.run_id)
    keys = [sample_key(task.run_id, task.layers, kept, task.split, i) for i in task.indices]
    if task.self_influence:
        keys.append(self_key(task.run_id, task.layers, kept))
    found = store.explanations.load_many(keys)
    indices = [i for i, key in zip(task.indices, keys) if key not in found]
    wants_self = task.self_influence and keys[-1] not in found
    if not indices and not wants_self:
        return None
    return task.model_copy(update={"indices": indices, "self_influence": wants_self})


def submit_task(store: Store, task: InfluenceTask) -> int:
    checkpoints_of(store, task.run_id)  # refused now, not in the job
    return store.queue.submit_job(KIND, task.model_dump(), task.run_id, "auto")


def find_job(store: Store, task: InfluenceTask) -> Job | None:
    return store.queue.find_job(KIND, task.run_id, task.model_dump())


# -- planted noise -------------------------------------------------------------------------------------

def noise_recall(ranking: list[int], flipped: list[int]) -> dict[str, Any]:
    """How well a ranking finds the flipped labels: recall in its top 5/10/20% and its average precision
    (AUPRC), beside what a random ranking scores in expectation (recall = the share, AUPRC = the noise rate)."""
    n, wanted = len(ranking), set(flipped)
    hit = np.array([i in wanted for i in ranking], dtype=float)
    found = np.cumsum(hit)
    recall = {share: float(found[max(1, round(share * n)) - 1] / max(1, len(wanted))) for share in SHARES}
    precision_at_hits = found[hit > 0] / (np.flatnonzero(hit) + 1)
    auprc = float(precision_at_hits.mean()) if len(precision_at_hits) else 0.0
    return {"recall": recall, "auprc": auprc,
            "random": {"recall": {share: share for share in SHARES}, "auprc": len(wanted) / max(1, n)},
            "flipped": len(wanted), "train_size": n}


# -- computing -----------------------------------------------------------------------------------------

def checkpoint_rates(config: RunConfig, steps_per_epoch: int, epochs: list[int]) -> list[float]:
    """Each kept checkpoint's learning rate: the run's schedule (rebuilt from its config) averaged over the
    optimizer steps since the previous kept checkpoint, as TracIn weighs each checkpoint's gradients."""
    total = steps_per_epoch * config.epochs
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=config.lr)
    schedule = make_schedule(config, optimizer, total)
    used = np.empty(total)  # the lr each step trained with
    for step in range(total):
        used[step] = optimizer.param_groups[0]["lr"]
        if schedule is not None and step + 1 < total:
            optimizer.step()
            schedule.step()
    rates, start = [], 0
    for epoch in epochs:
        end = min(epoch * steps_per_epoch, total)
        rates.append(float(used[start:end].mean()) if end > start else float(used[end - 1]))
        start = end
    return rates


def final_layer(model: nn.Module, classes: int) -> str:
    """The name of the model's last linear layer giving the class scores (TracInCPFast's layer)."""
    names = [name for name, m in model.named_modules() if isinstance(m, nn.Linear) and m.out_features == classes]
    if not names:
        raise DlxError("layers: this model has no final linear layer of one output per class; name the "
                       "layers to use", field="layers")
    return names[-1]


def layer_choices(model: nn.Module) -> list[str]:
    """The layers TracInCP can take, in the model's order: linear and convolution layers (the ones Captum's
    per-sample gradients cover) that run their own forward (not the projections inside an attention block)."""
    inside_attention = {f"{name}.{child}" for name, m in model.named_modules()
                        if isinstance(m, nn.MultiheadAttention) for child, _ in m.named_modules() if child}
    return [name for name, m in model.named_modules()
            if isinstance(m, nn.Linear | nn.Conv2d) and name not in inside_attention]


@dataclass
class _Setup:
    run_id: int
    model: nn.Module
    config: RunConfig
    bundle: DataBundle
    kept: list[KeptCheckpoint]
    rates: list[float]
    device: torch.device


def _setup(store: Store, run_id: int, device: torch.device) -> _Setup:
    kept = checkpoints_of(store, run_id)
    run = store.get_run(run_id)
    assert run is not None  # checkpoints_of found its checkpoints
    # A private copy of the model (not the pages' shared one): Captum loads each checkpoint's weights into it.
    model, config = load_run_model(store, run_id, kept[-1].name, device)
    bundle = load_dataset(config.dataset, config.seed, config.val_fraction, config.test_fraction)
    if config.label_permutation:
        bundle = permute_labels(bundle, config.seed)
    bundle = tokenize_bundle(with_recorded_labels(bundle, recorded_label_noise(store, run_id)), model)
    spe = run.summary.get("steps_per_epoch") or math.ceil(len(bundle.train) / config.batch_size)
    return _Setup(run_id, model, config, bundle, kept, checkpoint_rates(config, int(spe), [k.epoch for k in kept]), device)


def _columns(split, device: torch.device, rows: list[int] | None = None) -> tuple[Tensor, ...]:
    """A split's model inputs (text: ids and mask, cropped to the longest sentence) and labels, on the device."""
    index = slice(None) if rows is None else rows
    x = split.x[index]
    inputs = (x,) if split.attention_mask is None else crop(x, split.attention_mask[index])
    return tuple(t.to(device) for t in (*inputs, split.y[index]))


def tracin(setup: _Setup, layers: list[str], tick: Callable[[], None] = lambda: None):
    """Captum's TracIn over the run's training set and kept checkpoints (with their learning rates)."""
    from captum.influence import TracInCP, TracInCPFast  # captum: only the processes that compute influence

    weights = {k.name: read_weights(k.path, setup.run_id) for k in setup.kept}
    rates = {k.name: rate for k, rate in zip(setup.kept, setup.rates)}

    def load(model: nn.Module, name: str) -> float:
        model.load_state_dict(weights[name])
        model.eval()
        tick()
        return rates[name]

    train = DataLoader(TensorDataset(*_columns(setup.bundle.train, setup.device)), batch_size=BATCH)
    names = [k.name for k in setup.kept]
    loss = nn.CrossEntropyLoss(reduction="sum")
    if not layers:
        layer = dict(setup.model.named_modules())[final_layer(setup.model, setup.bundle.meta.num_classes)]
        return TracInCPFast(setup.model, layer, train, names, load, loss_fn=loss, batch_size=BATCH)
    known = dict(setup.model.named_modules())
    unknown = [name for name in layers if name not in known or name == ""]
    if unknown:
        raise DlxError(f"layers: {unknown[0]!r} is not a layer of this model; choose among "
                       f"{[n for n in known if n][:20]}", field="layers")
    return TracInCP(setup.model, train, names, load, layers=layers, loss_fn=loss, batch_size=BATCH,
                    sample_wise_grads_per_batch=True)


def influence(store: Store, task: InfluenceTask, device: str | torch.device = "cpu",
              progress: Callable[[float], None] | None = None) -> None:
    """Compute the task's parts not stored yet and store each under its key."""
    todo = missing_parts(store, task)
    if todo is None:
        return
    setup = _setup(store, task.run_id, torch.device(device))
    split = setup.bundle.test if todo.split == "test" else setup.bundle.train
    outside = [i for i in todo.indices if not 0 <= i < len(split)]
    if outside:
        raise DlxError(f"indices: {outside[0]} is outside the {todo.split} split (0 to {len(split) - 1})",
                       field="indices")
    batches = math.ceil(len(setup.bundle.train) / BATCH)
    loads = len(setup.kept) * (int(todo.self_influence) + (batches if todo.indices else 0))
    done = [0]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress(min(1.0, done[0] / max(1, loads)))

    model, kept = setup.model, setup.kept
    targets: list[int] = []
    if todo.indices:  # the class each sample's prediction is: its final checkpoint's (the model as loaded)
        inputs = _columns(split, setup.device, todo.indices)[:-1]
        with torch.no_grad():
            targets = model(*inputs).argmax(1).tolist()
    method = tracin(setup, todo.layers, tick)
    layers = todo.layers or [final_layer(model, setup.bundle.meta.num_classes)]
    save = store.explanations.save
    if todo.indices:
        scores = method.influence((*inputs, torch.tensor(targets, device=setup.device)), k=None).detach().cpu()
        for i, target, row in zip(todo.indices, targets, scores):
            save(sample_key(task.run_id, todo.layers, kept, todo.split, i), task.run_id, f"job:{KIND}",
                 {"target": target, "label": int(split.y[i]), "split": todo.split, "index": i,
                  "layers": layers}, {"scores": row.clone()})
    if todo.self_influence:
        scores = method.self_influence(outer_loop_by_checkpoints=True).detach().cpu()
        meta = {"names": [k.name for k in kept], "epochs": [k.epoch for k in kept], "rates": setup.rates,
                "layers": layers}
        save(self_key(task.run_id, todo.layers, kept), task.run_id, f"job:{KIND}", meta,
             {"scores": scores, "labels": setup.bundle.train.y.clone()})


@register_job_kind(KIND)
def influence_job(store: Store, job: Job) -> None:
    task = parse_task(job.payload)
    device = resolve_device(job.device)
    print(f"{KIND} job {job.id}: TracIn on run #{task.run_id} (self-influence {task.self_influence}, "
          f"{len(task.indices)} {task.split} samples) over its kept checkpoints on {device}", flush=True)
    influence(store, task, device, lambda fraction: store.queue.set_progress(job.id, fraction))
    store.queue.set_progress(job.id, 1.0)
