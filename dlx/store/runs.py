"""The store: one object bound to one engine (MLflow's SqlAlchemyStore shape), with plain methods.

A page, the CLI or a worker builds it once (`default_store()`, or `Store(url)` for another
database) and passes it where it is needed, so a test or a tool can hold two stores at once.
This module reads runs (filtered, sorted and paged in SQL, one run's details, metric histories
in one query); editing runs is `dlx.store.edits`' part of the class.
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Float,
    Select,
    Table,
    Text,
    bindparam,
    delete,
    func,
    literal,
    make_url,
    null,
    select,
    union_all,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, aliased, sessionmaker

from db.engine import get_engine, on_dispose
from db.models import Artifact, Experiment, Job, Metric, Param, RunSummary, Tag
from db.models import Run as RunRow
from dlx import settings
from dlx.errors import DlxError
from dlx.states import FINAL_STATES as FINAL_STATES  # re-exported: dlx.store names it
from dlx.store import query, reduction
from dlx.store.edits import RunEdits
from dlx.store.prepared import Prepared
from dlx.store.queue import Queue
from dlx.store.reduction import Reduced
from dlx.store.run_info import ARCHIVED_TAG, RunInfo
from dlx.store.run_info import decode_param as decode_param  # re-exported: dlx.store names it
from dlx.store.user_sets import UserSets
from dlx.store.workers import Workers

if TYPE_CHECKING:
    import numpy as np

    from dlx.store.edits import Upsert
    from dlx.store.explanations import Explanations

logger = logging.getLogger(__name__)
T = TypeVar("T")
_merging_upserts: dict[tuple[str, str, tuple[str, ...]], Any] = {}  # see Store.merging_upsert


# _select_runs()'s rows: RunInfo's fields up to ended_at, then the latest training job's id.
RunRows = Select[int, str, str | None, str | None, str, str | None, str | None, dict[str, Any], dict[str, Any],
                 str | None, str | None, datetime, datetime | None, datetime | None, int | None]


def _select_runs() -> RunRows:
    """Run rows with their experiment name and latest training job id, in RunInfo's field order."""
    job_id = select(func.max(Job.id)).where(Job.run_id == RunRow.id, Job.kind == "train").scalar_subquery()
    return (select(RunRow.id, Experiment.name, RunRow.name, RunRow.sweep, RunRow.status, RunRow.dataset,
                   RunRow.model, RunRow.config, RunRow.summary, RunRow.device, RunRow.error, RunRow.created_at,
                   RunRow.started_at, RunRow.ended_at, job_id)
            .select_from(RunRow).join(Experiment))


@dataclass
class History:
    """One metric of one run in step order, as arrays (what charts and comparisons consume)."""

    steps: np.ndarray
    values: np.ndarray
    times: np.ndarray

    def __len__(self) -> int:
        return len(self.steps)


def history_of(rows: Sequence[tuple]) -> History:
    """(step, value, time) rows as a History: steps exact as int64 (a float rounds them above 2**53),
    values and times as float64 (None, a NaN stored, -> nan)."""
    import numpy as np  # only where histories are read: `dlx runs` and the store's writers do without it

    count = len(rows)
    steps = np.fromiter(map(itemgetter(0), rows), dtype=np.int64, count=count)
    # One flat pass over the tuples, half the time of np.array(rows) (its step column is not used).
    data = np.fromiter(chain.from_iterable(rows), dtype=np.float64, count=3 * count).reshape(-1, 3)
    return History(steps, data[:, 1], data[:, 2])


class Plans:
    """Listing statements kept per store by their arguments, with how the names in them resolved.

    Building a page's statements (the filter compiled, the joins, the sort) costs more CPU than running them
    on a page of 50 (3 ms against 1 at 100,000 runs), and the same page is asked again and again (the app's
    reruns, paging back). A kept statement is used while each name it resolved still resolves alike (a name
    can become a parameter once one is logged under it), looked up again at each use (microseconds each).
    """

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._kept: OrderedDict[tuple, tuple[dict[str, query.Field | None], Any]] = OrderedDict()
        self._lock = threading.Lock()  # one store serves the app's sessions, each on its own thread

    def get(self, key: tuple | None, resolve: query.Resolver, build: Callable[[query.Resolver], T]) -> T:
        """The statement `build(resolve)` returns, kept under `key` (None: not kept, e.g. a selection of ids)."""
        with self._lock:
            kept = self._kept.get(key) if key is not None else None
        if kept is not None and all(resolve(name) == field for name, field in kept[0].items()):
            return kept[1]
        names: dict[str, query.Field | None] = {}

        def recording(name: str) -> query.Field | None:
            names[name] = field = resolve(name)
            return field

        statement = build(recording)
        if key is not None:
            with self._lock:
                self._kept[key] = (names, statement)
                self._kept.move_to_end(key)
                while len(self._kept) > self._size:
                    self._kept.popitem(last=False)
        return statement


class Store(RunEdits):
    """Runs, metrics and artifacts of one database, and its collaborators bound to the same engine:
    `queue` (jobs), `workers` (their heartbeats) and `explanations` (the explanation cache)."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or settings.database_url()
        self.engine: Engine = get_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._plans = Plans()

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self) -> Session:
        """A new ORM session; use it as a context manager (`with store.session() as s, s.begin(): ...`)."""
        return self._sessions()

    def connect(self) -> Connection:
        return self.engine.connect()

    def merging_upsert(self, table: Table, keys: Sequence[str], merge: Callable[[Any], dict[str, Any]]) -> Upsert:
        """`upsert(table)` that merges a row conflicting on `keys` with SET `merge(statement)` (built
        from the statement's `excluded` row): one per dialect, table and keys, built once per process.
        Building an ON CONFLICT clause costs 0.1-1 ms, and a run's tracking runs such statements
        several times (params, checkpoints' index, every flush's summaries)."""
        name = (self.dialect, table.name, tuple(keys))
        statement = _merging_upserts.get(name)
        if statement is None:
            statement = self.upsert(table)
            statement = statement.on_conflict_do_update(index_elements=list(keys), set_=merge(statement))
            _merging_upserts[name] = statement
        return statement

    def upsert(self, table: Table) -> Upsert:
        """An INSERT with the dialect's `.on_conflict_do_update`/`_do_nothing` (PostgreSQL and SQLite spell them alike)."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as postgresql_insert

            return postgresql_insert(table)
        if self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(table)
        raise NotImplementedError(f"database: dlx supports SQLite and PostgreSQL, not {self.dialect}")

    @cached_property
    def explanations(self) -> Explanations:
        """Its explanation cache: stored attributions and explain jobs' results (dlx.store.explanations)."""
        from dlx.store.explanations import Explanations  # torch and safetensors: imported only where explained

        return Explanations(self)

    @cached_property
    def queue(self) -> Queue:
        """Its jobs: submit, claim, cancel, finish, heartbeat, reap (dlx.store.queue)."""
        return Queue(self)

    @cached_property
    def workers(self) -> Workers:
        """Its workers' heartbeats and what they offer (dlx.store.workers)."""
        return Workers(self)

    # Runs

    def list_runs(self, status: list[str] | None = None, sweep: str | None = None, limit: int | None = 500, *,
                  filter: str | None = None, sort: str | None = None, descending: bool = True, offset: int = 0,
                  experiment: str | None = None, tag: str | None = None, dataset: str | None = None,
                  model: str | None = None, ids: list[int] | None = None,
                  archived: bool | None = None) -> list[RunInfo]:
        """One page of runs, filtered, sorted and paged in SQL; newest first unless `sort` names a key.

        `filter` is an expression (see dlx.store.query), `sort` a run column, parameter or metric (its final
        value; runs without it come last either way), `tag` a tag key or KEY=VALUE, `ids` a selection;
        `archived` False hides archived runs, True shows only them, None (default) ignores it;
        `count_runs` with the same filters gives the total for paging.
        """
        if limit is not None and limit < 0:
            raise DlxError(f"limit: must be 0 or more, got {limit}", field="limit")
        if offset < 0:
            raise DlxError(f"offset: must be 0 or more, got {offset}", field="offset")
        key = None if ids is not None else ("page", tuple(status or ()), sweep, filter, sort, descending, limit, offset,
                                            experiment, tag, dataset, model, archived)
        with self.connect() as conn:
            page = self._plans.get(key, _resolver(conn), lambda resolve: _page_statements(
                resolve, status, sweep, filter, sort, descending, limit, offset, experiment, tag, dataset, model, ids,
                archived, kept=key is not None))
            if isinstance(page, _ByMetric):
                return _by_metric(conn, page, limit, offset)
            return _fetch(conn, page)

    def count_runs(self, status: list[str] | None = None, sweep: str | None = None, *, filter: str | None = None,
                   experiment: str | None = None, tag: str | None = None, dataset: str | None = None,
                   model: str | None = None, archived: bool | None = None, bound: int | None = None) -> int:
        """How many runs `list_runs` with the same filters would page through; with `bound`, counting stops
        past it (a result of `bound + 1` means "more than `bound`": cheap where a filter matches many runs)."""
        key = ("count", tuple(status or ()), sweep, filter, experiment, tag, dataset, model, archived, bound)
        with self.connect() as conn:
            counted = self._plans.get(key, _resolver(conn), lambda resolve: _count_statement(
                resolve, status, sweep, filter, experiment, tag, dataset, model, archived, bound))
            total = conn.execute(counted).scalar_one()
            return total if bound is None else min(total, bound + 1)

    def get_run(self, run_id: int) -> RunInfo | None:
        with self.connect() as conn:
            runs = _fetch(conn, _select_runs().where(RunRow.id == run_id))
        return runs[0] if runs else None

    def status_counts(self) -> dict[str, int]:
        with self.connect() as conn:
            return dict(conn.execute(select(RunRow.status, func.count()).group_by(RunRow.status)).all())

    def reap_stale_for_reading(self) -> None:
        """Mark runs whose process died failed before showing them, where the database takes the write.

        Only best-effort for a reader (`dlx runs`, the pages): on a full disk or a read-only file the
        listing still works, with the failed write logged, not raised.
        """
        try:
            self.queue.reap_stale()
        except SQLAlchemyError as err:
            logger.warning("could not mark stale runs failed in %s (shown as they are): %s",
                           store_name(self.url), getattr(err, "orig", None) or err)

    # Metrics

    def metric_history(self, run_id: int, key: str) -> History:
        """One range scan of the covering index, fetched on the DBAPI cursor straight into arrays.

        Row objects would cost more than the query itself on long histories (100,000 points).
        """
        table = Metric.__table__
        stmt = (select(table.c.step, table.c.value, table.c.time)
                .where(table.c.run_id == run_id, table.c.key == key).order_by(table.c.step))
        compiled = stmt.compile(dialect=self.engine.dialect)
        params = compiled.construct_params()
        args: tuple[Any, ...] | Mapping[str, Any] = params
        if compiled.positional:
            assert compiled.positiontup is not None  # a positional dialect's statement lists its parameters
            args = tuple(params[name] for name in compiled.positiontup)
        with self.connect() as conn:
            cursor = conn.connection.cursor()
            try:
                cursor.execute(str(compiled), args)
                rows = cursor.fetchall()
            finally:
                cursor.close()
        return history_of(rows)

    def reduced_history(self, run_ids: list[int], keys: list[str], buckets: int = 1000,
                        step_range: tuple[int, int] | None = None) -> dict[tuple[int, str], Reduced]:
        """Histories reduced in SQL to at most `buckets` buckets (see `dlx.store.reduction.reduced_history`)."""
        with self.connect() as conn:
            return reduction.reduced_history(conn, run_ids, keys, buckets, step_range)

    def metric_keys(self, run_id: int) -> list[str]:
        with self.connect() as conn:
            return list(conn.scalars(select(Metric.key).where(Metric.run_id == run_id).distinct()
                                     .order_by(Metric.key)))

    def latest_metrics(self, run_id: int) -> dict[str, tuple[int, float | None]]:
        """The last (step, value) of every metric of a run, from its summary rows (no history read)."""
        table = RunSummary.__table__
        stmt = select(table.c.key, table.c.step, table.c.last).where(table.c.run_id == run_id)
        with self.connect() as conn:
            return {key: (step, value) for key, step, value in conn.execute(stmt)}

    # Artifacts

    def artifacts(self, run_id: int, kind: str | None = None) -> list[Artifact]:
        stmt = select(Artifact).where(Artifact.run_id == run_id).order_by(Artifact.id)
        if kind:
            stmt = stmt.where(Artifact.kind == kind)
        with self.session() as s:
            return list(s.scalars(stmt))

    def remove_artifacts(self, run_id: int, kind: str, names: Sequence[str], conn: Connection | None = None) -> None:
        """Drop these index rows (a run's thinned checkpoints), in `conn`'s transaction when given."""
        stmt = delete(Artifact).where(Artifact.run_id == run_id, Artifact.kind == kind, Artifact.name.in_(list(names)))
        if conn is not None:
            conn.execute(stmt)
            return
        with self.engine.begin() as own:
            own.execute(stmt)

    def checkpoint_path(self, run_id: int, name: str = "best"):
        """Absolute path of a run's checkpoint, or None when it has none (yet)."""
        for artifact in self.artifacts(run_id, "checkpoint"):
            if artifact.name == name:
                path = settings.stored_path(artifact.path)
                return path if path.exists() else None
        return None

    def checkpointed_run_ids(self, checkpoint: str = "best") -> set[int]:
        """Runs that have this checkpoint, in one query (the Explain page marks the others)."""
        with self.session() as s:
            return set(s.scalars(select(Artifact.run_id).where(Artifact.kind == "checkpoint",
                                                               Artifact.name == checkpoint)))

    # User data sets

    @cached_property
    def user_sets(self) -> UserSets:
        """Its users' data set rows (dlx.store.user_sets)."""
        return UserSets(self.session)


_stores: dict[str, Store] = {}
on_dispose(_stores.clear)  # a store holds an engine: tests dispose both with db.engine.dispose_all


def default_store() -> Store:
    """The store at the configured URL (DLX_DATABASE_URL or DLX_HOME's SQLite file), one per process and URL."""
    url = settings.database_url()
    store = _stores.get(url)
    if store is None:
        store = _stores[url] = Store(url)
    return store


def store_name(url: str | None = None) -> str:
    """The store as a user finds it: a SQLite file's path, else the URL with any password hidden."""
    parsed = make_url(url or settings.database_url())
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return f"the SQLite file {parsed.database}"
    return f"the database {parsed.render_as_string(hide_password=True)}"


def unreadable(err: Exception, url: str | None = None) -> DlxError:
    """One line saying which store cannot be read and why (damaged, not a database, unreadable, a full
    disk), for the read-only commands and the pages to show instead of a traceback."""
    reason = str(getattr(err, "orig", None) or err).strip().splitlines()[0]
    return DlxError(f"database: {store_name(url)} cannot be read: {reason}. Restore it from a backup if it is "
                    "damaged, free space if its disk is full, or point DLX_DATABASE_URL (or DLX_HOME) at "
                    "another store", field="database")


# The params, tags and final metrics of a page's runs in one statement, for chunks of up to 2**k runs (padded:
# a run listed twice is found once), built and compiled once per size.
_KEYED_CHUNK = 512  # under SQLite's limit on bound parameters (999)
_keyed_rows: dict[int, Prepared] = {}


def _keyed(size: int) -> Prepared:
    prepared = _keyed_rows.get(size)
    if prepared is None:
        ids: list[Any] = [bindparam(f"i{i}") for i in range(size)]
        parts = [select(literal(which), table.c.run_id, table.c.key, table.c.value, null().cast(Float))
                 .where(table.c.run_id.in_(ids)) for which, table in enumerate((Param.__table__, Tag.__table__))]
        summaries = RunSummary.__table__
        parts.append(select(literal(2), summaries.c.run_id, summaries.c.key, null().cast(Text), summaries.c.last)
                     .where(summaries.c.run_id.in_(ids)))
        prepared = _keyed_rows.setdefault(size, Prepared(union_all(*parts)))
    return prepared


def _fetch(conn: Connection, stmt: RunRows | Prepared) -> list[RunInfo]:
    """The runs `stmt` selects, in its order, with their params, tags and final metrics: one query for the
    whole page (Core rows, not ORM objects, and the DBAPI's rows for the keyed ones)."""
    rows: list[Any] = stmt.processed_rows(conn) if isinstance(stmt, Prepared) else list(conn.execute(stmt).all())
    ids = [row[0] for row in rows]
    keyed: tuple[dict[int, dict[str, Any]], ...] = tuple({i: {} for i in ids} for _ in range(3))  # params, tags, metrics
    for start in range(0, len(ids), _KEYED_CHUNK):
        chunk = ids[start:start + _KEYED_CHUNK]
        size = 1 << (len(chunk) - 1).bit_length()
        padded = chunk + [chunk[0]] * (size - len(chunk))
        for which, run_id, key, text_value, number in _keyed(size).rows(conn, {f"i{i}": v for i, v in enumerate(padded)}):
            keyed[which][run_id][key] = number if which == 2 else text_value
    params, tags, metrics = keyed
    return [RunInfo(run_id, experiment, name, sweep, status, dataset, model, config or {}, summary or {}, device, error,
                    created, started, ended, params[run_id], tags[run_id], job_id, metrics[run_id])
            for (run_id, experiment, name, sweep, status, dataset, model, config, summary, device, error, created, started,
                 ended, job_id) in rows]


def _page_statements(resolve: query.Resolver, status, sweep, filter, sort, descending, limit, offset, experiment, tag,
                     dataset, model, ids, archived, kept: bool) -> RunRows | Prepared | _ByMetric:
    """The statement of `Store.list_runs`' page, or, sorted by a metric, the three a page by a metric runs; a
    `kept` page (used again: Plans) compiled once and run with its own SQL (dlx.store.prepared)."""
    field = resolve(sort) if sort else None
    # A page walked in its order (newest first, or a metric's index) looks each run's params up as
    # it goes and stops at the page's end; any other order sorts every match, found at once.
    walked = field is None or field.kind == "metric" or (field.kind == "column" and field.key == "id")

    def where(correlated: bool) -> list:
        conditions = _conditions(resolve, status, sweep, filter, experiment, tag, dataset, model, correlated)
        if ids is not None:
            conditions.append(RunRow.id.in_(ids))
        return conditions + _archived_condition(archived)

    stmt = _select_runs().where(*where(walked))
    if field is not None and field.kind == "metric":
        return _metric_statements(stmt, _select_runs().where(*where(False)), field.key, descending, limit, offset,
                                  kept)
    ordered = _order(stmt, resolve, sort, descending).limit(limit).offset(offset)
    return Prepared(ordered) if kept else ordered


def _count_statement(resolve: query.Resolver, status, sweep, filter, experiment, tag, dataset, model, archived,
                     bound: int | None) -> Select[int]:
    """The statement of `Store.count_runs`: on the index of one of the filter's comparisons where it has one."""
    split = query.driven(filter, resolve) if filter and filter.strip() else None
    conditions = _conditions(resolve, status, sweep, None if split else filter, experiment, tag, dataset,
                             model, correlated=bound is not None)
    conditions += _archived_condition(archived)
    if split is not None:  # counted on the index of one of the filter's comparisons
        found, rest = split
        conditions += [] if rest is None else [rest]
        counted = found.with_only_columns(func.count(), maintain_column_froms=True)
        if conditions:  # else one row per run: foreign key to runs, primary key (run_id, key)
            driver = found.selected_columns[0]
            counted = counted.join(RunRow, RunRow.id == driver).where(*conditions)
            if experiment or "experiment" in (filter or ""):  # a name may say it: joined where it might
                counted = counted.join(Experiment)
        return counted
    stmt = select(RunRow.id) if bound is not None else select(func.count())
    stmt = stmt.select_from(RunRow).join(Experiment).where(*conditions)
    if bound is not None:  # runs visited in the primary key's order until bound + 1 match
        return select(func.count()).select_from(stmt.limit(bound + 1).subquery())
    return stmt


def _archived_condition(archived: bool | None) -> list:
    if archived is None:
        return []
    marked = RunRow.id.in_(select(Tag.run_id).where(Tag.key == ARCHIVED_TAG))
    return [marked if archived else ~marked]


_KEY_USED = {table.name: Prepared(select(table.c.run_id).where(table.c.key == bindparam("key")).limit(1))
             for table in (Param.__table__, RunSummary.__table__)}  # built once, as _keyed's


def _resolver(conn) -> query.Resolver:
    """Names of a filter or sort as run columns, params or metrics, looked up (once each) on the key indexes."""
    def exists(table: str, key: str) -> bool:
        return bool(_KEY_USED[table].rows(conn, {"key": key}))

    cache: dict[str, query.Field | None] = {}

    def resolve(name: str) -> query.Field | None:
        if name not in cache:
            cache[name] = query.resolve_name(name, lambda k: exists("params", k), lambda k: exists("run_summaries", k))
        return cache[name]
    return resolve


@dataclass(frozen=True)
class _ByMetric:
    """A page sorted by a metric's final value: the runs with one, in the (key, last) index's order (`first`);
    how many match with one (`with_value`); the others, newest first (`rest`, paged where it is run)."""

    first: RunRows | Prepared
    with_value: Select[int]
    rest: RunRows


def _metric_statements(stmt: RunRows, counting: RunRows, key: str, descending: bool, limit: int | None,
                       offset: int, kept: bool) -> _ByMetric:
    summary = aliased(RunSummary)
    valued = (summary.run_id == RunRow.id) & (summary.key == key) & summary.last.is_not(None)
    tiebreak = RunRow.id.desc() if descending else RunRow.id.asc()
    first = (stmt.join(summary, valued).order_by(summary.last.desc() if descending else summary.last.asc(), tiebreak)
             .limit(limit).offset(offset))
    with_value = counting.with_only_columns(func.count()).join(summary, valued)  # the filter as IN
    rest = stmt.where(~select(summary.run_id).where(valued).exists()).order_by(tiebreak)
    return _ByMetric(Prepared(first) if kept else first, with_value, rest)


def _by_metric(conn: Connection, page: _ByMetric, limit: int | None, offset: int) -> list[RunInfo]:
    """A page sorted by a metric's final value, runs without one last: first the runs that have it, walked in
    the (key, last) index's order and stopping at the page's end; then, where the page is not full, the others
    newest first (where an ORDER BY over a LEFT JOIN with NULLS LAST sorted every match first)."""
    first = _fetch(conn, page.first)
    if limit is not None and len(first) == limit:
        return first
    if first:  # the runs with a value end on this page
        skip = 0
    else:  # they end before it: how many there are says where the others start
        skip = max(0, offset - conn.execute(page.with_value).scalar_one())
    return first + _fetch(conn, page.rest.limit(None if limit is None else limit - len(first)).offset(skip))


def _conditions(resolve: query.Resolver, status, sweep, filter, experiment, tag, dataset, model,
                correlated: bool = False) -> list:
    conditions: list[ColumnElement[bool]] = []
    if status:
        conditions.append(RunRow.status.in_(status))
    for column, value in ((RunRow.sweep, sweep), (Experiment.name, experiment), (RunRow.dataset, dataset),
                          (RunRow.model, model)):
        if value:
            conditions.append(column == value)
    if tag:
        key, sep, value = tag.partition("=")
        having = select(Tag.run_id).where(Tag.key == key.strip())
        having = having.where(Tag.value == value.strip()) if sep else having
        conditions.append(having.where(Tag.run_id == RunRow.id).exists() if correlated else RunRow.id.in_(having))
    if filter and filter.strip():
        conditions.append(query.to_sql(filter, resolve, correlated))
    return conditions


def _order(stmt: RunRows, resolve: query.Resolver, sort: str | None, descending: bool) -> RunRows:
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
    tables: dict[str, type[Param] | type[RunSummary] | type[Tag]] = {"param": Param, "metric": RunSummary, "tag": Tag}
    joined = aliased(tables[field.kind])
    stmt = stmt.outerjoin(joined, (joined.run_id == RunRow.id) & (joined.key == field.key))
    keys = {"param": ("number", "value"), "metric": ("last",), "tag": ("value",)}[field.kind]
    columns = [getattr(joined, name) for name in keys]
    return stmt.order_by(*(direction(column) for column in columns), tiebreak)
