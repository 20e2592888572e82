"""Queue operations on the jobs table: submit, claim atomically, cancel, heartbeat, reap stale."""
from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update

from db.engine import session
from db.models import Job, utcnow
from db.models import Run as RunRow
from dlx.config import RunConfig
from dlx.errors import DlxError
from dlx.tracking import create_run

ACTIVE = ("queued", "running")


def stale_after() -> float:
    """Seconds without a heartbeat after which a running job is declared dead (`DLX_STALE_AFTER`)."""
    return float(os.environ.get("DLX_STALE_AFTER", "30"))


def submit(config: RunConfig, url: str | None = None) -> tuple[int, int]:
    """Create a queued run and its training job; returns (run_id, job_id)."""
    values = config.model_dump()
    run_id = create_run(values, config.experiment, config.name, config.sweep, "queued", url)
    return run_id, submit_job("train", {}, run_id, config.device, url)


def submit_job(kind: str, payload: dict[str, Any], run_id: int | None = None,
               device: str = "auto", url: str | None = None) -> int:
    with session(url) as s, s.begin():
        job = Job(kind=kind, payload=payload, run_id=run_id, device=device)
        s.add(job)
        s.flush()
        return job.id


def claim(worker: str, cpu_only: bool, url: str | None = None) -> Job | None:
    """Take the oldest queued job this worker can run, or None.

    The conditional UPDATE (still queued?) makes the claim atomic on SQLite and PostgreSQL
    alike: of two workers racing for one job, exactly one sees a row count of 1.
    """
    with session(url) as s:
        stmt = select(Job.id).where(Job.status == "queued").order_by(Job.id).limit(8)
        if cpu_only:
            stmt = stmt.where(Job.device.in_(("cpu", "auto")))
        candidates = list(s.scalars(stmt))
    for job_id in candidates:
        now = utcnow()
        with session(url) as s, s.begin():
            claimed = s.execute(update(Job).where(Job.id == job_id, Job.status == "queued")
                                .values(status="running", worker=worker, started_at=now, heartbeat_at=now))
            if claimed.rowcount == 1:
                job = s.get(Job, job_id)
                if job.run_id is not None and job.kind == "train":
                    s.execute(update(RunRow).where(RunRow.id == job.run_id, RunRow.status == "queued")
                              .values(status="running", started_at=now))
                return job
    return None


def get_job(job_id: int, url: str | None = None) -> Job | None:
    with session(url) as s:
        return s.get(Job, job_id)


def latest_job(run_id: int, kind: str = "train", url: str | None = None) -> Job | None:
    with session(url) as s:
        return s.scalars(select(Job).where(Job.run_id == run_id, Job.kind == kind)
                         .order_by(Job.id.desc())).first()


def cancel_run(run_id: int, url: str | None = None) -> str:
    """Cancel a run's active job: a queued one ends at once, a running one is asked to stop.

    Returns what happened: "cancelled", "cancelling" or "finished" (nothing to cancel).
    """
    job = latest_job(run_id, url=url)
    if job is None:
        raise DlxError(f"run: there is no job for run #{run_id}", field="run")
    return cancel_job(job.id, url)


def cancel_job(job_id: int, url: str | None = None) -> str:
    now = utcnow()
    with session(url) as s, s.begin():
        job = s.get(Job, job_id)
        if job is None:
            raise DlxError(f"job: there is no job #{job_id}", field="job")
        if job.status == "queued":
            job.status, job.ended_at, job.error = "cancelled", now, "cancelled before it started"
            if job.run_id is not None and job.kind == "train":
                s.execute(update(RunRow).where(RunRow.id == job.run_id)
                          .values(status="cancelled", ended_at=now, error="cancelled before it started"))
            return "cancelled"
        if job.status == "running":
            job.cancel_requested = True
            return "cancelling"
        return "finished"


def finish_job(job_id: int, status: str, error: str | None = None, url: str | None = None) -> None:
    """Record a job's end; its run, if still marked active, ends the same way with the same reason."""
    now = utcnow()
    with session(url) as s, s.begin():
        job = s.get(Job, job_id)
        if job is None:  # deleted with its run while it ran: nothing left to record
            return
        job.status, job.ended_at, job.error = status, now, error
        if job.run_id is not None and job.kind == "train":
            run = s.get(RunRow, job.run_id)
            if run is not None and run.status in ACTIVE:
                run.status, run.ended_at, run.error = status, now, error
            elif run is not None and status == "failed" and run.error:
                job.error = run.error


def heartbeat(job_ids: list[int], url: str | None = None) -> None:
    """Refresh these running jobs' heartbeats."""
    if job_ids:
        with session(url) as s, s.begin():
            s.execute(update(Job).where(Job.id.in_(job_ids), Job.status == "running")
                      .values(heartbeat_at=utcnow()))


def cancel_requested(job_ids: list[int], url: str | None = None) -> list[int]:
    """Those of these jobs that someone asked to cancel."""
    with session(url) as s:
        return list(s.scalars(select(Job.id).where(Job.id.in_(job_ids), Job.cancel_requested)))


def set_progress(job_id: int, progress: float, url: str | None = None) -> None:
    with session(url) as s, s.begin():
        s.execute(update(Job).where(Job.id == job_id).values(progress=progress))


def reap_stale(url: str | None = None) -> list[int]:
    """Fail running jobs whose heartbeat stopped (their worker died); whoever notices first does it."""
    limit = utcnow() - timedelta(seconds=stale_after())
    with session(url) as s:
        stale = list(s.scalars(select(Job.id).where(Job.status == "running", Job.heartbeat_at < limit)))
    for job_id in stale:
        finish_job(job_id, "failed", f"no heartbeat for {stale_after():.0f} s: the worker running "
                   "this job stopped (crashed, killed or its machine went away)", url)
    return stale


def counts(url: str | None = None) -> dict[str, int]:
    with session(url) as s:
        return dict(s.execute(select(Job.status, func.count()).where(Job.status.in_(ACTIVE))
                              .group_by(Job.status)).all())
