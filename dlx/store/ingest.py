"""One run's writes as the tracking writer (`dlx.tracking.Run`) batches them: metric points with their
summary rows, params, tags, summary merges, the artifacts' index, status, heartbeats; and which database
errors mean "try again later".

`Run` decides what to write and when; this module says how, in SQL: the fastest correct insert of
points per dialect, statements built once per process, SQLite's write lock taken where a read must
stay true until the commit.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Dialect, Select, Update, bindparam, insert, select, update
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from db.engine import DatabaseReplaced
from db.models import Artifact, Metric, Param, Tag, param_number, utcnow
from db.models import Run as RunRow
from dlx.states import ACTIVE_STATES, OWNER
from dlx.store.bulk import MultiRow
from dlx.store.summaries import update_summaries

if TYPE_CHECKING:
    from dlx.store import Store

Transaction = Connection  # what a run's edit runs on: the connection of one open transaction
RunEdit = Callable[[Transaction], None]


class RunWrites:
    """The writes `dlx.tracking.Run` makes to one run of `store`."""

    def __init__(self, store: Store, run_id: int) -> None:
        self.store = store
        self.run_id = run_id
        self._engine = store.engine
        self._insert_sql, self._insert_kind = _metric_insert(self._engine.dialect)  # and how to run it

    def transaction(self) -> AbstractContextManager[Transaction]:
        """A transaction, committed at the block's end (rolled back on an exception)."""
        return self._engine.begin()

    def lock(self, conn: Transaction) -> None:
        """BEGIN IMMEDIATE on SQLite, unless this transaction has already written (and so holds the lock)."""
        if self.store.dialect != "sqlite":
            return
        dbapi_connection = conn.connection.dbapi_connection
        assert dbapi_connection is not None  # checked out: this transaction is open
        if not dbapi_connection.in_transaction:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    # -- edits: built in the caller's line, run in a transaction ------------------------------
    def params(self, values: Mapping[str, str]) -> RunEdit:
        """Params in one upsert, each with its number (given here: SQLAlchemy calls the column's default per row)."""
        rows = [{"run_id": self.run_id, "key": k, "value": v, "number": param_number(v)} for k, v in values.items()]
        return self._keyed(Param, rows)

    def tags(self, values: Mapping[str, str]) -> RunEdit:
        """Tags in one upsert."""
        return self._keyed(Tag, [{"run_id": self.run_id, "key": k, "value": v} for k, v in values.items()])

    def _keyed(self, model: type[Param] | type[Tag], rows: list[dict[str, Any]]) -> RunEdit:
        """One upsert: a run's whole config is one round trip, and writers setting the same keys at
        once never collide (the last one's value stays)."""
        statement = self.store.keyed_upsert(model.__table__)

        def upsert(conn: Transaction) -> None:
            conn.execute(statement, rows)

        return upsert

    def summary(self, values: Mapping[str, Any], columns: Mapping[str, Any]) -> RunEdit:
        """Merge `values` into the run's summary and set the run row's `columns`; the read and the
        write need the run's lock between them (`lock`, or the row lock the read takes on PostgreSQL)."""
        read, write = _summary_statements(self.store.dialect, tuple(sorted(columns)))
        values = dict(values)

        def merge(conn: Transaction) -> None:
            current = conn.execute(read, {"run": self.run_id}).scalar_one()
            conn.execute(write, {"run": self.run_id, "merged": {**(current or {}), **values}, **columns})

        return merge

    def artifacts(self, entries: Iterable[tuple[str, str, str, Mapping[str, Any] | None]]) -> RunEdit:
        """Index files (kind, name, path, meta) in one upsert; a (kind, name) indexed again points at
        its new file (the last entry's where one call names it twice)."""
        rows = {(kind, name): {"run_id": self.run_id, "kind": kind, "name": name, "path": path,
                               "meta": dict(meta or {}), "created_at": utcnow()}
                for kind, name, path, meta in entries}
        statement = self.store.merging_upsert(
            Artifact.__table__, ["run_id", "kind", "name"],
            lambda upsert: {column: upsert.excluded[column] for column in ("path", "meta", "created_at")})

        def index(conn: Transaction) -> None:
            conn.execute(statement, list(rows.values()))

        return index

    # -- points --------------------------------------------------------------------------------
    def insert_points(self, conn: Transaction, rows: list[tuple]) -> None:
        """(run_id, key, step, value, time) rows and the summary rows they change, on `conn`."""
        if self._insert_kind == "copy":
            self._copy(conn, rows)
        elif self._insert_kind == "rows":
            self._insert_sql.execute(conn, rows)
        else:
            conn.execute(self._insert_sql, [dict(run_id=r[0], key=r[1], step=r[2], value=r[3],
                                                 time=r[4]) for r in rows])
        update_summaries(self.store, conn, self.run_id, rows)

    def _copy(self, conn: Transaction, rows: list[tuple]) -> None:
        """COPY the rows on the transaction's own psycopg connection; a driver error is raised as
        SQLAlchemy's (OperationalError, ProgrammingError, ...) like every other statement's."""
        dbapi = self._engine.dialect.loaded_dbapi
        driver_connection = conn.connection.driver_connection
        assert driver_connection is not None  # checked out: this transaction is open
        try:
            with driver_connection.cursor() as cursor, cursor.copy(self._insert_sql) as copy:
                for row in rows:
                    copy.write_row(row)
        except dbapi.Error as err:
            raise DBAPIError.instance(self._insert_sql, None, err, dbapi.Error,
                                      dialect=self._engine.dialect) from err

    # -- the run row ---------------------------------------------------------------------------
    def status(self, conn: Transaction | None = None) -> Any:
        """The run's (status, ended_at) row, or None where it does not exist; given a flush's
        transaction, read with a share lock on the row on PostgreSQL."""
        if conn is not None:
            return conn.execute(_status_statement(self.store.dialect), {"run": self.run_id}).first()
        with self._engine.connect() as conn:
            return conn.execute(_status_statement(None), {"run": self.run_id}).first()

    def exists(self) -> bool:
        table = RunRow.__table__
        with self._engine.connect() as conn:
            return conn.execute(select(table.c.id).where(table.c.id == self.run_id)).first() is not None

    def heartbeat(self) -> Any:
        """Beat the run (while it is active) and read back its (cancel_requested, status, ended_at)
        row, or None where it was deleted."""
        table = RunRow.__table__
        with self._engine.begin() as conn:
            conn.execute(update(table).where(table.c.id == self.run_id, table.c.status.in_(ACTIVE_STATES))
                         .values(heartbeat_at=utcnow()))
            return conn.execute(select(table.c.cancel_requested, table.c.status, table.c.ended_at)
                                .where(table.c.id == self.run_id)).first()

    def set_status(self, status: str, error: str | None = None) -> bool:
        """Move the run to `status`; only from queued or running (checked in the UPDATE itself), so a
        final status is never overwritten. Returns whether the run moved."""
        now = utcnow()
        values: dict[str, Any] = {"status": status}
        if status == "running":
            values.update(started_at=now, heartbeat_at=now, owner=OWNER)
        else:
            values["ended_at"] = now
        if error is not None:
            values["error"] = error
        table = RunRow.__table__
        with self._engine.begin() as conn:
            moved = conn.execute(update(table).where(table.c.id == self.run_id, table.c.status.in_(ACTIVE_STATES))
                                 .values(**values))
            return moved.rowcount == 1


def import_sqlite() -> None:
    """Import SQLAlchemy's SQLite dialect now, not at the first engine: a standby job process
    (dlx.jobs.standby) warms up with it before its job exists."""
    import sqlalchemy.dialects.sqlite  # noqa: F401


def unavailable(err: Exception) -> bool:
    """Whether the database could not be used at all (retry the rows later), rather than refused them.

    A statement that fails as a whole (on PostgreSQL a ProgrammingError of SQLSTATE class 42, such
    as a missing table, which SQLite calls OperationalError) fails every row alike: no row of it
    is to blame. A trigger's RAISE (P0001) is a refusal of rows, though psycopg files it beside them.
    """
    unreachable = (OperationalError, InterfaceError, PoolTimeout, DatabaseReplaced)
    whole_statement = (isinstance(err, ProgrammingError)
                       and str(getattr(err.orig, "sqlstate", None) or "42").startswith("42"))
    return isinstance(err, unreachable) or whole_statement or getattr(err, "connection_invalidated", False)


@functools.cache
def _metric_insert(dialect: Dialect) -> tuple[Any, str]:
    """The fastest correct insert of metric points for this dialect, and how to run it (built once
    per engine): COPY on PostgreSQL (psycopg), many rows per statement on SQLite (dlx.store.bulk), else a
    Core executemany."""
    stmt = insert(Metric.__table__)
    if dialect.driver == "psycopg":
        return "COPY metrics (run_id, key, step, value, time) FROM STDIN", "copy"
    if dialect.name == "sqlite":
        keys = ["run_id", "key", "step", "value", "time"]  # the order of the points' tuples
        multi_row, names = MultiRow.compiled(stmt, dialect, keys)
        assert names == keys, names
        return multi_row, "rows"
    return stmt, "core"


@functools.cache
def _summary_statements(dialect: str, columns: tuple[str, ...]) -> tuple[Select, Update]:
    """`RunWrites.summary`'s read and write, built once per process (building them cost more than
    running them). Two writers of one run's summary merge in turn, neither dropping the other's keys:
    the read locks the row on PostgreSQL; on SQLite the write lock is taken first (`RunWrites.lock`)."""
    table = RunRow.__table__
    read = select(table.c.summary).where(table.c.id == bindparam("run"))
    if dialect == "postgresql":
        read = read.with_for_update()
    write = (update(table).where(table.c.id == bindparam("run"))
             .values(summary=bindparam("merged", type_=table.c.summary.type),
                     **{column: bindparam(column, type_=table.c[column].type) for column in columns}))
    return read, write


@functools.cache
def _status_statement(dialect: str | None) -> Select:
    """A run's status and end time; on PostgreSQL with a share lock on its row, for a flush's transaction."""
    table = RunRow.__table__
    read = select(table.c.status, table.c.ended_at).where(table.c.id == bindparam("run"))
    return read.with_for_update(read=True) if dialect == "postgresql" else read

