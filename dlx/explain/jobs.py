"""Explanation work over many samples runs as an "explain" job on the worker (on a GPU if any).

A task (global importance, or faithfulness over N test samples) is validated here, queued,
run in the job's own process with its progress written to the job row, and its result stored
in the explanation cache under a key of the task, where the page finds it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from db.models import Job
from dlx import settings
from dlx.errors import DlxError
from dlx.explain import cache
from dlx.explain.baselines import BASELINES
from dlx.explain.importance import GlobalImportance, global_importance
from dlx.explain.methods import get_method
from dlx.explain.models_cache import LoadedRun, get_loaded_run
from dlx.explain.samples import sample_inputs
from dlx.explain.scoring import Scores, score_methods
from dlx.jobs.kinds import register_job_kind
from dlx.store import Store
from dlx.training.devices import resolve_device


class ExplainTask(BaseModel):
    """What an explain job computes; its payload is exactly this, as JSON."""

    model_config = ConfigDict(extra="forbid")

    run_id: int
    task: Literal["global_importance", "faithfulness"]
    methods: list[str] = Field(min_length=1)
    n_samples: int = Field(100, ge=1, le=100_000)
    baseline: str = "zeros"
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    checkpoint: str = "best"
    sensitivity: bool = True  # faithfulness only: max-sensitivity recomputes every map a few times

    def check(self) -> "ExplainTask":
        """Resolve every method's parameters now, so a mistake is reported before queuing."""
        if self.baseline not in BASELINES:
            raise DlxError(f"baseline: unknown baseline {self.baseline!r}; choose one of "
                           f"{sorted(BASELINES)}", field="baseline")
        resolved = {m: get_method(m).resolve(self.params.get(m, {})) for m in self.methods}
        return self.model_copy(update={"params": resolved})


def parse_task(payload: dict[str, Any]) -> ExplainTask:
    try:
        return ExplainTask(**payload).check()
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DlxError(f"{where}: {first['msg']}", field=where) from None


def task_key(loaded: LoadedRun, task: ExplainTask) -> str:
    return cache.digest({"job": task.check().model_dump(), "checkpoint_id": loaded.checkpoint_id})


def submit_task(store: Store, task: ExplainTask) -> int:
    """Queue the task as a job on its run; returns the job id."""
    task = task.check()
    return store.queue.submit_job("explain", task.model_dump(), task.run_id, "auto")


def find_job(store: Store, task: ExplainTask) -> Job | None:
    """The latest job (any status) computing exactly this task, so the page can follow or explain it."""
    return store.queue.find_job("explain", task.run_id, task.check().model_dump())


def failure_reason(job: Job) -> str:
    """Why a job failed, in the user's words when it said so: the "error: ..." line of its log."""
    path = _readable_log(job.log_path)
    if path is not None:
        lines = path.read_text(errors="replace").splitlines()
        said = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
        if said:
            return said[-1]
    return job.error or "no reason was recorded"


def _readable_log(stored: str | None) -> Path | None:
    """The job's log when it exists inside the data directory; a path leading out is never read."""
    try:
        path = settings.stored_path(stored) if stored else None
    except DlxError:
        return None
    return path if path is not None and path.exists() else None


def task_samples(loaded: LoadedRun, task: ExplainTask):
    """The first N test samples with the predicted class as target (and masks when the data set has them)."""
    test = loaded.bundle.test
    n = min(task.n_samples, len(test))
    inputs = sample_inputs(test, list(range(n)))  # a streamed split decodes these N only
    targets = loaded.predict(inputs).argmax(1).tolist()
    return inputs, targets, test.extras["mask"][:n] if "mask" in test.extras else None


def run_task(loaded: LoadedRun, task: ExplainTask, progress=None) -> GlobalImportance | Scores:
    """Compute the task and store its result under its key, in the run's store."""
    inputs, targets, masks = task_samples(loaded, task)
    if task.task == "global_importance":
        result = global_importance(loaded, inputs, targets, task.methods, task.baseline, task.params, progress)
    else:
        result = score_methods(loaded, inputs, targets, task.methods, task.baseline, task.params, masks,
                               task.sensitivity, progress=progress)
    loaded.store.explanations.save(task_key(loaded, task), loaded.run_id, f"job:{task.task}",
                                   {"task": task.model_dump(), "n": len(inputs)}, result.to_tensors())
    return result


def task_result(loaded: LoadedRun, task: ExplainTask) -> GlobalImportance | Scores | None:
    """The stored result of this task, or None when it has not been computed."""
    stored = loaded.store.explanations.load(task_key(loaded, task))
    if stored is None:
        return None
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
