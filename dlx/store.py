"""Reading the run store: runs filtered, sorted and paged in SQL, one run's details, metric histories in one query."""
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
from sqlalchemy.orm import aliased

from db.engine import get_engine, session
from db.models import Artifact, Experiment, Job, Metric, Param, RunSummary, Tag, utcnow
from db.models import Run as RunRow
from dlx import query, settings
from dlx.errors import DlxError
from dlx.reduction import Reduced, reduced_history  # noqa: F401  (the store's API: pages and the CLI call store.*)
from dlx.tracking import ACTIVE_STATES

FINAL_STATES = ("succeeded", "failed", "cancelled")
# A run's note and its archived mark are tags under a reserved prefix: no schema change, and a filter
# (tag.dlx.archived) or export sees them like any tag. People's own tags may not use the prefix.
RESERVED_TAG_PREFIX = "dlx."
NOTE_TAG = "dlx.note"
ARCHIVED_TAG = "dlx.archived"


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
    def note(self) -> str:
        return self.tags.get(NOTE_TAG, "")

    @property
    def archived(self) -> bool:
        return ARCHIVED_TAG in self.tags

    @property
    def user_tags(self) -> dict[str, str]:
        """The tags people set (the reserved dlx.* ones left out)."""
        return {k: v for k, v in self.tags.items() if not k.startswith(RESERVED_TAG_PREFIX)}

    @property
    def label(self) -> str:
        return f"#{self.id} {self.name or f'{self.dataset}/{self.model}'}"


def _select_runs():
    """Run rows with their experiment name and latest training job id, in RunInfo's field order."""
    job_id = select(func.max(Job.id)).where(Job.run_id == RunRow.id, Job.kind == "train").scalar_subquery()
    return (select(RunRow.id, Experiment.name, RunRow.name, RunRow.sweep, RunRow.status, RunRow.dataset,
                   RunRow.model, RunRow.config, RunRow.summary, RunRow.device, RunRow.error, RunRow.created_at,
                   RunRow.started_at, RunRow.ended_at, job_id)
            .select_from(RunRow).join(Experiment))


def _fetch(stmt, url: str | None) -> list[RunInfo]:
    """The runs `stmt` selects, in its order, with their params, tags and final metrics: one query
    each for the whole page (Core rows, not ORM objects: a page of 1,000 runs costs milliseconds)."""
    with get_engine(url).connect() as conn:
        rows = conn.execute(stmt).all()
        ids = [row[0] for row in rows]
        params, tags, metrics = ({i: {} for i in ids} for _ in range(3))
        for start in range(0, len(ids), 900):  # SQLite's limit on bound parameters
            chunk = ids[start:start + 900]
            for target, table, value in ((params, Param.__table__, "value"), (tags, Tag.__table__, "value"),
                                         (metrics, RunSummary.__table__, "last")):
                query = select(table.c.run_id, table.c.key, table.c[value]).where(table.c.run_id.in_(chunk))
                for run_id, key, val in conn.execute(query):
                    target[run_id][key] = val
    return [RunInfo(*row[:7], row[7] or {}, row[8] or {}, *row[9:14], params[row[0]], tags[row[0]], row[14],
                    metrics[row[0]]) for row in rows]


def list_runs(status: list[str] | None = None, sweep: str | None = None, limit: int | None = 500,
              url: str | None = None, *, filter: str | None = None, sort: str | None = None,
              descending: bool = True, offset: int = 0, experiment: str | None = None,
              tag: str | None = None, dataset: str | None = None, model: str | None = None,
              ids: list[int] | None = None, archived: bool | None = None) -> list[RunInfo]:
    """One page of runs, filtered, sorted and paged in SQL; newest first unless `sort` names a key.

    `filter` is an expression (see dlx.query), `sort` a run column, parameter or metric (its final
    value; runs without it come last either way), `tag` a tag key or KEY=VALUE, `ids` a selection;
    `archived` False hides archived runs, True shows only them, None (default) ignores it;
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
        conditions += _archived_condition(archived)
        stmt = _order(_select_runs().where(*conditions), resolve, sort, descending)
    return _fetch(stmt.limit(limit).offset(offset), url)


def count_runs(status: list[str] | None = None, sweep: str | None = None, url: str | None = None, *,
               filter: str | None = None, experiment: str | None = None, tag: str | None = None,
               dataset: str | None = None, model: str | None = None, archived: bool | None = None) -> int:
    """How many runs `list_runs` with the same filters would page through."""
    with get_engine(url).connect() as conn:
        conditions = _conditions(_resolver(conn), status, sweep, filter, experiment, tag, dataset, model)
        conditions += _archived_condition(archived)
        stmt = select(func.count()).select_from(RunRow).join(Experiment).where(*conditions)
        return conn.execute(stmt).scalar_one()


def _archived_condition(archived: bool | None) -> list:
    if archived is None:
        return []
    marked = RunRow.id.in_(select(Tag.run_id).where(Tag.key == ARCHIVED_TAG))
    return [marked if archived else ~marked]


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


def parse_tags(text: str) -> dict[str, str]:
    """'baseline, owner=ana' -> {'baseline': '', 'owner': 'ana'}: what people type into a tags box."""
    tags: dict[str, str] = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        key = key.strip()
        if not key and not value.strip():
            continue
        if not key:
            raise DlxError(f"tags: {part.strip()!r} has a value but no name before '='", field="tags")
        _check_tag_name(key)
        tags[key] = value.strip()
    return tags


def _check_tag_name(key: str) -> None:
    if not key.strip() or len(key) > 250:
        raise DlxError(f"tags: a tag name must have 1 to 250 characters, got {key[:20]!r}", field="tags")
    if key.startswith(RESERVED_TAG_PREFIX):
        raise DlxError(f"tags: names starting with {RESERVED_TAG_PREFIX!r} are reserved ({key!r})", field="tags")


def set_tags(run_id: int, tags: dict[str, str], url: str | None = None) -> None:
    """Replace a run's own tags with `tags` (its note and archived mark stay)."""
    for key in tags:
        _check_tag_name(key)
    with session(url) as s, s.begin():
        _require_run(s, run_id)
        s.execute(delete(Tag).where(Tag.run_id == run_id, ~Tag.key.startswith(RESERVED_TAG_PREFIX)))
        s.add_all(Tag(run_id=run_id, key=key, value=value) for key, value in tags.items())


def set_note(run_id: int, note: str, url: str | None = None) -> None:
    """A run's free-text note; an empty one removes it."""
    with session(url) as s, s.begin():
        _require_run(s, run_id)
        s.execute(delete(Tag).where(Tag.run_id == run_id, Tag.key == NOTE_TAG))
        if note.strip():
            s.add(Tag(run_id=run_id, key=NOTE_TAG, value=note.strip()))


def set_archived(run_ids: list[int], archived: bool = True, url: str | None = None) -> None:
    """Archive runs (hidden from lists by default, kept whole) or bring them back."""
    with session(url) as s, s.begin():
        s.execute(delete(Tag).where(Tag.run_id.in_(run_ids), Tag.key == ARCHIVED_TAG))
        if archived:
            existing = s.scalars(select(RunRow.id).where(RunRow.id.in_(run_ids)))
            s.add_all(Tag(run_id=run_id, key=ARCHIVED_TAG, value=utcnow().isoformat()) for run_id in existing)


def _require_run(s, run_id: int) -> None:
    if s.scalar(select(RunRow.id).where(RunRow.id == run_id)) is None:
        raise DlxError(f"run: there is no run #{run_id}", field="run")


def decode_param(value: str) -> Any:
    try:
        return json.loads(value)
    except (json.JSONDecodeError, TypeError):
        return value
