"""The runs table's rows, without Streamlit: results first, then only the columns that tell runs apart.

A sweep varies its seed, learning rate or optimizer; a column that holds the same value for every
listed run says nothing and costs width, so params appear only where the listed runs differ.
"""
from __future__ import annotations

import json
from datetime import UTC
from numbers import Number
from typing import Any

import pandas as pd

from dlx.store import RunInfo, Store
from dlx.views import progress
from dlx.views.text import shorten

# Config keys shown in their own fixed columns (or not at all), never as a varying param.
OWN_COLUMNS = {"dataset", "model", "name", "sweep", "experiment"}
SHORT_NAMES = {"batch_size": "batch"}
PAGE_ROWS = 50  # beyond this the table pages instead of growing further


def flat_config(config: dict[str, Any]) -> dict[str, Any]:
    """A config one level flat: model_options {'width': 32} becomes 'model_options.width'."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{inner}": v for inner, v in value.items()})
        elif key not in OWN_COLUMNS:
            flat[key] = value
    return flat


def varying_keys(configs: list[dict[str, Any]]) -> list[str]:
    """Config keys with two or more values among the given runs that have them.

    A key only some runs have (a script's own config beside launched runs) is not a difference
    by itself: launched runs that all used Adam show no optimizer column next to a script's run.
    """
    keys = list(dict.fromkeys(key for config in configs for key in config))
    return [key for key in keys
            if len({json.dumps(config[key], sort_keys=True, default=str)
                    for config in configs if key in config}) > 1]


def _column(values: list[Any]) -> list[Any]:
    """Numbers stay numbers (they sort and format); a column of mixed kinds becomes text; text is cut to
    `shorten`'s length (a 10 MB param in a cell froze the page; the run's own page has it whole)."""
    present = [v for v in values if v is not None]
    numeric = all(isinstance(v, Number) and not isinstance(v, bool) for v in present)
    if numeric:
        return values
    if all(isinstance(v, (str, bool)) for v in present):
        return [shorten(v) if isinstance(v, str) else v for v in values]
    return [None if v is None else shorten(v) for v in values]


def _text(value: str | None) -> str | None:
    return None if value is None else shorten(value)


def table_rows(store: Store, runs: list[RunInfo]) -> pd.DataFrame:
    """One row per run: id, status, progress and results, then who it is and what differs.

    Name, experiment, data set, model and sweep appear only where some run has a value (the
    experiment only where it differs), progress only while a run is queued or running; missing
    values stay None, which the page shows blank.
    """
    configs = [flat_config(run.config) for run in runs]
    params = varying_keys(configs)
    rows = []
    for run, config in zip(runs, configs):
        last_step = None
        if run.status == "running":
            last_step = store.latest_metrics(run.id).get("train_loss", (None,))[0]
        rows.append({
            "id": run.id, "status": [run.status], "progress": progress.fraction_done(run, last_step),
            "test acc": run.summary.get("test_acc"), "val acc": run.summary.get("val_acc"),
            "name": _text(run.name), "experiment": _text(run.experiment), "data set": _text(run.dataset),
            "model": _text(run.model),
            **{SHORT_NAMES.get(key, key): config.get(key) for key in params},
            "duration": progress.format_duration(run.duration_s),
            "started": run.started_at and run.started_at.replace(tzinfo=UTC), "sweep": _text(run.sweep),
        })
    frame = pd.DataFrame(rows)
    for name in (SHORT_NAMES.get(key, key) for key in params):
        frame[name] = _column(frame[name].tolist())
    empty = [c for c in ("name", "data set", "model", "sweep") if frame[c].isna().all()]
    if frame["experiment"].nunique() < 2:
        empty.append("experiment")
    if not any(run.status in ("queued", "running") for run in runs):
        empty.append("progress")  # only says something while runs are under way
    return frame.drop(columns=empty)
