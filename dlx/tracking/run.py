"""The run API the training loop and users' own scripts write through.

Metric points are checked when they are logged (a bad one fails in the caller's line) and
written in batches (on size, on a timer, at the end, on an exception or SIGTERM), so logging
costs microseconds per point instead of a round trip. The same background thread heartbeats
the run, so a script that dies is noticed, and honours a request to end the run.
"""
from __future__ import annotations

import _thread
import atexit
import contextlib
import logging
import signal
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from db.engine import DatabaseReplaced, store_notice
from dlx import settings
from dlx.errors import DlxError, Pruned
from dlx.settings import HEARTBEAT_INTERVAL
from dlx.states import ACTIVE_STATES
from dlx.store.ingest import RunEdit, RunWrites, Transaction, unavailable
from dlx.tracking.logged_values import checked_key, checked_param, checked_step, checked_text, checked_value
from dlx.tracking.models import log_model

if TYPE_CHECKING:
    from dlx.store import Store

logger = logging.getLogger(__name__)


STAGED = object()  # Run.transaction(with_points=True): edits wait for the next flush


class Edit(NamedTuple):
    """A run edit (params, tags, summary, artifacts) as a function of a transaction's connection."""

    apply: RunEdit
    read_then_write: bool


class Cancelled(BaseException):
    """Raised inside a run when it is asked to stop (SIGTERM, or End on the page); ends the run as cancelled."""


_open_runs: weakref.WeakSet[Run] = weakref.WeakSet()
_store_named = False  # a script's first run names its store on stderr, once


class Run:
    """A handle on one run row of `store`; everything logged through it lands there."""

    def __init__(self, store: Store, run_id: int, flush_size: int = 5000,
                 flush_interval: float = 1.0, stop_signal: signal.Signals = signal.SIGINT):
        self.id = run_id
        self.store = store
        self._writes = RunWrites(store, run_id)  # the SQL of everything below
        # Why points are refused (the run has ended), raised where they are logged; a handle on a finished
        # run refuses them from the start (its params, tags and summary may still be edited, as pages do).
        self._refusal: DlxError | None = None
        if (row := self._status()) is not None and _end_time(row) is not None:
            self._refusal = _ended_error(run_id, row.status)
        self._buffer: list[tuple] = []
        self._keys: set[str] = set()  # metric keys already checked: a step's usual keys are checked once
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._flush_size = flush_size
        self._wrote_any = False
        self._stop = threading.Event()
        self._wake = threading.Event()  # the background thread's: a full buffer to write, or the stop
        self._stop_signal = stop_signal  # simulated in the main thread when the run is ended from outside
        self.stop_requested = False
        self.ends_itself_at_exit = False  # set by start_run for the runs it creates (scripts' runs)
        self._local = threading.local()  # `.target`: this thread's transaction() connection, or STAGED
        self._staged: list[Edit] = []  # edits waiting for the next flush (transaction(with_points=True))
        self._timer = threading.Thread(target=self._background, args=(flush_interval,),
                                       daemon=True, name=f"dlx-flush-{run_id}")
        self._timer.start()
        _open_runs.add(self)

    @contextlib.contextmanager
    def transaction(self, with_points: bool = False) -> Iterator[None]:
        """Params, tags, summary and artifacts written by this thread inside the block go in one
        transaction, committed at the block's end; with `with_points`, in the transaction of the
        run's next flush of metric points instead (at most `flush_interval` later, at once when the
        run's first points come), so a training run's start and its first points are one write."""
        if getattr(self._local, "target", None) is not None:  # inside one already: part of it
            yield
            return
        with contextlib.nullcontext(STAGED) if with_points else self._writes.transaction() as target:
            self._local.target = target
            try:
                yield
            finally:
                self._local.target = None

    def _apply(self, edit: RunEdit, read_then_write: bool = False) -> None:
        """Run `edit` in this thread's `transaction()`, staged for the next flush, or in a transaction of its own.

        `read_then_write` (update_summary's merge) takes SQLite's write lock before the read, so no
        other writer comes between the two (on PostgreSQL the read locks the row).
        """
        target = getattr(self._local, "target", None)
        if target is STAGED:
            with self._lock:
                self._staged.append(Edit(edit, read_then_write))
            return
        if target is not None:
            if read_then_write:
                self._writes.lock(target)
            edit(target)
            return
        with self._writes.transaction() as conn:
            if read_then_write:
                self._writes.lock(conn)
            edit(conn)

    # -- logging ---------------------------------------------------------------------------
    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log several metrics at one step; every key, value and the step are checked before any is kept."""
        now = time.time()
        step = checked_step(step)
        run_id, known = self.id, self._keys
        # Inline for the usual point (a known key, a float): the checks' calls are most of a point's cost.
        self._append([(run_id, key if key in known else self._new_key(key), step,
                       value if type(value) is float else checked_value(key, value), now)
                      for key, value in metrics.items()])

    def _new_key(self, key: Any) -> str:
        checked = checked_key(key)
        self._keys.add(checked)
        return checked

    def log_series(self, key: str, values: Sequence[float], first_step: int) -> None:
        """One metric at consecutive steps (`first_step`, `first_step + 1`, ...) in one call."""
        now = time.time()
        key = checked_key(key)
        first = checked_step(first_step, key)
        rows = [(self.id, key, first + i, checked_value(key, v), now) for i, v in enumerate(values)]
        if rows:
            checked_step(rows[-1][2], key)
        self._append(rows)

    def _append(self, rows: list[tuple]) -> None:
        """Buffer points; the run's very first ones are written at once, so a page watching the
        run draws its first point without waiting for the flush timer. Once the run is known to
        have ended, points are refused here, in the caller's line."""
        if self._refusal is not None:
            raise self._refusal.with_traceback(None)  # this line's traceback, not where it was first raised
        with self._lock:
            self._buffer.extend(rows)
            size, first = len(self._buffer), not self._wrote_any
            self._wrote_any = True
        if first or size >= 2 * self._flush_size:  # a writer fallen a buffer behind: this line waits for it
            self.flush()
        elif size >= self._flush_size:
            self._wake.set()  # the background thread writes the full buffer while this one goes on logging

    def log_metric(self, key: str, value: float, step: int = 0) -> None:
        self.log_metrics({key: value}, step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record parameters (stored as text; nested values as JSON); re-logging a key overwrites it."""
        values = {checked_key(key, "param"): checked_param(key, value) for key, value in params.items()}
        if values:  # one upsert: a run's whole config is one round trip
            self._apply(self._writes.params(values))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        values = {checked_key(key, "tag"): checked_text(key, value) for key, value in tags.items()}
        if values:
            self._apply(self._writes.tags(values))

    def update_summary(self, values: Mapping[str, Any], **columns: Any) -> None:
        """Merge values into the run's summary (final metrics, totals the pages show); `columns`
        set the run row's own columns (e.g. `device`) in the same transaction."""
        self._apply(self._writes.summary(values, columns), read_then_write=True)

    def log_artifact(self, kind: str, name: str, path: str, meta: Mapping[str, Any] | None = None) -> None:
        """Index a file under the data directory (path relative to it); one (kind, name) per run."""
        self.log_artifacts([(kind, name, path, meta)])

    def log_artifacts(self, entries: Iterable[tuple[str, str, str, Mapping[str, Any] | None]]) -> None:
        """Index several files (kind, name, path, meta) in one upsert: the training loop indexes its
        checkpoints every epoch, and a (kind, name) indexed again points at its new file."""
        entries = list(entries)
        for _, _, path, _ in entries:
            settings.stored_path(path)  # refused now, in the caller's line, rather than trusted when read
        if entries:
            self._apply(self._writes.artifacts(entries))

    def remove_artifacts(self, kind: str, names: list[str]) -> None:
        """Drop index entries (thinned checkpoints), in this thread's `transaction()` when in one."""
        self._apply(lambda conn: self.store.remove_artifacts(self.id, kind, names, conn))

    def log_model(self, model: Any, builder: str, input: str, **builder_kwargs: Any) -> None:
        """Store a model of your own code (weights as safetensors, `builder` "pkg.module:function" that
        rebuilds it with `builder_kwargs`) to explain it on `input`, a registered data set: dlx.tracking.models."""
        log_model(self, model, builder, input, **builder_kwargs)

    # -- writing ---------------------------------------------------------------------------
    def flush(self) -> None:
        """Write every buffered point in one transaction.

        If the database is unavailable (locked, gone for a moment) the points go back to the
        buffer for the next flush and the error is raised. If it refuses some rows, the rest are
        written and only those are dropped (and reported): nothing blocks the points behind them.
        """
        if self._gone():
            raise DlxError(str(self._refusal), field="database")  # its file is gone: nothing is tried again
        with self._write_lock:
            with self._lock:
                rows, self._buffer = self._buffer, []
                staged, self._staged = self._staged, []
            if staged and self._write_staged(staged, rows):
                return
            pending = [rows] if rows else []
            refused = self._refusal
            try:
                while pending:
                    part = pending.pop()
                    try:
                        self._insert(part)
                    except Exception as err:
                        pending.append(part)  # kept until we know it cannot be written
                        if unavailable(err):
                            raise
                        halves = self._split_refused(part, err)
                        pending.pop()
                        pending.extend(halves)
            except BaseException as err:  # unavailable, or SIGTERM mid-write: what is left goes back
                with self._lock:
                    self._buffer[:0] = [row for part in reversed(pending) for row in part]
                if isinstance(err, DatabaseReplaced):
                    raise self._store_gone(err) from None
                raise
            if self._refusal is not None and self._refusal is not refused:
                raise self._refusal  # this flush refused points logged after the end

    def _gone(self) -> bool:
        """Whether the database file this run writes to was deleted or replaced (see _store_gone)."""
        return self._refusal is not None and self._refusal.field == "database"

    def _store_gone(self, err: DatabaseReplaced) -> DlxError:
        """The error every later point is refused with: the database file is gone, and the points
        not written stay in this process's memory, counted, never written into whatever is there now."""
        self._refusal = DlxError(f"{err}. Run #{self.id}: {len(self._buffer)} metric points logged are not "
                                 "written, and no more are taken", field="database")
        logger.error("%s", self._refusal)
        return self._refusal

    def _write_staged(self, staged: list[Edit], rows: list[tuple]) -> bool:
        """Write staged edits with the points (the common case: True), else alone, the points then
        left to the caller (False). Edits the database refuses are reported and dropped; if it is
        unavailable, edits and points go back for the next flush."""
        try:
            try:
                self._insert(rows, staged)
                return True
            except Exception as err:
                if unavailable(err):
                    raise
            try:
                self._insert([], staged)
            except Exception as err:
                if unavailable(err):
                    raise
                logger.error("run #%s: the database refused its params/tags/summary edits: %s", self.id, err)
            return False
        except BaseException as err:
            with self._lock:
                self._staged[:0] = staged
                self._buffer[:0] = rows
            if isinstance(err, DatabaseReplaced):
                raise self._store_gone(err) from None
            raise

    def _insert(self, rows: list[tuple], staged: Sequence[Edit] = ()) -> None:
        """The points and the run's summary rows they change (after any staged edits), in one
        transaction; points logged after the run ended are refused (`_before_the_end`)."""
        with self._writes.transaction() as conn:
            if rows or any(edit.read_then_write for edit in staged):
                self._writes.lock(conn)  # the run's status read below stays true until the commit
            for edit in staged:
                edit.apply(conn)
            if rows:
                rows = self._before_the_end(conn, rows)
            if rows:
                self._writes.insert_points(conn, rows)

    def _before_the_end(self, conn: Transaction, rows: list[tuple]) -> list[tuple]:
        """The points logged before the run ended (all of them while it has not): a point logged
        later is refused, never stored into the finished run, and logging then raises (`_refusal`).
        Read under the write lock (SQLite) or a share lock on the row (PostgreSQL), so the run
        cannot end between this read and the commit."""
        run = self._writes.status(conn)
        end = None if run is None else _end_time(run)  # a deleted run's points: refused by the database
        if end is None:
            return rows
        kept = [row for row in rows if row[4] <= end]
        if len(kept) < len(rows):
            self._refusal = _ended_error(self.id, run.status)
            logger.error("run #%s: refused %d metric points logged after it ended (%s)",
                         self.id, len(rows) - len(kept), run.status)
        return kept

    def _status(self) -> Any:
        """The run's (status, ended_at) row, or None where it does not exist."""
        return self._writes.status()

    def _split_refused(self, rows: list[tuple], err: Exception) -> list[list[tuple]]:
        """Halves of a refused batch to retry apart, or nothing where it cannot be written at all."""
        if not self._writes.exists():
            logger.error("run #%s was deleted: dropped %d metric points", self.id, len(rows))
            return []
        if len(rows) == 1:
            logger.error("run #%s: dropped the metric point %r the database refused: %s", self.id, rows[0], err)
            return []
        middle = len(rows) // 2
        return [rows[middle:], rows[:middle]]  # popped first half first: the order stays

    def _background(self, flush_interval: float) -> None:
        """Flush on the timer and heartbeat; a failure is reported and retried on the next turn."""
        next_flush = next_beat = time.monotonic()
        while True:
            self._wake.wait(min(flush_interval, HEARTBEAT_INTERVAL))
            self._wake.clear()
            if self._stop.is_set():
                return
            now = time.monotonic()
            if len(self._buffer) >= self._flush_size:  # woken by a full buffer
                next_flush = now
            for due, action in ((next_flush, self.flush), (next_beat, self._heartbeat)):
                if now >= due:
                    try:
                        action()
                    except DatabaseReplaced as err:  # seen by the heartbeat first
                        if self._refusal is None:
                            self._store_gone(err)
                    except DlxError:
                        pass  # logged, and raised where the script logs next (_refusal)
                    except Exception:
                        traceback.print_exc()
            if now >= next_flush:
                next_flush = now + flush_interval
            if now >= next_beat:
                next_beat = now + HEARTBEAT_INTERVAL

    def _halt(self) -> None:
        """End the background thread's loop (at once, not at its next turn)."""
        self._stop.set()
        self._wake.set()

    def _heartbeat(self) -> None:
        """Tell the store this process is alive; stop the script if its run was ended or deleted meanwhile."""
        row = self._writes.heartbeat()
        if row is not None and _end_time(row) is not None and self._refusal is None:
            self._refusal = _ended_error(self.id, row.status)  # ended by someone else (a reaper): log no more
        if (row is None or row.cancel_requested) and not self.stop_requested and not self._stop.is_set():
            self.stop_requested = True
            # As if the signal came: the main thread raises Cancelled (SIGTERM handler) or KeyboardInterrupt.
            _thread.interrupt_main(self._stop_signal)

    def set_status(self, status: str, error: str | None = None) -> bool:
        """Move the run to `status`; only from queued or running (checked in the UPDATE itself), so a
        final status is never overwritten. Returns whether the run moved."""
        return self._writes.set_status(status, error)

    def finish(self, status: str = "succeeded", error: str | None = None) -> None:
        """Stop the timer, write what is buffered, and record the final status, even if writing failed
        (unless the database file itself is gone: then its error is raised). Points logged through
        this handle afterwards are refused."""
        self._halt()
        try:
            self.flush()
        except Exception as err:
            if self._gone():
                raise
            if err is not self._refusal:  # (points logged after someone else ended the run: refused, logged)
                edits = f" and {len(self._staged)} edits of params/tags/summary" if self._staged else ""
                lost = (f"{len(self._buffer)} metric points{edits} could not be written "
                        f"({type(err).__name__}: {err})")
                logger.error("run #%s: %s", self.id, lost)
                status = "failed" if status == "succeeded" else status
                error = f"{error}; {lost}" if error else lost
        finally:
            _open_runs.discard(self)
            if not self._gone():  # else there is nowhere to write it
                self._refusal = _ended_error(self.id, status)
                if not self.set_status(status, error) and (row := self._status()) is not None:
                    self._refusal = _ended_error(self.id, row.status)  # ended earlier, by someone else

    # -- context manager -------------------------------------------------------------------
    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        if exc is not None and exc is self._refusal and self._gone():  # raised in the block's line already
            self._halt()
            _open_runs.discard(self)
            return False
        self.finish(*_ending(exc))
        return False


def _end_time(run: Any) -> float | None:
    """When a run's (status, ended_at) row says it ended, in unix seconds; None while it has not. Every
    path that ends a run records its end time; a final status without one is taken as no end (yet)."""
    if run.status in ACTIVE_STATES or run.ended_at is None:
        return None
    return run.ended_at.replace(tzinfo=UTC).timestamp()


def _ended_error(run_id: int, status: str) -> DlxError:
    return DlxError(f"run: run #{run_id} has already ended ({status}); a point logged after its run ended "
                    "is refused: start a new run (dlx.start_run) to log more", field="run")


def _ending(exc: BaseException | None) -> tuple[str, str | None]:
    """The final status and reason of a run whose code ended with `exc` (None: normally)."""
    if exc is None:
        return "succeeded", None
    if isinstance(exc, (Cancelled, KeyboardInterrupt)):
        return "cancelled", "cancelled by request"
    if isinstance(exc, Pruned):
        return "pruned", str(exc)
    if isinstance(exc, DlxError):
        return "failed", str(exc)
    name = type(exc).__name__
    return "failed", f"{name}: {exc}" if str(exc) else name


def _raise_cancelled(signum, frame) -> None:
    raise Cancelled(f"received signal {signum}")


def start_run(experiment: str = "default", name: str | None = None,
              config: Mapping[str, Any] | None = None, run_id: int | None = None,
              store: Store | None = None, handle_signals: bool = True) -> Run:
    """Open a run of `store` (default: `default_store()`, the configured one; a new run, or an
    existing queued one by id) and mark it running.

    Use it as a context manager: the block's end flushes and records success, an exception
    records failure with its text, SIGTERM (or End on the Runs page, `dlx cancel`) records
    cancellation. A run this call creates that the script never closes is ended when the
    script exits, as the script ended.
    """
    if store is None:
        from dlx.store import default_store  # the store's module imports this one

        store = default_store()
    created = run_id is None
    if run_id is None:  # created running: started, heartbeat and owner in the same row
        run_id = store.create_run(config, experiment, name, status="running")
        _name_the_store(store)
    in_main = threading.current_thread() is threading.main_thread()
    run = Run(store, run_id, stop_signal=signal.SIGTERM if handle_signals and in_main else signal.SIGINT)
    run.ends_itself_at_exit = created
    if not created and not run.set_status("running"):
        run._halt()
        _open_runs.discard(run)
        if (row := run._status()) is not None:
            raise _ended_error(run_id, row.status)
        raise DlxError(f"run_id: there is no run #{run_id}", field="run_id")
    if handle_signals and in_main:
        signal.signal(signal.SIGTERM, _raise_cancelled)
    return run


def _name_the_store(store: Store) -> None:
    """Say on stderr, once per process, which store a script's runs go to (the app lists that one)."""
    global _store_named
    if not _store_named:
        _store_named = True
        print(store_notice(store.url), file=sys.stderr, flush=True)


@atexit.register
def _end_open_runs() -> None:
    """A script that never closed its run keeps every point it logged, and its run ends as the
    script did (an uncaught exception fails it); a run opened by id (a job's) is ended by its worker."""
    crash = getattr(sys, "last_value", None)  # set by the interpreter for an uncaught exception
    for run in list(_open_runs):
        try:
            if not run.ends_itself_at_exit:
                run.flush()
            else:
                run.finish(*_ending(Cancelled() if run.stop_requested else crash))
        except Exception:
            traceback.print_exc()
