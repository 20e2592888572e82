"""The data set seen through the model: each sample's penultimate-layer embedding (the input of the model's
final Linear layer, caught by a forward hook; or the output of a layer named), the model's prediction beside
it, and 2-D projections of the embeddings (PCA, UMAP, t-SNE), seeded so the same call gives the same map.

`embeddings(run_id)` is the library's way in (a DataFrame, one row per sample). The Explain page's Projector
runs the worker job "projector": embeddings of a split (or a seeded sample of N of it) and their projections,
stored in the explanation cache under a key of the task and the checkpoint file, so computed once per run
and checkpoint.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from db.models import Job
from dlx.data.text_tokens import crop, tokenize_split
from dlx.errors import DlxError, validated
from dlx.explain.cache import digest
from dlx.explain.influence import final_layer
from dlx.explain.models_cache import LoadedRun, get_loaded_run
from dlx.explain.samples import sample_inputs
from dlx.jobs.kinds import register_job_kind
from dlx.store import Store
from dlx.training.devices import resolve_device

KIND = "projector"
MAX_POINTS = 10_000  # points a job projects (and the page draws): a seeded sample of a larger split
BATCH = 256
PROJECTIONS = {"pca": "PCA", "umap": "UMAP", "tsne": "t-SNE"}
VECTOR_PREFIX = "e"  # embeddings() names the vector's columns e0, e1, ...

SplitName = Literal["test", "val", "train"]
Projection = Literal["pca", "umap", "tsne"]
DEFAULT_PROJECTIONS: tuple[Projection, ...] = ("pca", "umap")


# -- embeddings ----------------------------------------------------------------------------------------

@dataclass
class Embedded:
    """Samples of a split (their indices in it) with their embedding vectors and the model's probabilities."""

    indices: np.ndarray  # (N,) int
    vectors: np.ndarray  # (N, D) float32
    probs: np.ndarray  # (N, classes) float32
    labels: np.ndarray  # (N,) int: the split's true classes
    layer: str  # the layer whose input (default) or output (named) the vectors are

    @property
    def predicted(self) -> np.ndarray:
        return self.probs.argmax(1)

    @property
    def confidence(self) -> np.ndarray:
        return self.probs.max(1)

    def frame(self) -> pd.DataFrame:
        """One row per sample, indexed by its index in the split: label, predicted, confidence, correct,
        then the vector's columns e0..e{D-1}."""
        info = pd.DataFrame({"label": self.labels, "predicted": self.predicted, "confidence": self.confidence,
                             "correct": self.predicted == self.labels},
                            index=pd.Index(self.indices, name="sample"))
        names = [f"{VECTOR_PREFIX}{j}" for j in range(self.vectors.shape[1])]
        return pd.concat([info, pd.DataFrame(self.vectors, index=info.index, columns=names)], axis=1)


def vectors_of(frame: pd.DataFrame) -> np.ndarray:
    """The embedding vectors (N, D) of a frame `embeddings()` returned."""
    names = [c for c in frame.columns if c.startswith(VECTOR_PREFIX) and c[len(VECTOR_PREFIX):].isdigit()]
    return frame[names].to_numpy(np.float32)


def split_of(loaded: LoadedRun, split: str):
    """A split of the run's data set, tokenised for text models."""
    if split not in ("test", "val", "train"):
        raise DlxError(f"split: {split!r} is not a split; choose test, val or train", field="split")
    data = getattr(loaded.bundle, split)
    if loaded.meta.kind == "text":
        model = loaded.model
        data = tokenize_split(data, model.tokenizer, getattr(model, "max_length", 128))
    return data


def _batches(data, indices: np.ndarray, device: torch.device) -> Iterator[tuple[Tensor, ...]]:
    """The model's inputs for the indices, a batch at a time (text: ids and mask cropped to the batch)."""
    for start in range(0, len(indices), BATCH):
        rows = indices[start:start + BATCH].tolist()
        if data.attention_mask is not None:
            inputs: tuple[Tensor, ...] = crop(data.x[rows], data.attention_mask[rows])
        else:
            inputs = (sample_inputs(data, rows),)
        yield tuple(t.to(device) for t in inputs)


def _hooked_layer(model: nn.Module, layer: str | None, classes: int) -> tuple[str, nn.Module, bool]:
    """The module hooked, its name, and whether its input (the final Linear's) or its output is taken."""
    modules = dict(model.named_modules())
    if layer is None:
        name = final_layer(model, classes)
        return name, modules[name], True
    if layer not in modules or layer == "":
        raise DlxError(f"layer: {layer!r} is not a layer of this model; choose among "
                       f"{[n for n in modules if n][:20]}", field="layer")
    return layer, modules[layer], False


def embed(loaded: LoadedRun, split: str = "test", indices: np.ndarray | list[int] | None = None,
          layer: str | None = None) -> Embedded:
    """Embeddings and probabilities of the split's samples at `indices` (all by default), one forward pass
    per batch with a hook on the layer."""
    return embed_split(loaded, split_of(loaded, split), indices, layer, split)


@torch.no_grad()
def embed_split(loaded: LoadedRun, data, indices: np.ndarray | list[int] | None = None, layer: str | None = None,
                split: str = "given") -> Embedded:
    """`embed` on any split of the run's kind of data (tokenised for text), e.g. one made for a benchmark."""
    rows = np.arange(len(data)) if indices is None else np.asarray(indices, dtype=np.int64)
    outside = rows[(rows < 0) | (rows >= len(data))]
    if len(outside):
        raise DlxError(f"indices: {int(outside[0])} is outside the {split} split (0 to {len(data) - 1})",
                       field="indices")
    model = loaded.model
    name, module, takes_input = _hooked_layer(model, layer, loaded.meta.num_classes)
    caught: list[Tensor] = []

    def hook(_module: nn.Module, args: tuple, output: Any) -> None:
        value = args[0] if takes_input else (output[0] if isinstance(output, tuple) else output)
        caught.append(value.detach().float().flatten(1).cpu())

    vectors, probs = [], []
    with loaded.lock:
        handle = module.register_forward_hook(hook)
        try:
            for inputs in _batches(data, rows, loaded.device):
                caught.clear()
                logits = model(*inputs)
                probs.append(torch.softmax(logits.float(), 1).cpu())
                if not caught:
                    raise DlxError(f"layer: {name!r} took no part in the model's forward pass", field="layer")
                vectors.append(caught[-1])
        finally:
            handle.remove()
    width = vectors[0].shape[1] if vectors else 0
    return Embedded(rows, torch.cat(vectors).numpy() if vectors else np.zeros((0, width), np.float32),
                    torch.cat(probs).numpy() if probs else np.zeros((0, loaded.meta.num_classes), np.float32),
                    data.y[rows].numpy(), name)


def embeddings(run_id: int, split: str = "test", layer: str | None = None, *, store: Store | None = None,
               checkpoint: str = "best", device: str | torch.device = "cpu") -> pd.DataFrame:
    """One row per sample of the run's split, indexed by its index in the split ("sample"): the true label,
    the predicted class, its confidence, whether it is correct, then the embedding e0..e{D-1}: the input of
    the model's final Linear layer (the penultimate activations), or the output of `layer` flattened.
    `store` defaults to the configured one; `vectors_of(frame)` gives the (N, D) array."""
    if store is None:
        from dlx.store import default_store  # the library's edge: a caller without a store uses the configured one

        store = default_store()
    return embed(get_loaded_run(store, run_id, checkpoint, device), split, None, layer).frame()


# -- projections ---------------------------------------------------------------------------------------

def project(vectors: np.ndarray, method: str = "pca", seed: int = 0, dims: int = 2) -> np.ndarray:
    """(N, dims) coordinates of the vectors: PCA (sklearn), UMAP (umap-learn) or t-SNE (sklearn), seeded: the
    same vectors and seed give the same coordinates."""
    x = np.asarray(vectors, dtype=np.float32)
    n = len(x)
    if method not in PROJECTIONS:
        raise DlxError(f"projection: unknown projection {method!r}; choose one of {sorted(PROJECTIONS)}",
                       field="projection")
    if n <= dims:  # too few points to fit: each point keeps its first coordinates
        out = np.zeros((n, dims), np.float32)
        out[:, :min(dims, x.shape[1])] = x[:, :dims]
        return out
    # Imports here: sklearn and umap (numba) only in the processes that project.
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(dims, svd_solver="full").fit_transform(x).astype(np.float32)
    if method == "tsne":
        from sklearn.manifold import TSNE

        return TSNE(dims, perplexity=min(30.0, (n - 1) / 3), init="pca", random_state=seed).fit_transform(x)\
            .astype(np.float32)
    import umap  # a fixed random_state makes umap-learn run single-threaded: reproducible

    reducer = umap.UMAP(n_components=dims, n_neighbors=min(15, n - 1), random_state=seed, n_jobs=1,
                        init="spectral" if n > dims + 1 else "random")
    return np.asarray(reducer.fit_transform(x), dtype=np.float32)


# -- the job -------------------------------------------------------------------------------------------

class ProjectorTask(BaseModel):
    """What a projector job computes; its payload is exactly this, as JSON."""

    model_config = ConfigDict(extra="forbid")

    run_id: int
    checkpoint: str = "best"
    split: SplitName = "test"
    points: int = Field(MAX_POINTS, ge=1, le=MAX_POINTS)  # a seeded sample of this many where the split is larger
    layer: str | None = None  # None: the input of the final Linear layer
    projections: list[Projection] = Field(default_factory=lambda: list(DEFAULT_PROJECTIONS), min_length=1)
    seed: int = Field(0, ge=0)


def parse_task(payload: dict[str, Any]) -> ProjectorTask:
    return validated(ProjectorTask, payload)


@dataclass
class Projected:
    """A projector job's result: the embedded samples and their 2-D coordinates per projection."""

    embedded: Embedded
    coordinates: dict[str, np.ndarray]  # projection -> (N, 2)

    def to_stored(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        e = self.embedded
        tensors = {"indices": torch.as_tensor(e.indices), "vectors": torch.as_tensor(e.vectors),
                   "probs": torch.as_tensor(e.probs), "labels": torch.as_tensor(e.labels)}
        tensors.update({f"xy/{name}": torch.as_tensor(xy) for name, xy in self.coordinates.items()})
        return {"layer": e.layer, "projections": list(self.coordinates)}, tensors

    @classmethod
    def from_stored(cls, meta: dict[str, Any], tensors: dict[str, Tensor]) -> Projected:
        embedded = Embedded(tensors["indices"].numpy(), tensors["vectors"].numpy(), tensors["probs"].numpy(),
                            tensors["labels"].numpy(), meta["layer"])
        return cls(embedded, {name: tensors[f"xy/{name}"].numpy() for name in meta["projections"]})


def sample_indices(count: int, points: int, seed: int) -> np.ndarray:
    """Every index of a split of `count` samples, or a seeded sample of `points` of them (sorted)."""
    if count <= points:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, points, replace=False))


def task_key(task: ProjectorTask, checkpoint_id: str) -> str:
    return digest({"job": KIND, "task": task.model_dump(), "checkpoint": checkpoint_id})


def stored_projection(loaded: LoadedRun, task: ProjectorTask) -> Projected | None:
    """The task's stored result on the loaded checkpoint, or None when not computed."""
    found = loaded.store.explanations.load(task_key(task, loaded.checkpoint_id))
    return None if found is None else Projected.from_stored(*found)


def compute_projection(loaded: LoadedRun, task: ProjectorTask,
                       progress: Callable[[float], None] = lambda fraction: None) -> Projected:
    """Embed the task's samples, project them, and store the result under the task's key."""
    count = len(split_of(loaded, task.split))
    if count == 0:
        raise DlxError(f"split: the {task.split} split of run #{task.run_id} has no samples", field="split")
    embedded = embed(loaded, task.split, sample_indices(count, task.points, task.seed), task.layer)
    progress(0.5)
    coordinates: dict[str, np.ndarray] = {}
    for done, name in enumerate(task.projections, 1):
        coordinates[name] = project(embedded.vectors, name, task.seed)
        progress(0.5 + 0.5 * done / len(task.projections))
    result = Projected(embedded, coordinates)
    loaded.store.explanations.save(task_key(task, loaded.checkpoint_id), task.run_id, f"job:{KIND}",
                                   *result.to_stored())
    return result


def submit_task(store: Store, task: ProjectorTask) -> int:
    return store.queue.submit_job(KIND, task.model_dump(), task.run_id, "auto")


def find_job(store: Store, task: ProjectorTask) -> Job | None:
    return store.queue.find_job(KIND, task.run_id, task.model_dump())


@register_job_kind(KIND)
def projector_job(store: Store, job: Job) -> None:
    task = parse_task(job.payload)
    device = resolve_device(job.device)
    print(f"{KIND} job {job.id}: embeddings of up to {task.points} {task.split} samples of run #{task.run_id} "
          f"({task.checkpoint}), projected with {task.projections} on {device}", flush=True)
    loaded = get_loaded_run(store, task.run_id, task.checkpoint, device)
    compute_projection(loaded, task, lambda fraction: store.queue.set_progress(job.id, fraction))
    store.queue.set_progress(job.id, 1.0)
