"""The queue: a store's jobs table, with submit, claim atomically, cancel, heartbeat, reap stale.

`Queue` is the store's collaborator for jobs (`store.queue`), bound to the same engine.

Statuses only move forward (queued -> running -> succeeded | failed | cancelled; a restartable kind's job
whose worker died goes back to queued): every UPDATE
that writes one names the states it may move from, so a final status is never overwritten,
whoever writes second (a late job process, a second reaper, a cancel racing the end).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, cast

from sqlalchemy import CursorResult, Result, exists, func, select, update
from sqlalchemy.orm import Session

from db.models import Artifact, Job, utcnow
from db.models import Run as RunRow
from dlx.errors import DlxError
from dlx.settings import stale_after
from dlx.states import ACTIVE_STATES as ACTIVE

if TYPE_CHECKING:
    from dlx.config import RunConfig

# Jobs that keep their state in the database (a search's driver): when their worker dies or shuts down
# they go back to the queue, and the next worker's process continues where they were.
RESTARTABLE_KINDS = ("search",)


class JobsStore(Protocol):
    """What the queue uses of its store (a `dlx.store.Store`)."""

    @property
    def dialect(self) -> str: ...

    def session(self) -> Session: ...

    def create_run(self, config: Mapping[str, Any] | None = None, experiment: str = "default",
                   name: str | None = None, sweep: str | None = None, status: str = "queued") -> int: ...


class Queue:
    """Jobs in one store (`store.queue`). Statuses only move forward, see the module's docstring."""

    def __init__(self, store: JobsStore) -> None:
        self.store = store

    def submit(self, config: RunConfig) -> tuple[int, int]:
        """Create a queued run and its training job; returns (run_id, job_id). Whether its device
        exists is the caller's check (dlx.training.devices.check_launchable), made before."""
        values = config.model_dump()
        run_id = self.store.create_run(values, config.experiment, config.name, config.sweep, "queued")
        return run_id, self.submit_job("train", {}, run_id, config.device)

    def submit_job(self, kind: str, payload: dict[str, Any], run_id: int | None = None,
                   device: str = "auto") -> int:
        with self.store.session() as s, s.begin():
            job = Job(kind=kind, payload=payload, run_id=run_id, device=device)
            s.add(job)
            s.flush()
            return job.id

    def claim(self, worker: str, cpu_only: bool) -> Job | None:
        """Take the oldest queued job this worker can run, or None; atomic under concurrent workers."""
        with self.store.session() as s, s.begin():
            runnable = [Job.status == "queued"]
            if cpu_only:
                runnable.append(Job.device.in_(("cpu", "auto")))
            job_id = self._take(s, runnable)
            if job_id is None:
                return None
            now = utcnow()
            s.execute(update(Job).where(Job.id == job_id)
                      .values(status="running", worker=worker, started_at=now, heartbeat_at=now))
            job = s.get_one(Job, job_id)  # this transaction just took it
            if job.run_id is not None and job.kind == "train":
                s.execute(update(RunRow).where(RunRow.id == job.run_id, RunRow.status == "queued")
                          .values(status="running", started_at=now))
            return job

    def _take(self, s: Session, runnable: list) -> int | None:
        """Mark the oldest runnable job as this transaction's and return its id (the one place that
        knows how each database does it atomically).

        PostgreSQL: `SELECT ... FOR UPDATE SKIP LOCKED` locks the row and lets racing workers pass over
        it to the next one. SQLite serialises writers: one UPDATE that picks the job in a subquery
        runs under the write lock, so the job it picks is still queued and no other writer gets it.
        """
        oldest = select(Job.id).where(*runnable).order_by(Job.id).limit(1)
        if self.store.dialect == "postgresql":
            return s.scalar(oldest.with_for_update(skip_locked=True))
        return s.scalar(update(Job).where(Job.id == oldest.scalar_subquery())
                        .values(status="running").returning(Job.id))

    def record_start(self, job_id: int, pid: int | None, log_path: str, ours: Callable[[Job], bool]) -> bool:
        """Record the process a worker started for its claimed job and index its log on the job's run,
        if the row is still there and `ours(row)` says it is still that claim; returns whether it was."""
        with self.store.session() as s, s.begin():
            row = s.get(Job, job_id)
            if row is None or not ours(row):
                return False
            row.pid, row.log_path = pid, log_path
            if row.run_id is not None:  # still set: deleting a run deletes its jobs in the same transaction
                s.add(Artifact(run_id=row.run_id, kind="log", name=f"job-{job_id}", path=log_path))
            return True

    def find_job(self, kind: str, run_id: int, payload: dict[str, Any]) -> Job | None:
        """The latest job (any status) of this kind on this run with exactly this payload."""
        with self.store.session() as s:
            jobs = s.scalars(select(Job).where(Job.kind == kind, Job.run_id == run_id).order_by(Job.id.desc()))
            return next((job for job in jobs if job.payload == payload), None)

    def active_job(self, kind: str, payload: dict[str, Any]) -> int | None:
        """The id of a queued or running job of this kind with exactly this payload, if there is one."""
        with self.store.session() as s:
            jobs = s.execute(select(Job.id, Job.payload).where(Job.kind == kind, Job.status.in_(ACTIVE)))
            return next((job_id for job_id, given in jobs if given == payload), None)

    def requeue(self, job_id: int, silent_since: datetime | None = None) -> bool:
        """Put a running job of a restartable kind back in the queue (its worker died or stopped), if it
        has not ended (nor, given `silent_since`, heartbeaten since); returns whether it was."""
        still = [] if silent_since is None else [Job.heartbeat_at < silent_since]
        with self.store.session() as s, s.begin():
            moved = s.execute(update(Job).where(Job.id == job_id, Job.status == "running",
                                                Job.kind.in_(RESTARTABLE_KINDS), *still)
                              .values(status="queued", worker=None, pid=None, started_at=None, heartbeat_at=None,
                                      cancel_requested=False))
            return _changed(moved) == 1

    def get_job(self, job_id: int) -> Job | None:
        with self.store.session() as s:
            return s.get(Job, job_id)

    def jobs(self, job_ids: list[int]) -> dict[int, Job]:
        """These jobs' rows by id; a deleted one is missing."""
        with self.store.session() as s:
            return {row.id: row for row in s.scalars(select(Job).where(Job.id.in_(job_ids)))}

    def place(self, job_id: int) -> tuple[int, int]:
        """A queued job's place: the queued jobs ahead of it, and the jobs running."""
        with self.store.session() as s:
            count = select(func.count()).select_from(Job)
            ahead = s.scalars(count.where(Job.status == "queued", Job.id < job_id)).one()
            running = s.scalars(count.where(Job.status == "running")).one()
        return ahead, running

    def latest_job(self, run_id: int, kind: str = "train") -> Job | None:
        with self.store.session() as s:
            return s.scalars(select(Job).where(Job.run_id == run_id, Job.kind == kind)
                             .order_by(Job.id.desc())).first()

    def cancel_run(self, run_id: int) -> str:
        """Cancel a run: through its job if it has one (a queued one ends at once, a running one is
        asked to stop), else (a script's run) by asking the script, which stops on its next heartbeat.

        Returns what happened: "cancelled", "cancelling" or "finished" (nothing to cancel).
        """
        job = self.latest_job(run_id)
        if job is not None:
            return self.cancel_job(job.id)
        self.reap_stale_runs()  # a script that already died is failed now, not asked to stop
        with self.store.session() as s, s.begin():
            run = s.get(RunRow, run_id)
            if run is None:
                raise DlxError(f"run: there is no run #{run_id}", field="run")
            ended = s.execute(update(RunRow).where(RunRow.id == run_id, RunRow.status == "queued")
                              .values(status="cancelled", ended_at=utcnow(), error="cancelled before it started"))
            if _changed(ended) == 1:
                return "cancelled"
            asked = s.execute(update(RunRow).where(RunRow.id == run_id, RunRow.status == "running")
                              .values(cancel_requested=True))
            return "cancelling" if _changed(asked) == 1 else "finished"

    def cancel_job(self, job_id: int) -> str:
        now = utcnow()
        reason = "cancelled before it started"
        with self.store.session() as s, s.begin():
            job = s.get(Job, job_id)
            if job is None:
                raise DlxError(f"job: there is no job #{job_id}", field="job")
            ended = s.execute(update(Job).where(Job.id == job_id, Job.status == "queued")
                              .values(status="cancelled", ended_at=now, error=reason))
            if _changed(ended) == 1:
                if job.run_id is not None and job.kind == "train":
                    s.execute(update(RunRow).where(RunRow.id == job.run_id, RunRow.status.in_(ACTIVE))
                              .values(status="cancelled", ended_at=now, error=reason))
                return "cancelled"
            asked = s.execute(update(Job).where(Job.id == job_id, Job.status == "running")
                              .values(cancel_requested=True))
            return "cancelling" if _changed(asked) == 1 else "finished"

    def finish_job(self, job_id: int, status: str, error: str | None = None,
                   silent_since: datetime | None = None) -> bool:
        """Record a job's end, if it has not ended yet (and, given `silent_since`, has not heartbeaten
        since); its run, if still active, ends the same way with the same reason. Returns whether this
        call ended the job.

        A job row that vanished (its run was deleted) is no error: there is nothing left to record.
        """
        now = utcnow()
        still = [] if silent_since is None else [Job.heartbeat_at < silent_since]
        with self.store.session() as s, s.begin():
            ended = s.execute(update(Job).where(Job.id == job_id, Job.status.in_(ACTIVE), *still)
                              .values(status=status, ended_at=now, error=error))
            if _changed(ended) != 1:
                return False
            job = s.get_one(Job, job_id)  # this transaction just ended it
            if job.run_id is not None and job.kind == "train":
                run_ended = s.execute(update(RunRow).where(RunRow.id == job.run_id, RunRow.status.in_(ACTIVE))
                                      .values(status=status, ended_at=now, error=error))
                if _changed(run_ended) == 0 and status == "failed":
                    run_error = s.scalar(select(RunRow.error).where(RunRow.id == job.run_id))
                    if run_error:  # the run said why (its own exception): the job tells the same
                        s.execute(update(Job).where(Job.id == job_id).values(error=run_error))
            return True

    def heartbeat(self, job_ids: list[int]) -> None:
        """Refresh these running jobs' heartbeats."""
        if job_ids:
            with self.store.session() as s, s.begin():
                s.execute(update(Job).where(Job.id.in_(job_ids), Job.status == "running")
                          .values(heartbeat_at=utcnow()))

    def cancel_requested(self, job_ids: list[int]) -> list[int]:
        """Those of these jobs that someone asked to cancel."""
        with self.store.session() as s:
            return list(s.scalars(select(Job.id).where(Job.id.in_(job_ids), Job.cancel_requested)))

    def set_progress(self, job_id: int, progress: float) -> None:
        with self.store.session() as s, s.begin():
            s.execute(update(Job).where(Job.id == job_id).values(progress=progress))

    def reap_stale(self) -> list[int]:
        """Fail running jobs whose heartbeat stopped (their worker died), then script runs whose
        process stopped heartbeating; whoever notices first does it. Returns the reaped job ids."""
        seconds = stale_after()
        limit = utcnow() - timedelta(seconds=seconds)
        with self.store.session() as s:
            stale = list(s.scalars(select(Job.id).where(Job.status == "running", Job.heartbeat_at < limit)))
        reason = (f"no heartbeat for {seconds:.0f} s: the worker running this job stopped "
                  "(crashed, killed or its machine went away)")
        reaped = [job_id for job_id in stale if not self.requeue(job_id, silent_since=limit)
                  and self.finish_job(job_id, "failed", reason, silent_since=limit)]
        self.reap_stale_runs()
        return reaped

    def reap_stale_runs(self) -> list[int]:
        """Fail running runs with no active job (a user's script's) whose process stopped heartbeating.

        The heartbeat condition is checked again in the UPDATE, so a beat that lands meanwhile wins.
        Returns the reaped run ids.
        """
        limit = utcnow() - timedelta(seconds=stale_after())
        last_sign = func.coalesce(RunRow.heartbeat_at, RunRow.started_at, RunRow.created_at)
        has_active_job = exists().where(Job.run_id == RunRow.id, Job.status.in_(ACTIVE))
        stale_condition = (RunRow.status == "running", last_sign < limit, ~has_active_job)
        with self.store.session() as s:
            stale = s.execute(select(RunRow.id, RunRow.owner, last_sign).where(*stale_condition)).all()
        reaped = []
        for run_id, owner, last in stale:
            reason = (f"its process{f' ({owner})' if owner else ''} stopped heartbeating at "
                      f"{last:%Y-%m-%d %H:%M:%S} UTC (killed, crashed or its machine went away)")
            with self.store.session() as s, s.begin():
                ended = s.execute(update(RunRow).where(RunRow.id == run_id, *stale_condition)
                                  .values(status="failed", ended_at=utcnow(), error=reason))
            if _changed(ended) == 1:
                reaped.append(run_id)
        return reaped

    def counts(self) -> dict[str, int]:
        with self.store.session() as s:
            return dict(s.execute(select(Job.status, func.count()).where(Job.status.in_(ACTIVE))
                                  .group_by(Job.status)).all())


def _changed(result: Result[Any]) -> int:
    """The rows an UPDATE changed. Session.execute returns a CursorResult for DML; its overloads say Result."""
    return cast(CursorResult[Any], result).rowcount
