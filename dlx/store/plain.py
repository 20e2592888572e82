"""`dlx runs`' page of a SQLite store read in plain SQL on the sqlite3 module, without SQLAlchemy.

Importing SQLAlchemy costs a command about 0.2 s of CPU, more than reading a page of runs. Where the store is
a SQLite file at the latest schema revision with no stale run to mark failed, and the page is the newest
runs (optionally of some states), this reads it with the same queries `Store.list_runs` and
`Store.count_runs(bound=)` run; anything else (a filter, a sort, PostgreSQL, a schema to upgrade, a stale
run, a database error) returns None and the caller uses the Store, which says what is wrong.
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from db.urls import head_revision
from dlx.settings import stale_after
from dlx.states import ACTIVE_STATES
from dlx.store.run_info import RunInfo

_PAGE = ("SELECT runs.id, experiments.name, runs.name, runs.sweep, runs.status, runs.dataset, runs.model, "
         "runs.config, runs.summary, runs.device, runs.error, runs.created_at, runs.started_at, runs.ended_at, "
         "(SELECT max(jobs.id) FROM jobs WHERE jobs.run_id = runs.id AND jobs.kind = 'train') "
         "FROM runs JOIN experiments ON experiments.id = runs.experiment_id{where} "
         "ORDER BY runs.id DESC LIMIT ? OFFSET ?")  # dlx.store.runs' _select_runs, newest first
_COUNT = "SELECT count(*) FROM (SELECT runs.id FROM runs{where} LIMIT ?)"  # every run has its experiment
_KEYED = {"params": "SELECT run_id, key, value FROM params WHERE run_id IN ({ids})",
          "tags": "SELECT run_id, key, value FROM tags WHERE run_id IN ({ids})",
          "metrics": "SELECT run_id, key, last FROM run_summaries WHERE run_id IN ({ids})"}
# Something to mark failed before a page is shown (Queue.reap_stale's conditions): then the Store does it.
_STALE = ("SELECT EXISTS (SELECT 1 FROM jobs WHERE status = 'running' AND heartbeat_at < :limit) OR EXISTS "
          "(SELECT 1 FROM runs WHERE status = 'running' AND coalesce(heartbeat_at, started_at, created_at) < :limit"
          " AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.run_id = runs.id AND jobs.status IN ({active})))")


def newest_runs(url: str, status: Sequence[str] | None, limit: int | None, offset: int,
                bound: int) -> tuple[list[RunInfo], int] | None:
    """The page of runs `Store.list_runs(status=status, limit=limit, offset=offset)` returns and
    `Store.count_runs(status=status, bound=bound)`, or None where the Store must answer instead."""
    path = _sqlite_file(url)
    if path is None or (limit is not None and limit < 0) or offset < 0:
        return None
    try:
        with _open(path) as conn:
            return _read(conn, list(status or ()), limit, offset, bound)
    except sqlite3.Error:  # the Store opens it again and names the failure (damaged, locked, not a database)
        return None


def _sqlite_file(url: str) -> str | None:
    """The path of a plain `sqlite:///PATH` URL (no driver, no query, not in memory), else None."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url:
        return None
    path = url[len(prefix):]
    return path if path and path != ":memory:" else None


def _open(path: str) -> sqlite3.Connection:
    """A connection that reads the existing file (never creates one), waiting out a writer as the engine does."""
    conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30)
    conn.execute("PRAGMA query_only=ON")
    return conn


def _read(conn: sqlite3.Connection, status: list[str], limit: int | None, offset: int,
          bound: int) -> tuple[list[RunInfo], int] | None:
    if conn.execute("SELECT version_num FROM alembic_version").fetchone() != (head_revision(),):
        return None  # a schema to upgrade: the Store's engine does it
    since = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=stale_after())
    active = ", ".join("?" * len(ACTIVE_STATES))
    stale = _STALE.replace(":limit", "?").format(active=active)
    if conn.execute(stale, (_stored(since), _stored(since), *ACTIVE_STATES)).fetchone()[0]:
        return None
    where = f" WHERE runs.status IN ({', '.join('?' * len(status))})" if status else ""
    rows = conn.execute(_PAGE.format(where=where), (*status, -1 if limit is None else limit, offset)).fetchall()
    total = conn.execute(_COUNT.format(where=where), (*status, bound + 1)).fetchone()[0]
    ids = [row[0] for row in rows]
    keyed: dict[str, dict[int, dict[str, Any]]] = {name: {i: {} for i in ids} for name in _KEYED}
    for start in range(0, len(ids), 900):  # SQLite's limit on bound parameters
        chunk = ids[start:start + 900]
        for name, sql in _KEYED.items():
            for run_id, key, value in conn.execute(sql.format(ids=", ".join("?" * len(chunk))), chunk):
                keyed[name][run_id][key] = value
    runs = []
    for (run_id, experiment, name, sweep, state, dataset, model, config, summary, device, error, created, started,
         ended, job_id) in rows:
        runs.append(RunInfo(run_id, experiment, name, sweep, state, dataset, model, _json(config), _json(summary),
                            device, error, datetime.fromisoformat(created), _time(started), _time(ended),
                            keyed["params"][run_id], keyed["tags"][run_id], job_id, keyed["metrics"][run_id]))
    return runs, total


def _stored(moment: datetime) -> str:
    """A time as SQLAlchemy's SQLite DateTime stores it (text that sorts as the time does)."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _json(text: str | None) -> dict[str, Any]:
    return (json.loads(text) if text is not None else None) or {}
