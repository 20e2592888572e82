"""Comparing a set of runs: which parameters differ, one colour per run, the keys they share.

Plain data for the Compare page and its charts (dlx/charts_compare.py); no Streamlit here.
"""
from __future__ import annotations

from typing import Any, Sequence

import plotly.colors
from sqlalchemy import select

from db.engine import get_engine
from db.models import RunSummary
from dlx.store import RunInfo, decode_param

PALETTE = plotly.colors.qualitative.Plotly + plotly.colors.qualitative.D3[len(plotly.colors.qualitative.Plotly):]


def run_colors(run_ids: Sequence[int]) -> dict[int, str]:
    """A colour per run by its position in the selection: the same in every chart of a page."""
    return {run_id: PALETTE[i % len(PALETTE)] for i, run_id in enumerate(run_ids)}


def param_table(runs: Sequence[RunInfo]) -> tuple[list[str], dict[str, list[Any]]]:
    """Every parameter's decoded values per run (None where a run lacks it), and the keys whose values
    differ between the runs, which is what a comparison is about."""
    keys = sorted({key for run in runs for key in run.params})
    table = {key: [decode_param(run.params[key]) if key in run.params else None for run in runs] for key in keys}
    differing = [key for key, values in table.items() if len({repr(v) for v in values}) > 1]
    return differing, table


def shared_metric_keys(run_ids: Sequence[int], url: str | None = None) -> list[str]:
    """Metric keys logged by any of the runs (from their summary rows: no history read), most common first."""
    if not run_ids:
        return []
    table = RunSummary.__table__
    counts: dict[str, int] = {}
    with get_engine(url).connect() as conn:
        for key in conn.scalars(select(table.c.key).where(table.c.run_id.in_(list(run_ids)))):
            counts[key] = counts.get(key, 0) + 1
    return sorted(counts, key=lambda k: (-counts[k], k))


def numeric(values: Sequence[Any]) -> bool:
    """Whether a parameter's values can sit on a numeric axis (bools and text cannot)."""
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
