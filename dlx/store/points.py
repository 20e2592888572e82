"""Reads of one run's metric series that charts ask for beyond whole histories: its step range, its
points after a step or up to one, the times of some of its steps, and the keys a set of runs logged."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, select

from db.models import Metric, RunSummary
from dlx.store.runs import History, Store, history_of


def summary_keys(store: Store, run_ids: Sequence[int]) -> list[str]:
    """The metric keys of the runs' summary rows (no history read), once per run that logged each."""
    table = RunSummary.__table__
    with store.connect() as conn:
        return list(conn.scalars(select(table.c.key).where(table.c.run_id.in_(list(run_ids)))))


def step_times(store: Store, run_id: int, key: str, steps: Sequence[int]) -> tuple[float | None, dict[int, float]]:
    """The series' first point's time (None: no points), and the times of its points at `steps` (sorted,
    unique): a reduced chart's wall-time axis, read without fetching the whole history."""
    table = Metric.__table__
    times: dict[int, float] = {}
    with store.connect() as conn:
        first = conn.scalar(select(func.min(table.c.time)).where(table.c.run_id == run_id, table.c.key == key))
        for start in range(0, len(steps), 900):  # SQLite's limit on bound parameters
            stmt = select(table.c.step, table.c.time).where(table.c.run_id == run_id, table.c.key == key,
                                                             table.c.step.in_(steps[start:start + 900]))
            times.update(conn.execute(stmt).all())
    return first, times


def step_range(conn: Connection, run_id: int, key: str) -> tuple[int | None, int | None]:
    """The series' first and last step (None, None when it has no points)."""
    m = Metric.__table__
    first, last = conn.execute(select(func.min(m.c.step), func.max(m.c.step))
                               .where(m.c.run_id == run_id, m.c.key == key)).one()
    return first, last


def last_points(conn: Connection, run_id: int, key: str, up_to: int, count: int) -> History:
    """The series' last `count` points at steps up to `up_to`, in step order."""
    m = Metric.__table__
    rows = conn.execute(select(m.c.step, m.c.value, m.c.time)
                        .where(m.c.run_id == run_id, m.c.key == key, m.c.step <= up_to)
                        .order_by(m.c.step.desc(), m.c.id.desc()).limit(count)).all()
    return _history(rows[::-1])


def points_after(conn: Connection, run_id: int, key: str, cursor: int) -> History:
    """The series' points at steps after `cursor`, in step order."""
    m = Metric.__table__
    rows = conn.execute(select(m.c.step, m.c.value, m.c.time)
                        .where(m.c.run_id == run_id, m.c.key == key, m.c.step > cursor)
                        .order_by(m.c.step, m.c.id)).all()
    return _history(rows)


def _history(rows: Sequence[Sequence[Any]]) -> History:
    return history_of([tuple(row) for row in rows])  # plain tuples: numpy probes Row objects by key
