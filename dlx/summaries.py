"""What the tracking flush keeps beside the points: per run and key the final value (at the last step),
min and max; per block of 50 steps the same, for charts of long histories.

`update_summaries` runs in the transaction that inserts the points, so neither ever disagrees with
the history; tables and filters over many runs read the run summaries, reduced charts the blocks.
"""
from __future__ import annotations

from typing import Any, Sequence

from sqlalchemy import Connection, bindparam, case, insert, select, update

from db.models import BLOCK_STEPS, MetricBlock, RunSummary

_summaries = RunSummary.__table__
_blocks = MetricBlock.__table__


def _merged(group: list[tuple]) -> dict[str, Any]:
    """(run_id, key, step, value, time) rows of one key -> last step, its value (the later row where a
    step repeats; None for NaN), min and max with NaN left out (None where every value was NaN).

    On the flush path, so the work per point is list building and C builtins, not Python branches.
    """
    steps = [row[2] for row in group]
    last_step = max(steps)
    last = group[len(steps) - 1 - steps[::-1].index(last_step)][3]
    finite = [row[3] for row in group if row[3] == row[3]]  # NaN is the one value unequal to itself
    return {"step": last_step, "last": None if last != last else last,
            "min": min(finite) if finite else None, "max": max(finite) if finite else None}


def _grouped(rows: Sequence[tuple], by) -> dict[Any, list[tuple]]:
    groups: dict[Any, list[tuple]] = {}
    for row in rows:
        name = by(row)
        group = groups.get(name)
        if group is None:
            groups[name] = group = []
        group.append(row)
    return groups


def batch_summaries(rows: Sequence[tuple]) -> dict[str, dict[str, Any]]:
    """Per key: the batch's last step and value, min and max (see _merged)."""
    return {key: _merged(group) for key, group in _grouped(rows, lambda row: row[1]).items()}


def update_summaries(conn: Connection, run_id: int, rows: list[tuple]) -> None:
    """Merge a batch of points into the run's summary rows and its metric blocks."""
    _update_run_summaries(conn, run_id, rows)
    _update_blocks(conn, run_id, rows)


def _update_run_summaries(conn: Connection, run_id: int, rows: list[tuple]) -> None:
    """An UPDATE per key, an INSERT for new keys. Portable SQL (no dialect upsert); the merge is
    done by the UPDATE itself, so a concurrent writer of the same run cannot lose the other's values."""
    t = _summaries
    for key, new in batch_summaries(rows).items():
        values: dict[str, Any] = {"last": case((t.c.step <= new["step"], new["last"]), else_=t.c.last),
                                  "step": case((t.c.step <= new["step"], new["step"]), else_=t.c.step)}
        if new["min"] is not None:
            values["min"] = case((t.c.min.is_(None) | (t.c.min > new["min"]), new["min"]), else_=t.c.min)
            values["max"] = case((t.c.max.is_(None) | (t.c.max < new["max"]), new["max"]), else_=t.c.max)
        updated = conn.execute(update(t).where(t.c.run_id == run_id, t.c.key == key).values(**values))
        if updated.rowcount == 0:
            conn.execute(insert(t).values(run_id=run_id, key=key, **new))


_MERGE_BLOCK = (update(_blocks)
                .where(_blocks.c.run_id == bindparam("r"), _blocks.c.key == bindparam("k"),
                       _blocks.c.block == bindparam("b"))
                .values(last=case((_blocks.c.last_step <= bindparam("s"), bindparam("l")), else_=_blocks.c.last),
                        last_step=case((_blocks.c.last_step <= bindparam("s"), bindparam("s")),
                                       else_=_blocks.c.last_step),
                        min=case((_blocks.c.min.is_(None) | (_blocks.c.min > bindparam("lo")), bindparam("lo")),
                                 else_=_blocks.c.min),
                        max=case((_blocks.c.max.is_(None) | (_blocks.c.max < bindparam("hi")), bindparam("hi")),
                                 else_=_blocks.c.max)))


def _update_blocks(conn: Connection, run_id: int, rows: list[tuple]) -> None:
    """New blocks inserted in one batch, blocks the run already has (a step range continued across
    flushes) merged in one batched UPDATE: a few statements per flush, however many points."""
    merged = {name: _merged(group) for name, group in
              _grouped(rows, lambda row: (row[1], row[2] // BLOCK_STEPS)).items()}
    existing: set[tuple[str, int]] = set()
    for key in {key for key, _ in merged}:
        blocks = [block for k, block in merged if k == key]
        found = conn.scalars(select(_blocks.c.block).where(_blocks.c.run_id == run_id, _blocks.c.key == key,
                                                           _blocks.c.block.between(min(blocks), max(blocks))))
        existing.update((key, block) for block in found)
    new = [{"run_id": run_id, "key": key, "block": block, "last_step": m["step"], "last": m["last"],
            "min": m["min"], "max": m["max"]} for (key, block), m in merged.items() if (key, block) not in existing]
    if new:
        conn.execute(insert(_blocks), new)
    old = [{"r": run_id, "k": key, "b": block, "s": m["step"], "l": m["last"], "lo": m["min"], "hi": m["max"]}
           for (key, block), m in merged.items() if (key, block) in existing]
    if old:
        conn.execute(_MERGE_BLOCK, old)
