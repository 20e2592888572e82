"""Per-run final metrics (value at the last step, min, max), kept up to date as points are written.

The tracking flush calls `update_summaries` in the transaction that inserts the points, so the
summary rows never disagree with the history; tables and filters over many runs read only them.
"""
from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import Connection, case, insert, update

from db.models import RunSummary

_table = RunSummary.__table__


def batch_summaries(rows: Sequence[tuple]) -> dict[str, dict[str, Any]]:
    """Per key of (run_id, key, step, value, time) rows: last step and its value (the later row where
    a step repeats), min and max with NaN left out (None where every value was NaN).

    On the flush path, so the work per point is list building and C builtins, not Python branches.
    """
    by_key: dict[str, list[tuple]] = {}
    for row in rows:
        group = by_key.get(row[1])
        if group is None:
            by_key[row[1]] = group = []
        group.append(row)
    out: dict[str, dict[str, Any]] = {}
    for key, group in by_key.items():
        steps = [row[2] for row in group]
        last_step = max(steps)
        last = group[len(steps) - 1 - steps[::-1].index(last_step)][3]
        finite = [row[3] for row in group if row[3] == row[3]]  # NaN is the one value unequal to itself
        out[key] = {"step": last_step, "last": None if last != last else last,
                    "min": min(finite) if finite else None, "max": max(finite) if finite else None}
    return out


def update_summaries(conn: Connection, run_id: int, rows: list[tuple]) -> None:
    """Merge a batch of points into the run's summary rows: an UPDATE per key, an INSERT for new keys.

    Portable SQL (no dialect upsert); the merge is done by the UPDATE itself, so a concurrent
    writer of the same run cannot lose the other's min, max or last.
    """
    for key, new in batch_summaries(rows).items():
        values: dict[str, Any] = {
            "last": case((_table.c.step <= new["step"], new["last"]), else_=_table.c.last),
            "step": case((_table.c.step <= new["step"], new["step"]), else_=_table.c.step),
        }
        if new["min"] is not None:
            values["min"] = case((_table.c.min.is_(None) | (_table.c.min > new["min"]), new["min"]),
                                 else_=_table.c.min)
            values["max"] = case((_table.c.max.is_(None) | (_table.c.max < new["max"]), new["max"]),
                                 else_=_table.c.max)
        updated = conn.execute(update(_table).where(_table.c.run_id == run_id, _table.c.key == key)
                               .values(**values))
        if updated.rowcount == 0:
            conn.execute(insert(_table).values(run_id=run_id, key=key, **new))
