"""The explanation cache's rows in one store (`store.explanations`): safetensors bytes by key.

Keys (what determines a result) are made in dlx.explain.cache; this is only where they live.

The Explain page's store is off its critical path: on one picture the INSERT (safetensors bytes,
one statement) cost about as much as the 10% the page may spend over a direct Captum call. A
save with `wait=False` hands its entries to a background writer (one daemon thread per
`Explanations`, started when there is something to write, ended when idle) and returns; lookups
see the handed-over entries at once, from memory, until they are in the database. The writer
writes whatever is pending in one statement and retries a failed write (logged) until it
succeeds (entries of a run deleted meanwhile are let go, logged: they cannot be stored);
`flush()` waits for it, and the interpreter's exit and `db.engine.dispose_all` flush every
store's cache. Jobs and the CLI save with `wait=True` (the default): written before they
report success.
"""
from __future__ import annotations

import atexit
import functools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from sqlalchemy import Connection, Engine, Table, bindparam, select
from sqlalchemy.engine import Dialect
from torch import Tensor

from db.engine import on_dispose
from db.models import Explanation, Run, utcnow
from dlx.errors import DlxError


class CacheStore(Protocol):
    """What the cache uses of its store (a `dlx.store.Store`)."""

    engine: Engine

    def connect(self) -> Connection: ...

    def upsert(self, table: Table) -> Any: ...


Stored = tuple[dict[str, Any], dict[str, Tensor]]  # (meta, tensors)
Pending = tuple[int, str, Stored]  # (run id, method, entry): a row not written yet

log = logging.getLogger(__name__)
RETRY_FIRST, RETRY_MAX = 0.05, 5.0  # seconds before retrying a failed write, doubled each time up to the max
# Seconds a woken writer waits before taking what is pending: the page has returned by then (the
# writer does not take the interpreter from it), and a second gallery drawn next to the first
# (pages/explain.py's comparison) joins the same statement.
BATCH_WINDOW = 0.02
IDLE_EXIT = 60.0  # seconds an idle writer waits for more before its thread ends (a page's next look: no new thread)
EXIT_FLUSH_TIMEOUT = 60.0  # seconds the interpreter's exit and dispose_all wait for the writers
_LOOKUP = (select(Explanation.key, Explanation.meta, Explanation.data)
           .where(Explanation.key.in_(bindparam("keys", expanding=True))))


@dataclass(frozen=True)
class _LookupSql:
    """The lookup for a number of keys, compiled once per dialect and count, run on a pooled DB-API
    cursor. SQLAlchemy's execution of the same statement (its context, parameters and result
    objects) took 0.3 ms of one picture's Explain page, a third of what the page may spend over
    Captum; its compiler and the columns' own type processors still make the SQL and the values."""

    sql: str
    order: tuple[int, ...] | None  # positional parameters: which key each placeholder takes
    names: tuple[str, ...]  # named parameters: the placeholders' names, in the keys' order
    meta: Callable[[Any], Any] | None  # the JSON column's and the binary column's result processors
    data: Callable[[Any], Any] | None

    def parameters(self, keys: list[str]) -> list[str] | dict[str, str]:
        if self.order is not None:
            return [keys[i] for i in self.order]
        return dict(zip(self.names, keys))


@functools.lru_cache(maxsize=256)
def _lookup_sql(dialect: Dialect, count: int) -> _LookupSql:
    state = _LOOKUP.compile(dialect=dialect).construct_expanded_state({"keys": [""] * count})
    names = tuple(state.parameter_expansion["keys"])  # the placeholders, in the keys' order
    order = None if state.positiontup is None else tuple(names.index(name) for name in state.positiontup)
    meta, data = (column.type.dialect_impl(dialect).result_processor(dialect, None)
                  for column in (Explanation.meta, Explanation.data))
    return _LookupSql(state.statement, order, names, meta, data)


class Explanations:
    """Stored explanations and job results of one store, read and written in batches."""

    def __init__(self, store: CacheStore) -> None:
        self.store = store
        self._reset()
        _live.add(self)

    def _reset(self) -> None:
        """No writer and nothing pending (a new object, or a forked child: its parent writes those)."""
        self._cond = threading.Condition()
        self._pending: dict[str, Pending] = {}
        self._writer: threading.Thread | None = None
        self._error: BaseException | None = None  # the last failed write's, until a write succeeds

    def load_many(self, keys: list[str]) -> dict[str, Stored]:
        """Every stored entry among these keys: those not written yet from memory, the rest in one query."""
        with self._cond:
            found = {key: self._pending[key][2] for key in keys if key in self._pending}
        rest = [key for key in keys if key not in found]
        if not rest:
            return found
        lookup = _lookup_sql(self.store.engine.dialect, len(rest))
        connection = self.store.engine.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(lookup.sql, lookup.parameters(rest))
            rows = cursor.fetchall()
            cursor.close()
        finally:
            connection.close()  # back to the pool, which ends the read transaction
        for key, meta, data in rows:
            found[key] = (lookup.meta(meta) if lookup.meta else meta,
                          load_tensors(lookup.data(data) if lookup.data else data))
        return found

    def load(self, key: str) -> Stored | None:
        return self.load_many([key]).get(key)

    def for_run(self, run_id: int) -> list[tuple[str, str, Stored]]:
        """Every stored entry of a run as (key, method, (meta, tensors)), oldest first (the one-file report)."""
        self.flush(EXIT_FLUSH_TIMEOUT)  # entries handed to the writer are in the database before reading them back
        stmt = (select(Explanation.key, Explanation.method, Explanation.meta, Explanation.data)
                .where(Explanation.run_id == run_id).order_by(Explanation.id))
        with self.store.connect() as conn:
            return [(key, method, (meta, load_tensors(data))) for key, method, meta, data in conn.execute(stmt)]

    def latest(self, run_id: int, method: str) -> Stored | None:
        """The run's newest entry stored under `method` (a job's result, e.g. "job:sanity"), or None."""
        self.flush()
        with self.store.connect() as conn:
            row = conn.execute(select(Explanation.meta, Explanation.data)
                               .where(Explanation.run_id == run_id, Explanation.method == method)
                               .order_by(Explanation.created_at.desc(), Explanation.id.desc()).limit(1)).first()
        return None if row is None else (row.meta, load_tensors(row.data))

    def save(self, key: str, run_id: int, method: str, meta: dict[str, Any], tensors: dict[str, Tensor],
             wait: bool = True) -> None:
        """Store an entry; if another process stored the same key first, theirs stays (same content)."""
        self.save_many(run_id, {method: {key: (meta, tensors)}}, wait)

    def save_many(self, run_id: int, entries: dict[str, dict[str, Stored]], wait: bool = True) -> None:
        """Store many entries, per method, in ONE statement (a commit per sample, or per method of a
        page's gallery, cost more than Captum). A key another process stored meanwhile keeps theirs
        (same content): the insert skips it.

        With `wait=False` the background writer stores them and this returns at once (the page's
        path); lookups see them meanwhile. The tensors must not change afterwards.
        """
        pending = {key: (run_id, method, stored) for method, by_key in entries.items()
                   for key, stored in by_key.items()}
        if not pending:
            return
        if wait:
            self._insert(pending)
            return
        with self._cond:
            self._pending.update(pending)
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, daemon=True,
                                                name=f"explanations-{id(self):x}")
                self._writer.start()
            self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> None:
        """Wait until every entry saved without waiting is in the database; after `timeout` seconds
        (None: no limit) raise, naming how many are still pending and the last write's error."""
        with self._cond:
            if not self._cond.wait_for(lambda: not self._pending, timeout):
                raise DlxError(f"explanations: {len(self._pending)} cached entries not written after {timeout} s "
                               f"(last error: {self._error!r}); the writer goes on retrying",
                               field="explanations") from self._error

    def _insert(self, pending: dict[str, Pending]) -> None:
        rows = [{"key": key, "run_id": run_id, "method": method, "meta": meta, "created_at": utcnow(),
                 "data": save_tensors({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()})}
                for key, (run_id, method, (meta, tensors)) in pending.items()]
        with self.store.engine.begin() as conn:
            conn.execute(self.store.upsert(Explanation.__table__).on_conflict_do_nothing(index_elements=["key"]), rows)

    def _write_loop(self) -> None:
        """Write what is pending, in one statement per round, until idle for IDLE_EXIT seconds."""
        delay = RETRY_FIRST
        while True:
            with self._cond:
                if not self._cond.wait_for(lambda: self._pending, IDLE_EXIT):
                    self._writer = None  # a save from now on starts another writer
                    return
            time.sleep(BATCH_WINDOW)
            with self._cond:
                batch = dict(self._pending)
            try:
                self._insert(batch)
            except Exception as err:  # noqa: BLE001  (kept pending and retried: nothing is dropped)
                log.warning("explanations: writing %d cached entries to %r failed (%s); retrying in %.2f s",
                            len(batch), self.store, err, delay)
                with self._cond:
                    self._error = err
                self._forget_deleted_runs(batch)
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            delay = RETRY_FIRST
            with self._cond:
                self._error = None
                for key, entry in batch.items():
                    if self._pending.get(key) is entry:  # not handed over again meanwhile
                        del self._pending[key]
                self._cond.notify_all()

    def _forget_deleted_runs(self, batch: dict[str, Pending]) -> None:
        """Pending entries of a run deleted meanwhile can never be written (their run's key is gone, and
        they would be deleted with it): left pending they would fail every retry of the others."""
        try:
            with self.store.connect() as conn:
                runs = set(conn.execute(select(Run.id).where(Run.id.in_({run for run, _, _ in batch.values()})))
                           .scalars())
        except Exception:  # noqa: BLE001  (the database is unreachable: everything stays pending)
            return
        with self._cond:
            gone = [key for key, entry in batch.items() if entry[0] not in runs and self._pending.get(key) is entry]
            for key in gone:
                del self._pending[key]
            self._cond.notify_all()
        if gone:
            log.warning("explanations: %d cached entries not stored, their run was deleted: %s", len(gone),
                        sorted({batch[key][0] for key in gone}))


_live: weakref.WeakSet[Explanations] = weakref.WeakSet()


def flush_all(timeout: float = EXIT_FLUSH_TIMEOUT) -> None:
    """Flush every store's cache; what cannot be written within `timeout` is logged as lost."""
    for explanations in list(_live):
        try:
            explanations.flush(timeout)
        except DlxError as err:
            log.error("%s: %s", explanations.store, err)


atexit.register(flush_all)  # daemon threads still run during atexit: the writers finish their work
on_dispose(flush_all)  # before the engines close: a store's pending rows are written to its database


def _forget_in_child() -> None:
    """A forked child has no writer thread, and its parent writes what was pending."""
    for explanations in list(_live):
        explanations._reset()


os.register_at_fork(after_in_child=_forget_in_child)
