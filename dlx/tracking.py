"""The run API the training loop and users' own scripts write through.

Metric points are buffered and written in batches (on size, on a timer, at the end, on an
exception or SIGTERM), so logging costs microseconds per point instead of a round trip.
"""
from __future__ import annotations

import atexit
import json
import signal
import threading
import time
import traceback
import weakref
from typing import Any, Iterable, Mapping, Sequence

from sqlalchemy import delete, insert, select, update

from db.engine import get_engine, session
from db.models import Artifact, Experiment, Metric, Param, Tag, utcnow
from db.models import Run as RunRow
from dlx import settings
from dlx.errors import DlxError


class Cancelled(BaseException):
    """Raised inside a run when it is asked to stop (SIGTERM); ends the run as cancelled."""


_open_runs: "weakref.WeakSet[Run]" = weakref.WeakSet()


class Run:
    """A handle on one run row; everything logged through it lands in the store."""

    def __init__(self, run_id: int, url: str | None = None, flush_size: int = 5000,
                 flush_interval: float = 1.0):
        self.id = run_id
        self.url = url
        self._engine = get_engine(url)
        self._buffer: list[tuple] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._flush_size = flush_size
        self._wrote_any = False
        self._stop = threading.Event()
        self._insert_sql, self._positional = self._metric_insert()
        self._timer = threading.Thread(target=self._flush_periodically, args=(flush_interval,),
                                       daemon=True, name=f"dlx-flush-{run_id}")
        self._timer.start()
        _open_runs.add(self)

    def _metric_insert(self) -> tuple[Any, bool]:
        """The fastest correct insert for this dialect: driver SQL with tuples where it is positional."""
        stmt = insert(Metric.__table__)
        if self._engine.dialect.paramstyle in ("qmark", "format"):
            keys = ["run_id", "key", "step", "value", "time"]  # the table's column order
            return str(stmt.compile(dialect=self._engine.dialect, column_keys=keys)), True
        return stmt, False

    # -- logging ---------------------------------------------------------------------------
    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        now = time.time()
        self._append([(self.id, key, step, float(value), now) for key, value in metrics.items()])

    def log_series(self, key: str, values: Sequence[float], first_step: int) -> None:
        """One metric at consecutive steps (`first_step`, `first_step + 1`, ...) in one call."""
        now = time.time()
        self._append([(self.id, key, first_step + i, float(v), now) for i, v in enumerate(values)])

    def _append(self, rows: list[tuple]) -> None:
        """Buffer points; the run's very first ones are written at once, so a page watching the
        run draws its first point without waiting for the flush timer."""
        with self._lock:
            self._buffer.extend(rows)
            flush_now = len(self._buffer) >= self._flush_size or not self._wrote_any
            self._wrote_any = True
        if flush_now:
            self.flush()

    def log_metric(self, key: str, value: float, step: int = 0) -> None:
        self.log_metrics({key: value}, step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record parameters (stored as text; nested values as JSON); re-logging a key overwrites it."""
        rows = {key: value if isinstance(value, str) else json.dumps(value) for key, value in params.items()}
        self._replace(Param, rows)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._replace(Tag, {key: str(value) for key, value in tags.items()})

    def _replace(self, model: type[Param] | type[Tag], values: Mapping[str, str]) -> None:
        """Overwrite key/value rows in two statements (delete, then one batched insert): portable
        to every SQL dialect, and a run's whole config costs one round trip instead of a query per key."""
        if not values:
            return
        table = model.__table__
        with self._engine.begin() as conn:
            conn.execute(delete(table).where(table.c.run_id == self.id, table.c.key.in_(list(values))))
            conn.execute(insert(table), [{"run_id": self.id, "key": k, "value": v} for k, v in values.items()])

    def update_summary(self, values: Mapping[str, Any], **columns: Any) -> None:
        """Merge values into the run's summary (final metrics, totals the pages show); `columns`
        set the run row's own columns (e.g. `device`) in the same transaction."""
        table = RunRow.__table__
        with self._engine.begin() as conn:
            current = conn.execute(select(table.c.summary).where(table.c.id == self.id)).scalar_one()
            conn.execute(update(table).where(table.c.id == self.id)
                         .values(summary={**(current or {}), **values}, **columns))

    def log_artifact(self, kind: str, name: str, path: str, meta: Mapping[str, Any] | None = None) -> None:
        """Index a file under the data directory (path relative to it); one (kind, name) per run."""
        self.log_artifacts([(kind, name, path, meta)])

    def log_artifacts(self, entries: Iterable[tuple[str, str, str, Mapping[str, Any] | None]]) -> None:
        """Index several files (kind, name, path, meta) in one transaction: the training loop
        indexes its checkpoints every epoch. Core statements, not the ORM, for the same reason."""
        table = Artifact.__table__
        entries = list(entries)
        for _, _, path, _ in entries:
            settings.stored_path(path)  # refused now, in the caller's line, rather than trusted when read
        with self._engine.begin() as conn:
            for kind, name, path, meta in entries:
                values = {"path": path, "meta": dict(meta or {}), "created_at": utcnow()}
                updated = conn.execute(update(table).where(table.c.run_id == self.id, table.c.kind == kind,
                                                           table.c.name == name).values(**values))
                if updated.rowcount == 0:
                    conn.execute(insert(table).values(run_id=self.id, kind=kind, name=name, **values))

    # -- writing ---------------------------------------------------------------------------
    def flush(self) -> None:
        """Write every buffered point in one transaction."""
        with self._write_lock:
            with self._lock:
                rows, self._buffer = self._buffer, []
            if not rows:
                return
            try:
                with self._engine.begin() as conn:
                    if self._positional:
                        conn.exec_driver_sql(self._insert_sql, rows)
                    else:
                        conn.execute(self._insert_sql, [dict(run_id=r[0], key=r[1], step=r[2], value=r[3],
                                                             time=r[4]) for r in rows])
            except BaseException:  # a failed write (or SIGTERM mid-write) puts the points back
                with self._lock:
                    self._buffer[:0] = rows
                raise

    def _flush_periodically(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.flush()
            except Exception:  # the next flush (or the final one) retries these rows
                traceback.print_exc()

    def set_status(self, status: str, error: str | None = None) -> None:
        with session(self.url) as s, s.begin():
            values: dict[str, Any] = {"status": status}
            if status == "running":
                values["started_at"] = utcnow()
            else:
                values["ended_at"] = utcnow()
            if error is not None:
                values["error"] = error
            s.execute(update(RunRow).where(RunRow.id == self.id).values(**values))

    def finish(self, status: str = "succeeded", error: str | None = None) -> None:
        """Stop the timer, write what is buffered, and record the final status."""
        self._stop.set()
        self.flush()
        self.set_status(status, error)
        _open_runs.discard(self)

    # -- context manager -------------------------------------------------------------------
    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.finish("succeeded")
        elif issubclass(exc_type, (Cancelled, KeyboardInterrupt)):
            self.finish("cancelled", "cancelled by request")
        elif issubclass(exc_type, DlxError):
            self.finish("failed", str(exc))
        else:
            self.finish("failed", f"{exc_type.__name__}: {exc}" if str(exc) else exc_type.__name__)
        return False


def create_run(config: Mapping[str, Any] | None = None, experiment: str = "default",
               name: str | None = None, sweep: str | None = None, status: str = "queued",
               url: str | None = None) -> int:
    """Insert a run row (and its experiment if new); returns the run id."""
    config = dict(config or {})
    with session(url) as s, s.begin():
        exp = s.scalars(select(Experiment).where(Experiment.name == experiment)).first()
        if exp is None:
            exp = Experiment(name=experiment)
            s.add(exp)
            s.flush()
        row = RunRow(experiment_id=exp.id, name=name, sweep=sweep, status=status, config=config,
                     dataset=config.get("dataset"), model=config.get("model"))
        s.add(row)
        s.flush()
        return row.id


def _raise_cancelled(signum, frame) -> None:
    raise Cancelled(f"received signal {signum}")


def start_run(experiment: str = "default", name: str | None = None,
              config: Mapping[str, Any] | None = None, run_id: int | None = None,
              url: str | None = None, handle_signals: bool = True) -> Run:
    """Open a run (a new one, or an existing queued one by id) and mark it running.

    Use it as a context manager: the block's end flushes and records success, an exception
    records failure with its text, SIGTERM records cancellation.
    """
    if run_id is None:
        run_id = create_run(config, experiment, name, status="running", url=url)
    run = Run(run_id, url)
    run.set_status("running")
    if handle_signals and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_cancelled)
    return run


@atexit.register
def _flush_open_runs() -> None:
    """A script that never closed its run still keeps every point it logged."""
    for run in list(_open_runs):
        try:
            run.flush()
        except Exception:
            traceback.print_exc()
