"""The workers table: each live worker's heartbeat and what it offers (slots, GPUs, executor, running jobs).

`Workers` is the store's collaborator for them (`store.workers`), bound to the same engine. A worker
writes its row every heartbeat and deletes it when it stops; the app, the launch check and `dlx worker
--stop` read the rows.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from db.models import Worker, utcnow

FRESH = timedelta(seconds=10)  # a worker heartbeats every 2 s


class Sessions(Protocol):
    """What the workers' table uses of its store (a `dlx.store.Store`)."""

    def session(self) -> Session: ...


class Workers:
    """Worker rows of one store (`store.workers`)."""

    def __init__(self, store: Sessions) -> None:
        self.store = store

    def alive(self) -> list[Worker]:
        """The workers that heartbeat within `FRESH`."""
        with self.store.session() as s:
            return list(s.scalars(select(Worker).where(Worker.heartbeat_at > utcnow() - FRESH)))

    def ids(self) -> list[str]:
        """Every worker row's id (`host:pid`), alive or not."""
        with self.store.session() as s:
            return [row.id for row in s.scalars(select(Worker))]

    def beat(self, worker_id: str, info: dict[str, Any]) -> None:
        """Write this worker's heartbeat and what it offers now (its row made on the first beat)."""
        with self.store.session() as s, s.begin():
            row = s.get(Worker, worker_id) or Worker(id=worker_id)
            row.heartbeat_at, row.info = utcnow(), info
            s.add(row)

    def remove(self, worker_id: str) -> None:
        """Delete this worker's row (it stopped)."""
        with self.store.session() as s, s.begin():
            s.execute(delete(Worker).where(Worker.id == worker_id))
