"""Export a selection of runs (fields, parameters, final metrics, full histories) as JSON or CSV, and read it back.

Both formats hold the same thing and read back to equal values: floats are written with repr
(exact), NaN as null (JSON has none) or an empty cell. In CSV a text parameter is written as itself
(`digits`), other parameters as their JSON text (`0.01`, `[32, 64]`); text that would read as JSON
(`"1"`, `true`) keeps its JSON quotes, so a string "1" stays a string. CSV is one long table: run_id, section (run, param, final, history),
key, step, value, time; text a spreadsheet would run as a formula is written with a leading `'`
(dlx.data.csv_cells), which reading takes off.
"""
from __future__ import annotations

import io
import json
import math
from typing import Any

from dlx.data import csv_cells
from dlx.store import Store, decode_param

RUN_FIELDS = ("experiment", "name", "sweep", "status", "dataset", "model", "created_at")
CSV_HEADER = ["run_id", "section", "key", "step", "value", "time"]


def selection(store: Store, run_ids: list[int]) -> dict[int, dict[str, Any]]:
    """{run id: {"run": fields, "params": decoded values, "final": last values, "history": {key: columns}}}."""
    runs = {r.id: r for r in store.list_runs(limit=None, ids=run_ids)}
    out: dict[int, dict[str, Any]] = {}
    for run_id in run_ids:
        run = runs.get(run_id)
        if run is None:
            continue
        fields = {name: getattr(run, name) for name in RUN_FIELDS}
        fields["created_at"] = run.created_at.isoformat()
        history = {}
        for key in store.metric_keys(run_id):
            h = store.metric_history(run_id, key)
            history[key] = {"step": h.steps.tolist(), "value": h.values.tolist(), "time": h.times.tolist()}
        out[run_id] = {"run": fields, "params": {k: decode_param(v) for k, v in run.params.items()},
                       "final": {k: _number(v) for k, v in run.metrics.items()}, "history": history}
    return out


def _number(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def to_json(runs: dict[int, dict[str, Any]]) -> str:
    """Strict JSON (no NaN): NaN is null; infinities too, as JSON has no way to write them."""
    plain = {str(run_id): {**run, "final": {k: _finite(v) for k, v in run["final"].items()},
                           "history": {k: {**h, "value": [_finite(v) for v in h["value"]]}
                                       for k, h in run["history"].items()}}
             for run_id, run in runs.items()}
    return json.dumps(plain, allow_nan=False)


def from_json(text: str) -> dict[int, dict[str, Any]]:
    return {int(run_id): {**run, "final": {k: _number(v) for k, v in run["final"].items()},
                          "history": {k: {**h, "value": [_number(v) for v in h["value"]]}
                                      for k, h in run["history"].items()}}
            for run_id, run in json.loads(text).items()}


def to_csv(runs: dict[int, dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv_cells.writer(buffer)
    writer.writerow(CSV_HEADER)
    for run_id, run in runs.items():
        writer.writerows((run_id, "run", k, "", "" if v is None else v, "") for k, v in run["run"].items())
        writer.writerows((run_id, "param", k, "", _param_cell(v), "") for k, v in run["params"].items())
        writer.writerows((run_id, "final", k, "", _cell(v), "") for k, v in run["final"].items())
        for key, h in run["history"].items():
            writer.writerows((run_id, "history", key, step, _cell(value), repr(time))
                             for step, value, time in zip(h["step"], h["value"], h["time"]))
    return buffer.getvalue()


def _param_cell(value: Any) -> str:
    """A parameter's cell: text as itself, unless it would read back as JSON (then, as everything else, JSON)."""
    if isinstance(value, str) and _read_param(value) == value:
        return value
    return json.dumps(value)


def _read_param(cell: str) -> Any:
    """A parameter's cell read back: JSON text as its value, anything else as the text it is."""
    try:
        return json.loads(cell)
    except ValueError:
        return cell


def _cell(value: float) -> str:
    return "" if math.isnan(value) else repr(value)


def from_csv(text: str) -> dict[int, dict[str, Any]]:
    rows = csv_cells.reader(io.StringIO(text))
    if next(rows, None) != CSV_HEADER:
        raise ValueError(f"not a dlx runs export: the first line must be {','.join(CSV_HEADER)}")
    runs: dict[int, dict[str, Any]] = {}
    for run_id, section, key, step, value, time in rows:
        run = runs.setdefault(int(run_id), {"run": {}, "params": {}, "final": {}, "history": {}})
        if section == "run":
            run["run"][key] = value or None
        elif section == "param":
            run["params"][key] = _read_param(value)
        elif section == "final":
            run["final"][key] = float(value) if value else math.nan
        else:
            h = run["history"].setdefault(key, {"step": [], "value": [], "time": []})
            h["step"].append(int(step))
            h["value"].append(float(value) if value else math.nan)
            h["time"].append(float(time))
    return runs
