"""A run's curves kept between a live page's refreshes, so a refresh costs what is new, not what was logged.

The first read of a key is its history reduced in SQL (`reduced_history`: per bucket of steps, the last
point, min and max); every later refresh reads only the points after the last step read (one index seek
per key that the run's summary rows say has moved) and folds them into the buckets. When the buckets
exceed 2 x BUCKETS their width doubles, so a series stays about a chart's width in points however long
the run: a 100,000-step run's refresh sends about as much as a 1,000-step one's. A spike survives as its
bucket's max. No Streamlit here: the page keeps a `LiveRun` in its session state.

Points rewritten at a step already read (a resumed run re-logging) are not re-read; reopening the page does.
"""
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

from dlx.store import History, Store, points
from dlx.store.reduction import bucketing, reduced_history

LIVE_EVERY = 1.0  # seconds between a live run's refreshes
FIRST_POINT_EVERY = 0.25  # ... while a run launched in the last FIRST_POINT_WINDOW s has drawn no point yet
FIRST_POINT_WINDOW = 120.0
BUCKETS = 400  # about a chart panel's width in pixels (two panels side by side); a series holds up to 2 x BUCKETS buckets
TAIL = 256  # raw points kept per key (with times) for the progress estimate and the headline numbers


def _empty_history() -> History:
    return History(np.array([], dtype=np.int64), np.array([]), np.array([]))


@dataclass
class LiveSeries:
    """One key's buckets so far (bucket b holds steps lo + b*width .. lo + (b+1)*width - 1): per bucket its
    last step and value, min and max (NaN left out), in step order; and the last raw points in `tail`."""

    lo: int = 0
    width: int = 1
    steps: np.ndarray = field(default_factory=lambda: np.array([], dtype=np.int64))
    values: np.ndarray = field(default_factory=lambda: np.array([]))  # each bucket's last value
    low: np.ndarray = field(default_factory=lambda: np.array([]))
    high: np.ndarray = field(default_factory=lambda: np.array([]))
    tail: History = field(default_factory=_empty_history)
    cursor: int = -1  # the largest step read so far; later refreshes read only the steps after it

    def __len__(self) -> int:
        return len(self.steps)

    def add(self, points: History) -> None:
        """Fold new points (step order, after `cursor`) into the buckets; widen them when there are too many."""
        if not len(points):
            return
        if not len(self.steps):
            self.lo = int(points.steps[0])
        self._regroup(np.concatenate([self.steps, points.steps]), np.concatenate([self.values, points.values]),
                      np.concatenate([self.low, points.values]), np.concatenate([self.high, points.values]))
        while len(self.steps) > 2 * BUCKETS:
            self.width *= 2
            self._regroup(self.steps, self.values, self.low, self.high)
        self.tail = History(*(np.concatenate([old, new])[-TAIL:] for old, new in
                              ((self.tail.steps, points.steps), (self.tail.values, points.values),
                               (self.tail.times, points.times))))
        self.cursor = max(self.cursor, int(points.steps[-1]))

    def _regroup(self, steps: np.ndarray, last: np.ndarray, low: np.ndarray, high: np.ndarray) -> None:
        """Merge runs of entries in the same bucket (a bucket's last step lies inside it, so it names it)."""
        ids = _bucket_ids(steps, self.lo, self.width)
        starts = np.concatenate([[0], np.flatnonzero(np.diff(ids)) + 1])
        ends = np.concatenate([starts[1:], [len(ids)]]) - 1
        self.steps, self.values = steps[ends], last[ends]
        self.low, self.high = np.fmin.reduceat(low, starts), np.fmax.reduceat(high, starts)


def _bucket_ids(steps: np.ndarray, lo: int, width: int) -> np.ndarray:
    """(steps - lo) // width, told apart exactly for any int64 steps: `steps - lo` overflows 64 bits
    (lo = -2**63, a step of 2**63 - 1), so it is split as floor(step / width) - floor(lo / width)
    - (step's remainder < lo's), in wrapping uint64 arithmetic; the ids span less than 2**64, so two
    are equal exactly where the true ones are, which is all the merge asks."""
    low_quotient, low_remainder = divmod(lo, width)
    quotient, remainder = np.divmod(steps, np.int64(width))
    return (quotient.view(np.uint64) - np.uint64(low_quotient % 2**64)
            - (remainder < low_remainder).astype(np.uint64))


@dataclass
class LiveRun:
    """Every key of one run of `store`, as drawn so far."""

    store: Store
    run_id: int
    series: dict[str, LiveSeries] = field(default_factory=dict)

    def refresh(self, wanted: Collection[str] | None = None) -> dict[str, History]:
        """Read what the run logged since the last refresh; returns the new points per key (empty when none).

        The run's summary rows (one per key, with its last step) say which keys moved; only those are read,
        and of them only the `wanted` ones (every key when None): a page showing a few charts of a run that
        logged 10,000 names reads those few.
        """
        latest = self.store.latest_metrics(self.run_id)
        new = {}
        with self.store.connect() as conn:
            for key, (last_step, _) in sorted(latest.items()):
                if wanted is not None and key not in wanted:
                    continue
                if key not in self.series:
                    self.series[key] = _first_read(conn, self.run_id, key)
                    new[key] = self.series[key].tail
                elif last_step is not None and last_step > self.series[key].cursor:
                    new[key] = points.points_after(conn, self.run_id, key, self.series[key].cursor)
                    self.series[key].add(new[key])
        return new

    def get(self, key: str) -> LiveSeries:
        return self.series.get(key) or LiveSeries()

    def keys(self) -> list[str]:
        return sorted(key for key, series in self.series.items() if len(series))


def refresh_every(active: bool, drawn_any: bool, age_s: float) -> float | None:
    """Seconds between a run's live refreshes: none once it ended; FIRST_POINT_EVERY while a run launched
    moments ago waits for its first point (the page that launched it draws the point as it lands,
    not up to a second later); LIVE_EVERY otherwise."""
    if not active:
        return None
    return FIRST_POINT_EVERY if not drawn_any and age_s < FIRST_POINT_WINDOW else LIVE_EVERY


def _first_read(conn, run_id: int, key: str) -> LiveSeries:
    """The key's history so far, reduced to BUCKETS buckets in SQL, and its last raw points."""
    first, last = points.step_range(conn, run_id, key)
    if first is None or last is None:  # both or neither: the min and max of the same points
        return LiveSeries()
    lo, _, width, _ = bucketing(int(first), int(last), BUCKETS)
    reduced = reduced_history(conn, [run_id], [key], BUCKETS, (int(first), int(last)))[(run_id, key)]
    if not len(reduced):
        return LiveSeries()
    cursor = int(reduced.steps[-1])
    tail = points.last_points(conn, run_id, key, cursor, TAIL)
    return LiveSeries(lo, width, reduced.steps, reduced.last, reduced.min, reduced.max, tail, cursor)
