"""Long metric histories reduced in the database: per bucket of steps, min, max and the last point.

A chart asks for as many buckets as it has pixels (and again for the visible range on a zoom), so
a 100,000-step history costs about 1,000 rows, and a spike survives as its bucket's max (W&B's
approach; MLflow samples, and drops spikes). The series' first point is kept too.

Buckets at least a block wide (db.models.BLOCK_STEPS = 50 steps) are made from the metric blocks
the tracking flush keeps (last point, min, max per block): 50x fewer rows than the points. Their
width is then a whole number of blocks and the range is widened to whole blocks. Narrower buckets
(a zoom into a short range) are made from the points themselves, which are few there.
Both are one GROUP BY per series: SQLite groups by sorting, and 20 sorts of 100,000 rows took
less than half the time of one of 2,000,000.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, func, select

from db.models import BLOCK_STEPS, Metric, MetricBlock
from dlx.errors import DlxError
from dlx.states import STEP_MAX, STEP_MIN

if TYPE_CHECKING:
    import numpy as np


@dataclass
class Reduced:
    """One metric of one run per non-empty bucket, in step order: the bucket's last point (step and value;
    where a step repeats, the last written) and its min and max (NaN left out: nan where the bucket holds
    only NaN); and the series' first point in the range (`first_step`, `first`; None when it is empty)."""

    steps: np.ndarray
    last: np.ndarray
    min: np.ndarray
    max: np.ndarray
    first_step: int | None = None
    first: float | None = None

    def __len__(self) -> int:
        return len(self.steps)


def reduced_history(conn: Connection, run_ids: list[int], keys: list[str], buckets: int = 1000,
                    step_range: tuple[int, int] | None = None) -> dict[tuple[int, str], Reduced]:
    """Histories of `keys` for `run_ids`, reduced in SQL to at most `buckets` buckets over `step_range`
    (inclusive; default: from the smallest first step to the largest last step of all the series).

    See `bucketing` for the buckets; they are the same for every series, so they line up on a shared x axis.
    """
    if buckets < 1:
        raise DlxError(f"buckets: must be 1 or more, got {buckets}", field="buckets")
    series = [(run_id, key) for run_id in dict.fromkeys(run_ids) for key in dict.fromkeys(keys)]
    if step_range is None:
        step_range = _step_range(conn, series)
    lo, hi = (min(max(int(step), STEP_MIN), STEP_MAX) for step in step_range) if step_range else (0, -1)
    if hi < lo:
        return {pair: _reduced([], None) for pair in series}
    lo, hi, width, from_blocks = bucketing(lo, hi, buckets)
    stmt = (_block_query if from_blocks else _point_query)(lo, hi, width)
    first = _first_point(max(lo, STEP_MIN), min(hi, STEP_MAX))  # widened to blocks, maybe past 64 bits
    out = {}
    for run_id, key in series:
        where = {"run_id": run_id, "key": key}
        out[(run_id, key)] = _reduced(conn.execute(stmt, where).all(), conn.execute(first, where).first())
    return out


def bucketing(lo: int, hi: int, buckets: int) -> tuple[int, int, int, bool]:
    """(lo, hi, width, from blocks): bucket b holds steps lo + b*width .. lo + (b+1)*width - 1.

    width = ceil((hi - lo + 1) / buckets); where that is a block or more, lo and hi are widened to
    block edges, the width is the fewest whole blocks that cover them in `buckets` buckets, and the
    buckets are made from the blocks. Steps are Python ints: a widened edge may lie past 64 bits.
    """
    width = max(1, -(-(hi - lo + 1) // buckets))
    if width < BLOCK_STEPS:
        return lo, hi, width, False
    lo, hi = lo // BLOCK_STEPS * BLOCK_STEPS, hi // BLOCK_STEPS * BLOCK_STEPS + BLOCK_STEPS - 1
    blocks = (hi - lo + 1) // BLOCK_STEPS
    return lo, hi, -(-blocks // buckets) * BLOCK_STEPS, True


def _point_query(lo: int, hi: int, width: int):
    """A row per non-empty bucket of one series' points (bound :run_id, :key): last step and value, min, max."""
    m = Metric.__table__
    bucket = ((m.c.step - lo) // width).label("bucket")
    groups = (select(bucket, func.max(m.c.step).label("last_step"), func.min(m.c.value).label("low"),
                     func.max(m.c.value).label("high"))
              .where(m.c.run_id == bindparam("run_id"), m.c.key == bindparam("key"), m.c.step.between(lo, hi))
              .group_by(bucket).subquery())
    point = m.alias("point")
    last = (select(point.c.value).where(point.c.run_id == bindparam("run_id"), point.c.key == bindparam("key"),
                                        point.c.step == groups.c.last_step)
            .order_by(point.c.id.desc()).limit(1).scalar_subquery())
    return select(groups.c.last_step, last, groups.c.low, groups.c.high).order_by(groups.c.bucket)


def _block_query(lo: int, hi: int, width: int):
    """The same rows made from one series' blocks: a bucket is `width // BLOCK_STEPS` whole blocks,
    its last step the largest of theirs, its last value the last block's (a primary-key lookup)."""
    b = MetricBlock.__table__
    per_bucket = width // BLOCK_STEPS
    bucket = ((b.c.block - lo // BLOCK_STEPS) // per_bucket).label("bucket")
    groups = (select(bucket, func.max(b.c.block).label("last_block"), func.max(b.c.last_step).label("last_step"),
                     func.min(b.c.min).label("low"), func.max(b.c.max).label("high"))
              .where(b.c.run_id == bindparam("run_id"), b.c.key == bindparam("key"),
                     b.c.block.between(lo // BLOCK_STEPS, hi // BLOCK_STEPS))
              .group_by(bucket).subquery())
    last = b.alias("last_block")
    value = (select(last.c.last).where(last.c.run_id == bindparam("run_id"), last.c.key == bindparam("key"),
                                       last.c.block == groups.c.last_block).scalar_subquery())
    return select(groups.c.last_step, value, groups.c.low, groups.c.high).order_by(groups.c.bucket)


def _first_point(lo: int, hi: int):
    """The series' first point in the range: the step by an index seek, then the first written there
    (ORDER BY step, id would sort the whole range)."""
    m = Metric.__table__
    series = (m.c.run_id == bindparam("run_id"), m.c.key == bindparam("key"))
    first_step = select(func.min(m.c.step)).where(*series, m.c.step.between(lo, hi)).scalar_subquery()
    return select(m.c.step, m.c.value).where(*series, m.c.step == first_step).order_by(m.c.id).limit(1)


def _step_range(conn: Connection, series: list[tuple[int, str]]) -> tuple[int, int] | None:
    """The smallest first step and largest last step of the series: two index seeks per series."""
    m = Metric.__table__
    lows: list[int] = []
    highs: list[int] = []
    for run_id, key in series:
        where = (m.c.run_id == run_id) & (m.c.key == key)
        low = conn.execute(select(func.min(m.c.step)).where(where)).scalar()
        if low is not None:
            lows.append(low)
            highs.append(conn.execute(select(func.max(m.c.step)).where(where)).scalar_one())
    return (min(lows), max(highs)) if lows else None


def _reduced(rows: Sequence[Sequence[Any]], first: Sequence[Any] | None) -> Reduced:
    # Steps exact (never through a float); values as plain tuples: numpy probes Row objects by key,
    # at 100x the cost. None (NaN, or no finite value) -> nan.
    import numpy as np  # only where histories are read: `dlx runs` and the store's writers do without it

    steps = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
    data = np.array([tuple(row)[1:] for row in rows], dtype=np.float64).reshape(-1, 3)
    return Reduced(steps, data[:, 0], data[:, 1], data[:, 2],
                   None if first is None else int(first[0]), None if first is None else _number(first[1]))


def _number(value: float | None) -> float:
    return float("nan") if value is None else float(value)
