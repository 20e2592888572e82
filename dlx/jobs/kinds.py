"""What a job does, by kind: a registry the job entry point dispatches on."""
from __future__ import annotations

from typing import Callable

from db.models import Job

JobFunction = Callable[[Job], None]
JOB_KINDS: dict[str, JobFunction] = {}


def register_job_kind(name: str) -> Callable[[JobFunction], JobFunction]:
    def decorate(function: JobFunction) -> JobFunction:
        JOB_KINDS[name] = function
        return function

    return decorate


@register_job_kind("train")
def train_job(job: Job) -> None:
    """Train the job's run with the config stored on it."""
    from dlx.config import RunConfig
    from dlx.tracking import start_run
    from dlx.train import train

    from dlx.store import default_store

    config = RunConfig(**default_store().get_run(job.run_id).config)
    with start_run(run_id=job.run_id) as run:
        train(config, run)
