"""What the tracking flush keeps beside the points: per run and key the final value (at the last step),
min and max; per block of 50 steps the same, for charts of long histories.

`update_summaries` runs in the transaction that inserts the points, so neither ever disagrees with
the history; tables and filters over many runs read the run summaries, reduced charts the blocks.
"""
from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, case

from db.models import BLOCK_STEPS, MetricBlock, RunSummary
from dlx.store.bulk import MultiRow

if TYPE_CHECKING:
    from dlx.store import Store

_summaries = RunSummary.__table__
_blocks = MetricBlock.__table__
FEW_KEYS = 8  # keys in a flush up to which rows are grouped by one pass per key (see _by_key)


def _merged(group: Sequence[tuple]) -> dict[str, Any]:
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


def _by_key(rows: Sequence[tuple]) -> dict[str, list[tuple]]:
    """The rows of each metric key, in their order. A flush holds a few keys as a rule: then one list
    comprehension per key (C speed per row); many keys, one dict test per row."""
    keys = dict.fromkeys(map(itemgetter(1), rows))
    if len(keys) <= FEW_KEYS:
        return {key: [row for row in rows if row[1] == key] for key in keys}
    groups: dict[str, list[tuple]] = {}
    for row in rows:
        key = row[1]
        if key in groups:
            groups[key].append(row)
        else:
            groups[key] = [row]
    return groups


def _by_block(keyed: Sequence[tuple]) -> dict[int, list[tuple]]:
    """One key's rows per block of BLOCK_STEPS steps, in their order; a key's rows come in step order
    as a rule, so a block is looked up where the step leaves the current one, not at every row."""
    groups: dict[int, list[tuple]] = {}
    block, group = None, []
    for row in keyed:
        if row[2] // BLOCK_STEPS != block:
            block = row[2] // BLOCK_STEPS
            group = groups.setdefault(block, [])
        group.append(row)
    return groups


def _summarised(keyed: Sequence[tuple]) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    """One key's rows -> its batch summary (see _merged) and its blocks' summaries.

    The usual batch (steps in order, no NaN) is cut into blocks by bisection and each block's
    min/max/last read off a slice in C; any other batch goes row by row through `_merged`.
    """
    steps = [row[2] for row in keyed]
    values = [row[3] for row in keyed]
    if steps != sorted(steps) or any(map(math.isnan, values)):
        return _merged(keyed), {block: _merged(group) for block, group in _by_block(keyed).items()}
    blocks: dict[int, dict[str, Any]] = {}
    start = 0
    while start < len(steps):
        block = steps[start] // BLOCK_STEPS
        end = bisect_left(steps, (block + 1) * BLOCK_STEPS, start)
        part = values[start:end]  # in step order: a repeated step's later row is the later one
        blocks[block] = {"step": steps[end - 1], "last": part[-1], "min": min(part), "max": max(part)}
        start = end
    whole = {"step": steps[-1], "last": values[-1], "min": min(b["min"] for b in blocks.values()),
             "max": max(b["max"] for b in blocks.values())}
    return whole, blocks


def update_summaries(store: Store, conn: Connection, run_id: int, rows: list[tuple]) -> None:
    """Merge a batch of points into the run's summary rows and its metric blocks (on `conn`, a
    transaction of `store`, which builds the dialect's upsert); each key's rows are summarised once."""
    summaries: list[dict[str, Any]] = []
    blocks: list[dict[str, Any]] = []
    for key, keyed in _by_key(rows).items():
        whole, parts = _summarised(keyed)
        summaries.append({"run_id": run_id, "key": key, **whole})
        blocks.extend({"run_id": run_id, "key": key, "block": block, "last_step": m["step"], "last": m["last"],
                       "min": m["min"], "max": m["max"]} for block, m in parts.items())
    _upsert(store, conn, _summaries, ["run_id", "key"], "step", summaries)
    _upsert(store, conn, _blocks, ["run_id", "key", "block"], "last_step", blocks)


def _kept(new, current, better):
    """`new` where it is better than `current` (or current is NULL), else `current`; NULL new keeps current."""
    return case((new.is_(None), current), (current.is_(None) | better, new), else_=current)


def _merge_set(table, excluded, step: str) -> dict[str, Any]:
    """The ON CONFLICT merge of a stored row with the incoming one: the later step's last value,
    the lower min, the higher max. Computed by the database from the stored row itself, so two
    writers of the same run never lose each other's values."""
    later = table.c[step] <= excluded[step]
    return {"last": case((later, excluded.last), else_=table.c.last),
            step: case((later, excluded[step]), else_=table.c[step]),
            "min": _kept(excluded.min, table.c.min, table.c.min > excluded.min),
            "max": _kept(excluded.max, table.c.max, table.c.max < excluded.max)}


def _upsert(store: Store, conn: Connection, table, keys: list[str], step: str, rows: list[dict[str, Any]]) -> None:
    """Insert-or-merge in one statement per row (batched by the driver), in key order so that
    two transactions touching the same rows lock them in the same order (no deadlock on PostgreSQL)."""
    if not rows:
        return
    statement = store.merging_upsert(table, keys, lambda upsert: _merge_set(table, upsert.excluded, step))
    rows = sorted(rows, key=lambda row: tuple(row[k] for k in keys))
    if store.dialect != "sqlite":
        conn.execute(statement, rows)
        return
    multi_row, names = _sqlite_statement(conn, table, statement, list(rows[0]))
    multi_row.execute(conn, [tuple(row[name] for name in names) for row in rows])


_sqlite_statements: dict[str, tuple[MultiRow, list[str]]] = {}


def _sqlite_statement(conn: Connection, table, statement, columns: list[str]) -> tuple[MultiRow, list[str]]:
    """`statement` as SQLite SQL run many rows at a time (dlx.store.bulk), and its parameters' order."""
    found = _sqlite_statements.get(table.name)
    if found is None:
        found = _sqlite_statements[table.name] = MultiRow.compiled(statement, conn.dialect, columns)
    return found
