"""Scoring text attribution methods over many test sentences as an "explain_text" job on the worker.

Like the image tasks in dlx.explain.jobs: the task is validated before it is queued, runs in the
job's own process with its progress on the job row, and its result (a TextScores) is stored in the
explanation cache under a key of the task and the checkpoint, where the page finds it.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from db.models import Job
from dlx.errors import DlxError
from dlx.explain import cache
from dlx.explain.attention import encode
from dlx.explain.models_cache import LoadedRun, get_loaded_run
from dlx.explain.text_methods import get_text_method
from dlx.explain.text_scores import TextScores, score_text_methods
from dlx.jobs.kinds import register_job_kind
from dlx.store import Store
from dlx.training.devices import resolve_device

KIND = "explain_text"


class TextTask(BaseModel):
    """What an explain_text job computes; its payload is exactly this, as JSON."""

    model_config = ConfigDict(extra="forbid")

    run_id: int
    methods: list[str] = Field(min_length=1)
    n_samples: int = Field(100, ge=1, le=100_000)
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    k: int = Field(3, ge=1, le=100)  # rationale recall@k
    checkpoint: str = "best"

    def check(self) -> "TextTask":
        """Resolve every method's parameters now, so a mistake is reported before queuing."""
        resolved = {m: get_text_method(m).resolve(self.params.get(m, {})) for m in self.methods}
        return self.model_copy(update={"params": resolved})


def parse_text_task(payload: dict[str, Any]) -> TextTask:
    try:
        return TextTask(**payload).check()
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DlxError(f"{where}: {first['msg']}", field=where) from None


def text_task_key(loaded: LoadedRun, task: TextTask) -> str:
    return cache.digest({"job": KIND, "task": task.check().model_dump(), "checkpoint_id": loaded.checkpoint_id})


def submit_text_task(store: Store, task: TextTask) -> int:
    task = task.check()
    return store.queue.submit_job(KIND, task.model_dump(), task.run_id, "auto")


def find_text_job(store: Store, task: TextTask) -> Job | None:
    """The latest job (any status) computing exactly this task."""
    return store.queue.find_job(KIND, task.run_id, task.check().model_dump())


@torch.no_grad()
def _predictions(loaded: LoadedRun, sentences) -> list[int]:
    device = loaded.device
    return [int(loaded.model(s.input_ids.to(device), s.attention_mask.to(device)).argmax()) for s in sentences]


def run_text_task(loaded: LoadedRun, task: TextTask, progress=None) -> TextScores:
    """Score the methods on the first N test sentences (predicted class as target) and store the result."""
    test = loaded.bundle.test
    n = min(task.n_samples, len(test.texts))
    model = loaded.model
    sentences = [encode(model.tokenizer, text, getattr(model, "max_length", 128)) for text in test.texts[:n]]
    rationale = test.extras.get("rationale")
    rationales = None if rationale is None else [np.flatnonzero(r.numpy()).tolist() for r in rationale[:n]]
    with loaded.lock:
        scores = score_text_methods(model, sentences, _predictions(loaded, sentences), task.methods, rationales,
                                    task.k, task.params, progress=progress)
    loaded.store.explanations.save(text_task_key(loaded, task), loaded.run_id, f"job:{KIND}",
                                   {"task": task.model_dump(), "n": n}, scores.to_tensors())
    return scores


def text_task_result(loaded: LoadedRun, task: TextTask) -> TextScores | None:
    stored = loaded.store.explanations.load(text_task_key(loaded, task))
    return None if stored is None else TextScores.from_tensors(stored[1])


@register_job_kind(KIND)
def explain_text_job(store: Store, job: Job) -> None:
    task = parse_text_task(job.payload)
    loaded = get_loaded_run(store, task.run_id, task.checkpoint, resolve_device(job.device))
    print(f"explain_text job {job.id}: {task.methods} on {task.n_samples} sentences of run #{task.run_id} "
          f"on {loaded.device}", flush=True)
    run_text_task(loaded, task, lambda fraction: store.queue.set_progress(job.id, fraction))
    store.queue.set_progress(job.id, 1.0)
