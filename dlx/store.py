"""Reading the run store: lists of runs, one run's details, metric histories in one query."""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select

from db.engine import get_engine, session
from db.models import Artifact, Experiment, Job, Metric, Param, Tag, utcnow
from db.models import Run as RunRow
from dlx import settings
from dlx.errors import DlxError
from dlx.tracking import ACTIVE_STATES

FINAL_STATES = ("succeeded", "failed", "cancelled")


@dataclass
class RunInfo:
    """A run as pages and the CLI show it."""

    id: int
    experiment: str
    name: str | None
    sweep: str | None
    status: str
    dataset: str | None
    model: str | None
    config: dict[str, Any]
    summary: dict[str, Any]
    device: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    job_id: int | None = None

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.ended_at or utcnow()
        return max(0.0, (end - self.started_at).total_seconds())

    @property
    def label(self) -> str:
        return f"#{self.id} {self.name or f'{self.dataset}/{self.model}'}"


def _info(row: RunRow, experiment: str, job_id: int | None) -> RunInfo:
    return RunInfo(row.id, experiment, row.name, row.sweep, row.status, row.dataset, row.model,
                   row.config or {}, row.summary or {}, row.device, row.error, row.created_at,
                   row.started_at, row.ended_at, {p.key: p.value for p in row.params},
                   {t.key: t.value for t in row.tags}, job_id)


def _select_runs():
    """Runs with their experiment name and latest training job id; params and tags in one go."""
    from sqlalchemy.orm import selectinload

    job_id = select(func.max(Job.id)).where(Job.run_id == RunRow.id, Job.kind == "train").scalar_subquery()
    return (select(RunRow, Experiment.name, job_id).join(Experiment)
            .options(selectinload(RunRow.params), selectinload(RunRow.tags)))


def _fetch(stmt, url: str | None) -> list[RunInfo]:
    with session(url) as s:
        return [_info(row, exp, job) for row, exp, job in s.execute(stmt)]


def list_runs(status: list[str] | None = None, sweep: str | None = None, limit: int = 500,
              url: str | None = None) -> list[RunInfo]:
    """Newest first, optionally only some statuses or one sweep."""
    stmt = _select_runs().order_by(RunRow.id.desc()).limit(limit)
    if status:
        stmt = stmt.where(RunRow.status.in_(status))
    if sweep:
        stmt = stmt.where(RunRow.sweep == sweep)
    return _fetch(stmt, url)


def get_run(run_id: int, url: str | None = None) -> RunInfo | None:
    runs = _fetch(_select_runs().where(RunRow.id == run_id), url)
    return runs[0] if runs else None


def status_counts(url: str | None = None) -> dict[str, int]:
    with session(url) as s:
        return dict(s.execute(select(RunRow.status, func.count()).group_by(RunRow.status)).all())


@dataclass
class History:
    """One metric of one run in step order, as arrays (what charts and comparisons consume)."""

    steps: np.ndarray
    values: np.ndarray
    times: np.ndarray

    def __len__(self) -> int:
        return len(self.steps)


def metric_history(run_id: int, key: str, url: str | None = None) -> History:
    """One range scan of the covering index, fetched on the DBAPI cursor straight into arrays.

    Row objects would cost more than the query itself on long histories (100,000 points).
    """
    table = Metric.__table__
    stmt = (select(table.c.step, table.c.value, table.c.time)
            .where(table.c.run_id == run_id, table.c.key == key).order_by(table.c.step))
    engine = get_engine(url)
    compiled = stmt.compile(dialect=engine.dialect)
    params = compiled.construct_params()
    args = tuple(params[name] for name in compiled.positiontup) if compiled.positional else params
    with engine.connect() as conn:
        cursor = conn.connection.cursor()
        try:
            cursor.execute(str(compiled), args)
            rows = cursor.fetchall()
        finally:
            cursor.close()
    # One flat pass over the tuples, half the time of np.array(rows); None (a NaN stored) -> nan.
    data = np.fromiter(chain.from_iterable(rows), dtype=np.float64, count=3 * len(rows)).reshape(-1, 3)
    return History(data[:, 0].astype(np.int64), data[:, 1], data[:, 2])


def metric_keys(run_id: int, url: str | None = None) -> list[str]:
    with session(url) as s:
        return list(s.scalars(select(Metric.key).where(Metric.run_id == run_id).distinct().order_by(Metric.key)))


def latest_metrics(run_id: int, url: str | None = None) -> dict[str, tuple[int, float]]:
    """The last (step, value) of every metric of a run."""
    table = Metric.__table__
    last = (select(table.c.key, func.max(table.c.step).label("step"))
            .where(table.c.run_id == run_id).group_by(table.c.key).subquery())
    stmt = (select(table.c.key, table.c.step, table.c.value)
            .join(last, (table.c.key == last.c.key) & (table.c.step == last.c.step))
            .where(table.c.run_id == run_id))
    with get_engine(url).connect() as conn:
        return {key: (step, value) for key, step, value in conn.execute(stmt)}


def artifacts(run_id: int, kind: str | None = None, url: str | None = None) -> list[Artifact]:
    stmt = select(Artifact).where(Artifact.run_id == run_id).order_by(Artifact.id)
    if kind:
        stmt = stmt.where(Artifact.kind == kind)
    with session(url) as s:
        return list(s.scalars(stmt))


def checkpoint_path(run_id: int, name: str = "best", url: str | None = None):
    """Absolute path of a run's checkpoint, or None when it has none (yet)."""
    for artifact in artifacts(run_id, "checkpoint", url):
        if artifact.name == name:
            path = settings.stored_path(artifact.path)
            return path if path.exists() else None
    return None


def delete_run(run_id: int, url: str | None = None, wait: float = 20.0) -> None:
    """Delete a run, everything it logged, and its files: its folder and its jobs' logs.

    An active run is stopped first (its jobs cancelled, its script asked to end) and given up to
    `wait` seconds to end, so no worker or script finds its rows gone while it still writes.
    """
    if _stop_before_delete(run_id, url):
        deadline = time.monotonic() + wait
        while _still_active(run_id, url) and time.monotonic() < deadline:
            time.sleep(0.2)
    home = settings.home()
    with session(url) as s, s.begin():
        files = list(s.scalars(select(Artifact.path).where(Artifact.run_id == run_id)))
        for table in (Metric, Param, Tag, Artifact, Job):
            s.execute(delete(table).where(table.run_id == run_id))
        s.execute(delete(RunRow).where(RunRow.id == run_id))
    shutil.rmtree(home / "runs" / str(run_id), ignore_errors=True)
    for stored in files:
        try:
            path = settings.stored_path(stored)
        except DlxError:
            continue  # an index entry never reaches outside the data directory
        path.unlink(missing_ok=True)


def _stop_before_delete(run_id: int, url: str | None) -> bool:
    """Cancel the run's active jobs (training and explanations), or ask its script to end; whether any was active."""
    from dlx.jobs.queue import cancel_job, cancel_run

    with session(url) as s:
        jobs = list(s.scalars(select(Job.id).where(Job.run_id == run_id, Job.status.in_(ACTIVE_STATES))))
        status = s.scalar(select(RunRow.status).where(RunRow.id == run_id))
    for job_id in jobs:
        cancel_job(job_id, url)
    if status in ACTIVE_STATES and not jobs:
        cancel_run(run_id, url)
    return bool(jobs) or status in ACTIVE_STATES


def _still_active(run_id: int, url: str | None) -> bool:
    with session(url) as s:
        job = s.scalar(select(Job.id).where(Job.run_id == run_id, Job.status.in_(ACTIVE_STATES)).limit(1))
        return job is not None or s.scalar(select(RunRow.status).where(RunRow.id == run_id)) in ACTIVE_STATES


def decode_param(value: str) -> Any:
    try:
        return json.loads(value)
    except (json.JSONDecodeError, TypeError):
        return value
