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
from sqlalchemy import asc, delete, desc, func, select
from sqlalchemy.orm import aliased

from db.engine import get_engine, session
from db.models import Artifact, Experiment, Job, Metric, Param, RunSummary, Tag, utcnow
from db.models import Run as RunRow
from dlx import query, settings
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
    metrics: dict[str, float | None] = field(default_factory=dict)  # final value of each metric

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None:
            return None
        end = self.ended_at or utcnow()
        return max(0.0, (end - self.started_at).total_seconds())

    @property
    def label(self) -> str:
        return f"#{self.id} {self.name or f'{self.dataset}/{self.model}'}"


def _select_runs():
    """Run rows with their experiment name and latest training job id (params, tags, metrics: `_fetch`)."""
    job_id = select(func.max(Job.id)).where(Job.run_id == RunRow.id, Job.kind == "train").scalar_subquery()
    return select(RunRow.__table__, Experiment.name.label("experiment_name"), job_id.label("job_id")).join(Experiment)


def _fetch(stmt, url: str | None) -> list[RunInfo]:
    """The runs `stmt` selects, in its order, with their params, tags and final metrics: one query
    each for the whole page (Core rows, not ORM objects: a page of 1,000 runs costs milliseconds)."""
    with get_engine(url).connect() as conn:
        rows = conn.execute(stmt).all()
        ids = [row.id for row in rows]
        params, tags, metrics = ({i: {} for i in ids} for _ in range(3))
        for start in range(0, len(ids), 900):  # SQLite's limit on bound parameters
            chunk = ids[start:start + 900]
            for target, table, value in ((params, Param.__table__, "value"), (tags, Tag.__table__, "value"),
                                         (metrics, RunSummary.__table__, "last")):
                query = select(table.c.run_id, table.c.key, table.c[value]).where(table.c.run_id.in_(chunk))
                for run_id, key, val in conn.execute(query):
                    target[run_id][key] = val
    return [RunInfo(r.id, r.experiment_name, r.name, r.sweep, r.status, r.dataset, r.model, r.config or {},
                    r.summary or {}, r.device, r.error, r.created_at, r.started_at, r.ended_at,
                    params[r.id], tags[r.id], r.job_id, metrics[r.id]) for r in rows]


def list_runs(status: list[str] | None = None, sweep: str | None = None, limit: int | None = 500,
              url: str | None = None, *, filter: str | None = None, sort: str | None = None,
              descending: bool = True, offset: int = 0, experiment: str | None = None,
              tag: str | None = None, dataset: str | None = None, model: str | None = None,
              ids: list[int] | None = None) -> list[RunInfo]:
    """One page of runs, filtered, sorted and paged in SQL; newest first unless `sort` names a key.

    `filter` is an expression (see dlx.query), `sort` a run column, parameter or metric (its final
    value; runs without it come last either way), `tag` a tag key or KEY=VALUE, `ids` a selection;
    `count_runs` with the same filters gives the total for paging.
    """
    if limit is not None and limit < 0:
        raise DlxError(f"limit: must be 0 or more, got {limit}", field="limit")
    if offset < 0:
        raise DlxError(f"offset: must be 0 or more, got {offset}", field="offset")
    with get_engine(url).connect() as conn:
        resolve = _resolver(conn)
        conditions = _conditions(resolve, status, sweep, filter, experiment, tag, dataset, model)
        if ids is not None:
            conditions.append(RunRow.id.in_(ids))
        stmt = _order(_select_runs().where(*conditions), resolve, sort, descending)
    return _fetch(stmt.limit(limit).offset(offset), url)


def count_runs(status: list[str] | None = None, sweep: str | None = None, url: str | None = None, *,
               filter: str | None = None, experiment: str | None = None, tag: str | None = None,
               dataset: str | None = None, model: str | None = None) -> int:
    """How many runs `list_runs` with the same filters would page through."""
    with get_engine(url).connect() as conn:
        conditions = _conditions(_resolver(conn), status, sweep, filter, experiment, tag, dataset, model)
        stmt = select(func.count()).select_from(RunRow).join(Experiment).where(*conditions)
        return conn.execute(stmt).scalar_one()


def _resolver(conn) -> query.Resolver:
    """Names of a filter or sort as run columns, params or metrics, looked up (once each) on the key indexes."""
    def exists(table, key: str) -> bool:
        return conn.execute(select(table.c.run_id).where(table.c.key == key).limit(1)).first() is not None

    cache: dict[str, query.Field | None] = {}

    def resolve(name: str) -> query.Field | None:
        if name not in cache:
            cache[name] = query.resolve_name(name, lambda k: exists(Param.__table__, k),
                                             lambda k: exists(RunSummary.__table__, k))
        return cache[name]
    return resolve


def _conditions(resolve: query.Resolver, status, sweep, filter, experiment, tag, dataset, model) -> list:
    conditions = []
    if status:
        conditions.append(RunRow.status.in_(status))
    for column, value in ((RunRow.sweep, sweep), (Experiment.name, experiment), (RunRow.dataset, dataset),
                          (RunRow.model, model)):
        if value:
            conditions.append(column == value)
    if tag:
        key, sep, value = tag.partition("=")
        having = select(Tag.run_id).where(Tag.key == key.strip())
        conditions.append(RunRow.id.in_(having.where(Tag.value == value.strip()) if sep else having))
    if filter and filter.strip():
        conditions.append(query.to_sql(filter, resolve))
    return conditions


def _order(stmt, resolve: query.Resolver, sort: str | None, descending: bool):
    """Sort by a run column, or by a param (numbers numerically, then text) or metric joined by key."""
    def direction(column):
        return (column.desc() if descending else column.asc()).nulls_last()

    tiebreak = RunRow.id.desc() if descending else RunRow.id.asc()
    if not sort:
        return stmt.order_by(tiebreak)
    field = resolve(sort)
    if field is None:
        raise DlxError(f"sort: no run field, parameter or metric is named {sort!r}", field="sort")
    if field.kind == "column":
        return stmt.order_by(direction(query.COLUMNS[field.key]), tiebreak)
    table = {"param": Param, "metric": RunSummary, "tag": Tag}[field.kind]
    joined = aliased(table)
    stmt = stmt.outerjoin(joined, (joined.run_id == RunRow.id) & (joined.key == field.key))
    keys = {"param": ("number", "value"), "metric": ("last",), "tag": ("value",)}[field.kind]
    keys = [getattr(joined, name) for name in keys]
    return stmt.order_by(*(direction(k) for k in keys), tiebreak)


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


@dataclass
class Reduced:
    """One metric of one run per bucket of steps, in step order: the bucket's first and last points
    (step and value), its min and max (NaN left out) and how many points it holds."""

    first_steps: np.ndarray
    first: np.ndarray
    last_steps: np.ndarray
    last: np.ndarray
    min: np.ndarray
    max: np.ndarray
    count: np.ndarray

    def __len__(self) -> int:
        return len(self.last_steps)


def reduced_history(run_ids: list[int], keys: list[str], buckets: int = 1000,
                    step_range: tuple[int, int] | None = None, url: str | None = None) -> dict[tuple[int, str], Reduced]:
    """Histories of `keys` for `run_ids`, reduced in SQL to at most `buckets` buckets of equal step width
    over `step_range` (inclusive; default every series' whole range), so spikes survive (min, max) and
    long histories never reach Python whole: what a chart with as many buckets as pixels asks for.

    Bucket b holds steps lo + b*width .. lo + (b+1)*width - 1, width = ceil((hi - lo + 1) / buckets);
    the same width for every series, so their buckets line up.
    """
    if buckets < 1:
        raise DlxError(f"buckets: must be 1 or more, got {buckets}", field="buckets")
    run_ids, keys = list(dict.fromkeys(run_ids)), list(dict.fromkeys(keys))
    m = Metric.__table__
    with get_engine(url).connect() as conn:
        if step_range is None:
            step_range = _step_range(conn, run_ids, keys)
        lo, hi = (int(step) for step in step_range) if step_range else (0, -1)
        if hi < lo:
            return {(run_id, key): _reduced([]) for run_id in run_ids for key in keys}
        width = max(1, -(-(hi - lo + 1) // buckets))
        bucket = ((m.c.step - lo) // width).label("bucket")
        groups = (select(m.c.run_id, m.c.key, bucket, func.min(m.c.step).label("first_step"),
                         func.max(m.c.step).label("last_step"), func.min(m.c.value).label("low"),
                         func.max(m.c.value).label("high"), func.count().label("points"))
                  .where(m.c.run_id.in_(run_ids), m.c.key.in_(keys), m.c.step.between(lo, hi))
                  .group_by(m.c.run_id, m.c.key, bucket).subquery())
        point = m.alias("point")

        def value_at(step, order):  # where a step repeats: the first written first, the last written last
            return (select(point.c.value).where(point.c.run_id == groups.c.run_id, point.c.key == groups.c.key,
                                                point.c.step == step).order_by(order(point.c.id)).limit(1)
                    .scalar_subquery())

        stmt = (select(groups.c.run_id, groups.c.key, groups.c.first_step, value_at(groups.c.first_step, asc),
                       groups.c.last_step, value_at(groups.c.last_step, desc), groups.c.low, groups.c.high,
                       groups.c.points)
                .order_by(groups.c.run_id, groups.c.key, groups.c.bucket))
        rows: dict[tuple[int, str], list] = {(run_id, key): [] for run_id in run_ids for key in keys}
        for run_id, key, *values in conn.execute(stmt):
            rows[(run_id, key)].append(values)
    return {pair: _reduced(values) for pair, values in rows.items()}


def _step_range(conn, run_ids: list[int], keys: list[str]) -> tuple[int, int] | None:
    """The smallest first step and largest last step of the series: two index lookups per series."""
    m = Metric.__table__
    lows, highs = [], []
    for run_id in run_ids:
        for key in keys:
            where = (m.c.run_id == run_id) & (m.c.key == key)
            low = conn.execute(select(func.min(m.c.step)).where(where)).scalar()
            if low is not None:
                lows.append(low)
                highs.append(conn.execute(select(func.max(m.c.step)).where(where)).scalar())
    return (min(lows), max(highs)) if lows else None


def _reduced(rows: list) -> Reduced:
    data = np.array(rows, dtype=np.float64).reshape(-1, 7)  # None (NaN stored, or no finite value) -> nan
    return Reduced(data[:, 0].astype(np.int64), data[:, 1], data[:, 2].astype(np.int64), data[:, 3],
                   data[:, 4], data[:, 5], data[:, 6].astype(np.int64))


def metric_keys(run_id: int, url: str | None = None) -> list[str]:
    with session(url) as s:
        return list(s.scalars(select(Metric.key).where(Metric.run_id == run_id).distinct().order_by(Metric.key)))


def latest_metrics(run_id: int, url: str | None = None) -> dict[str, tuple[int, float | None]]:
    """The last (step, value) of every metric of a run, from its summary rows (no history read)."""
    table = RunSummary.__table__
    stmt = select(table.c.key, table.c.step, table.c.last).where(table.c.run_id == run_id)
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
        for table in (Metric, RunSummary, Param, Tag, Artifact, Job):
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
