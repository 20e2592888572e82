"""What a job does, by kind: a registry the job entry point dispatches on."""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from db.models import Job
from dlx.errors import DlxError, Pruned

if TYPE_CHECKING:
    from dlx.store import Store

JobFunction = Callable[["Store", Job], None]  # a job of the store's queue
JOB_KINDS: dict[str, JobFunction] = {}
# The modules that register the kinds defined above this package, imported by a job's process for
# its own kind only (`job_function`): an image training job never imports captum or transformers.
KIND_MODULES = {"explain": "dlx.explain.jobs", "explain_text": "dlx.explain.jobs", "sanity": "dlx.explain.jobs",
                "explain_over_training": "dlx.explain.over_training", "influence": "dlx.explain.influence",
                "projector": "dlx.explain.projector", "search": "dlx.search.driver"}


def register_job_kind(name: str) -> Callable[[JobFunction], JobFunction]:
    def decorate(function: JobFunction) -> JobFunction:
        JOB_KINDS[name] = function
        return function

    return decorate


def job_function(kind: str) -> JobFunction:
    """What a job of `kind` runs, importing only the module that registers it (every one for a kind it
    does not know, which may be registered anywhere)."""
    if kind not in JOB_KINDS:
        for module in [KIND_MODULES[kind]] if kind in KIND_MODULES else dict.fromkeys(KIND_MODULES.values()):
            importlib.import_module(module)
    if kind not in JOB_KINDS:
        raise DlxError(f"kind: no job kind {kind!r}; known: {', '.join(sorted(JOB_KINDS))}", field="kind")
    return JOB_KINDS[kind]


@register_job_kind("train")
def train_job(store: Store, job: Job) -> None:
    """Train the job's run with the config stored on it; a search's trial (its payload names the study and
    trial) reports each epoch to its study and ends `pruned` when the pruner says."""
    # torch: the loop is imported by the job process that trains, not by the worker that lists the kinds
    from dlx.config import RunConfig
    from dlx.search.pruning import epoch_hook
    from dlx.tracking import start_run
    from dlx.training.fits import check_fits
    from dlx.training.train import train

    info = None if job.run_id is None else store.get_run(job.run_id)
    if info is None:  # deleted since it was queued (a train job is always queued with its run)
        raise DlxError(f"job #{job.id}: its run no longer exists", field="run")
    config = check_fits(RunConfig(**info.config))
    study, trial = job.payload.get("study"), job.payload.get("trial")
    hook = epoch_hook(store, study, trial) if isinstance(study, str) and isinstance(trial, int) else None
    try:
        with start_run(run_id=job.run_id, store=store) as run:
            train(config, run, hook)
    except Pruned:  # the run ended pruned (tracking records it): the job itself did its work
        pass
