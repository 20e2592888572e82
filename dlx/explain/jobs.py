"""Explanation work over many samples runs as a job on the worker (on a GPU if any): three job kinds.

"explain" (images and tables: global importance, or faithfulness over N test samples),
"explain_text" (scoring text methods over N test sentences) and "sanity" (the methods' sanity
checks against randomised models, dlx.explain.sanity). A task is validated here, queued,
run in the job's own process with its progress written to the job row, and its result stored in
the explanation cache under a key of the task, where the page finds it.
"""
from __future__ import annotations

import contextlib
from typing import Any, Literal, overload

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from db.models import Job
from dlx.errors import DlxError, validated
from dlx.explain import cache
from dlx.explain.image.baselines import BASELINES
from dlx.explain.image.importance import GlobalImportance, global_importance
from dlx.explain.methods import available_methods, get_method, get_way
from dlx.explain.models_cache import LoadedRun, get_loaded_run
from dlx.explain.samples import pick_samples, sample_inputs
from dlx.explain.sanity import check_methods
from dlx.explain.scoring import Scores, TextScores, score_methods, score_text_methods
from dlx.explain.text.tokens import encode
from dlx.jobs.kinds import register_job_kind
from dlx.store import Store
from dlx.training.devices import resolve_device

TEXT_KIND = "explain_text"
SANITY_KIND = "sanity"
SANITY_RESULT = "job:sanity"  # the explanation cache's method name of a sanity job's result


class ExplainTask(BaseModel):
    """What an explain job computes (images, tables); its payload is exactly this, as JSON."""

    model_config = ConfigDict(extra="forbid")

    run_id: int
    task: Literal["global_importance", "faithfulness"]
    methods: list[str] = Field(min_length=1)
    n_samples: int = Field(100, ge=1, le=100_000)
    baseline: str = "zeros"
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    checkpoint: str = "best"
    sensitivity: bool = True  # faithfulness only: max-sensitivity recomputes every map a few times

    def check(self) -> ExplainTask:
        """Resolve every method's parameters now, so a mistake is reported before queuing."""
        if self.baseline not in BASELINES:
            raise DlxError(f"baseline: unknown baseline {self.baseline!r}; choose one of "
                           f"{sorted(BASELINES)}", field="baseline")
        resolved = {m: get_method(m).on_tensors.resolve(self.params.get(m, {})) for m in self.methods}
        return self.model_copy(update={"params": resolved})


class TextTask(BaseModel):
    """What an explain_text job computes; its payload is exactly this, as JSON."""

    model_config = ConfigDict(extra="forbid")

    run_id: int
    methods: list[str] = Field(min_length=1)
    n_samples: int = Field(100, ge=1, le=100_000)
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    k: int = Field(3, ge=1, le=100)  # rationale recall@k
    checkpoint: str = "best"

    def check(self) -> TextTask:
        """Resolve every method's parameters now, so a mistake is reported before queuing."""
        resolved = {m: get_way(m, "text").resolve(self.params.get(m, {})) for m in self.methods}
        return self.model_copy(update={"params": resolved})


class SanityTask(BaseModel):
    """What a sanity job checks (images, tables); its payload is exactly this, as JSON."""

    model_config = ConfigDict(extra="forbid")

    run_id: int
    methods: list[str] = Field(min_length=1)
    n_samples: int = Field(32, ge=2, le=10_000)  # a seeded random draw from the test split
    against: int | None = None  # a run of the same data trained with label_permutation: data randomisation
    seed: int = Field(0, ge=0, le=2**31 - 1)  # the samples' draw and the randomised layers' weights
    baseline: str = "zeros"
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    checkpoint: str = "best"

    def check(self) -> SanityTask:
        """Resolve every method's parameters now, so a mistake is reported before queuing."""
        if self.baseline not in BASELINES:
            raise DlxError(f"baseline: unknown baseline {self.baseline!r}; choose one of "
                           f"{sorted(BASELINES)}", field="baseline")
        resolved = {m: get_method(m).on_tensors.resolve(self.params.get(m, {})) for m in self.methods}
        return self.model_copy(update={"params": resolved})


Task = ExplainTask | TextTask
Queued = Task | SanityTask  # what a job of this module computes


def job_kind(task: Queued) -> str:
    if isinstance(task, SanityTask):
        return SANITY_KIND
    return TEXT_KIND if isinstance(task, TextTask) else "explain"


@overload
def parse_task(payload: dict[str, Any]) -> ExplainTask: ...
@overload
def parse_task(payload: dict[str, Any], kind: type[TextTask]) -> TextTask: ...
def parse_task(payload: dict[str, Any], kind: type[Task] = ExplainTask) -> Task:
    return validated(kind, payload).check()


def parse_sanity_task(payload: dict[str, Any]) -> SanityTask:
    return validated(SanityTask, payload).check()


def task_key(loaded: LoadedRun, task: Task) -> str:
    if isinstance(task, TextTask):
        return cache.digest({"job": TEXT_KIND, "task": task.check().model_dump(),
                             "checkpoint_id": loaded.checkpoint_id})
    return cache.digest({"job": task.check().model_dump(), "checkpoint_id": loaded.checkpoint_id})


def submit_task(store: Store, task: Queued) -> int:
    """Queue the task as a job on its run; returns the job id."""
    task = task.check()
    if isinstance(task, SanityTask):
        sanity_runs(store, task)  # the runs, their kind and the methods checked before queuing
    return store.queue.submit_job(job_kind(task), task.model_dump(), task.run_id, "auto")


def find_job(store: Store, task: Queued) -> Job | None:
    """The latest job (any status) computing exactly this task, so the page can follow or explain it."""
    return store.queue.find_job(job_kind(task), task.run_id, task.check().model_dump())


def task_samples(loaded: LoadedRun, task: ExplainTask):
    """The first N test samples with the predicted class as target (and masks when the data set has them)."""
    test = loaded.bundle.test
    n = min(task.n_samples, len(test))
    inputs = sample_inputs(test, list(range(n)))  # a streamed split decodes these N only
    targets = loaded.predict(inputs).argmax(1).tolist()
    return inputs, targets, test.extras["mask"][:n] if "mask" in test.extras else None


@overload
def run_task(loaded: LoadedRun, task: TextTask, progress=None) -> TextScores: ...
@overload
def run_task(loaded: LoadedRun, task: ExplainTask, progress=None) -> GlobalImportance | Scores: ...
def run_task(loaded: LoadedRun, task: Task, progress=None) -> GlobalImportance | Scores | TextScores:
    """Compute the task and store its result under its key, in the run's store."""
    result: GlobalImportance | Scores | TextScores
    if isinstance(task, TextTask):
        result, n = _score_sentences(loaded, task, progress)
    else:
        inputs, targets, masks = task_samples(loaded, task)
        n = len(inputs)
        if task.task == "global_importance":
            result = global_importance(loaded, inputs, targets, task.methods, task.baseline, task.params, progress)
        else:
            result = score_methods(loaded, inputs, targets, task.methods, task.baseline, task.params, masks,
                                   task.sensitivity, progress=progress)
    loaded.store.explanations.save(task_key(loaded, task), loaded.run_id,
                                   f"job:{TEXT_KIND if isinstance(task, TextTask) else task.task}",
                                   {"task": task.model_dump(), "n": n}, result.to_tensors())
    return result


@torch.no_grad()
def _predictions(loaded: LoadedRun, sentences) -> list[int]:
    device = loaded.device
    return [int(loaded.model(s.input_ids.to(device), s.attention_mask.to(device)).argmax()) for s in sentences]


def _score_sentences(loaded: LoadedRun, task: TextTask, progress=None) -> tuple[TextScores, int]:
    """The methods scored on the first N test sentences, the predicted class as target."""
    test = loaded.bundle.test
    n = min(task.n_samples, len(test.texts))
    model = loaded.model
    sentences = [encode(model.tokenizer, text, getattr(model, "max_length", 128)) for text in test.texts[:n]]
    rationale = test.extras.get("rationale")
    rationales = None if rationale is None else [np.flatnonzero(r.numpy()).tolist() for r in rationale[:n]]
    with loaded.lock:
        scores = score_text_methods(model, sentences, _predictions(loaded, sentences), task.methods, rationales,
                                    task.k, task.params, progress=progress)
    return scores, n


@overload
def task_result(loaded: LoadedRun, task: TextTask) -> TextScores | None: ...
@overload
def task_result(loaded: LoadedRun, task: ExplainTask) -> GlobalImportance | Scores | None: ...
def task_result(loaded: LoadedRun, task: Task) -> GlobalImportance | Scores | TextScores | None:
    """The stored result of this task, or None when it has not been computed."""
    stored = loaded.store.explanations.load(task_key(loaded, task))
    if stored is None:
        return None
    if isinstance(task, TextTask):
        return TextScores.from_tensors(stored[1])
    kind = GlobalImportance if task.task == "global_importance" else Scores
    return kind.from_tensors(stored[1])


@register_job_kind("explain")
def explain_job(store: Store, job: Job) -> None:
    task = parse_task(job.payload)
    loaded = get_loaded_run(store, task.run_id, task.checkpoint, resolve_device(job.device))
    print(f"explain job {job.id}: {task.task} of run #{task.run_id} with {task.methods} "
          f"on {loaded.device}", flush=True)
    run_task(loaded, task, lambda fraction: store.queue.set_progress(job.id, fraction))
    store.queue.set_progress(job.id, 1.0)


@register_job_kind(TEXT_KIND)
def explain_text_job(store: Store, job: Job) -> None:
    task = parse_task(job.payload, TextTask)
    loaded = get_loaded_run(store, task.run_id, task.checkpoint, resolve_device(job.device))
    print(f"explain_text job {job.id}: {task.methods} on {task.n_samples} sentences of run #{task.run_id} "
          f"on {loaded.device}", flush=True)
    run_task(loaded, task, lambda fraction: store.queue.set_progress(job.id, fraction))
    store.queue.set_progress(job.id, 1.0)


# -- sanity checks ------------------------------------------------------------------------------------
def sanity_runs(store: Store, task: SanityTask, device: str | torch.device = "cpu"
                ) -> tuple[LoadedRun, LoadedRun | None]:
    """The run to check and the permuted-label run to compare with, refused with a reason naming the
    field when the check cannot apply."""
    loaded = get_loaded_run(store, task.run_id, task.checkpoint, device)
    kind = loaded.meta.kind
    if kind == "text":
        raise DlxError(f"run: run #{task.run_id} is a text run; sanity checks take image and table runs "
                       "(text methods explain one sentence at a time and are not randomised yet)", field="run")
    available = available_methods(loaded.model, kind)
    missing = [m for m in task.methods if m not in available]
    if missing:
        raise DlxError(f"methods: {missing[0]} does not apply to run #{task.run_id} ({loaded.config.model} on "
                       f"{kind}s); choose from {available}", field="methods")
    if task.against is None:
        return loaded, None
    against = get_loaded_run(store, task.against, "best", device)
    if against.config.dataset != loaded.config.dataset or not against.config.label_permutation:
        raise DlxError(f"against: run #{task.against} must be a run of {loaded.config.dataset} trained with "
                       "label_permutation=true", field="against")
    return loaded, against


def sanity_key(loaded: LoadedRun, task: SanityTask) -> str:
    return cache.digest({"job": SANITY_KIND, "task": task.check().model_dump(), "checkpoint_id": loaded.checkpoint_id})


def run_sanity(loaded: LoadedRun, task: SanityTask, against: LoadedRun | None = None,
               progress=None) -> dict[str, Any]:
    """Check the methods on a seeded draw of test samples and store the result under the task's key."""
    task = task.check()
    test = loaded.bundle.test
    indices = pick_samples(test.y, None, "random", min(task.n_samples, len(test)), seed=task.seed,
                           num_classes=loaded.meta.num_classes)
    inputs = sample_inputs(test, indices)
    targets = loaded.predict(inputs).argmax(1).tolist()
    with loaded.lock, (contextlib.nullcontext() if against is None else against.lock):
        result = check_methods(loaded.model, inputs, targets, task.methods, task.params, task.baseline,
                               loaded.meta.mean, task.seed, None if against is None else against.model, progress)
    result.update(run_id=task.run_id, against=task.against, indices=indices, checkpoint=task.checkpoint)
    loaded.store.explanations.save(sanity_key(loaded, task), loaded.run_id, SANITY_RESULT,
                                   {"task": task.model_dump(), "result": result}, {})
    return result


def sanity_result(loaded: LoadedRun, task: SanityTask) -> dict[str, Any] | None:
    """The stored result of exactly this sanity task, or None when it has not been computed."""
    stored = loaded.store.explanations.load(sanity_key(loaded, task))
    return None if stored is None else stored[0]["result"]


def sanity_results(store: Store, run_id: int) -> dict[str, Any] | None:
    """The run's latest sanity check (any task): `{"methods": {name: {...}}, "layers": [...], ...}`, or None."""
    stored = store.explanations.latest(run_id, SANITY_RESULT)
    return None if stored is None else stored[0]["result"]


@register_job_kind(SANITY_KIND)
def sanity_job(store: Store, job: Job) -> None:
    task = parse_sanity_task(job.payload)
    loaded, against = sanity_runs(store, task, resolve_device(job.device))
    print(f"sanity job {job.id}: {task.methods} on {task.n_samples} samples of run #{task.run_id}"
          + (f" against run #{task.against}" if task.against else "") + f" on {loaded.device}", flush=True)
    run_sanity(loaded, task, against, lambda fraction: store.queue.set_progress(job.id, fraction))
    store.queue.set_progress(job.id, 1.0)
