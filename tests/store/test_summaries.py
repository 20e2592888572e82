"""The flush's summaries: the fast path (steps in order, no NaN) equals the row-by-row reference."""
from __future__ import annotations

import math
import random

import pytest

from db.models import BLOCK_STEPS
from dlx.store.summaries import _by_key, _merged, _summarised


def _reference(keyed: list[tuple]) -> tuple[dict, dict]:
    blocks: dict[int, list[tuple]] = {}
    for row in keyed:
        blocks.setdefault(row[2] // BLOCK_STEPS, []).append(row)
    return _merged(keyed), {block: _merged(group) for block, group in blocks.items()}


@pytest.mark.parametrize("case", ["in order", "repeated steps", "negative steps", "out of order", "nan", "one"])
def test_summaries_equal_the_row_by_row_reference(case: str):
    rng = random.Random(case)
    steps = sorted(rng.randrange(-200 if case == "negative steps" else 0, 400) for _ in range(500))
    if case == "in order":
        steps = list(range(7, 507))
    if case == "out of order":
        rng.shuffle(steps)
    if case == "one":
        steps = [3]
    values = [rng.uniform(-5, 5) for _ in steps]
    if case == "nan":
        values[::7] = [math.nan] * len(values[::7])
    rows = [(1, "loss", step, value, 0.0) for step, value in zip(steps, values)]
    assert _summarised(rows) == _reference(rows)


def test_rows_grouped_by_key_in_order_with_few_keys_and_many():
    for count in (3, 40):
        rows = [(1, f"k{i % count}", i, float(i), 0.0) for i in range(200)]
        groups = _by_key(rows)
        assert list(groups) == [f"k{i}" for i in range(count)]
        assert all(group == [row for row in rows if row[1] == key] for key, group in groups.items())
