"""A search space: one spec per parameter, parsed and checked before anything is queued.

Specs: `1e-3,3e-3` (these values, a grid), `float:LOW:HIGH`, `log:LOW:HIGH` (sampled on a log scale),
`int:LOW:HIGH` (both ends included), `choice:a,b,c` (any values, unordered). A parameter is a RunConfig
field or `model_options.NAME`; every message names it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dlx.config import RunConfig, coerce_value
from dlx.errors import DlxError

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

KINDS = ("float", "log", "int", "choice")
FIXED = {"dataset", "model", "experiment", "name", "sweep", "device", "download"}  # what a search cannot vary


@dataclass(frozen=True)
class Dimension:
    """One parameter's range: `kind` is values, float, log, int or choice."""

    name: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    values: tuple[Any, ...] = ()

    @property
    def numeric(self) -> bool:
        return self.kind != "choice" and (self.kind != "values" or all(_number(v) for v in self.values))

    def grid(self) -> list[Any]:
        """The values a grid sampler walks: only lists and choices have them."""
        if self.kind not in ("values", "choice"):
            raise DlxError(f"{self.name}: the grid sampler needs a list of values (e.g. {self.name}=1e-3,3e-3), "
                           f"not a {self.kind} range; use tpe or random for ranges", field=self.name)
        return list(self.values)

    def distribution(self) -> BaseDistribution:
        # optuna: imported by the processes that search, not the server
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high))
        if self.kind in ("float", "log"):
            return FloatDistribution(self.low, self.high, log=self.kind == "log")
        return CategoricalDistribution(self.values)

    def size(self) -> int | None:
        """How many distinct values it has (None: a continuous range)."""
        if self.kind == "int":
            return int(self.high - self.low) + 1
        return len(self.values) if self.kind in ("values", "choice") else None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_dimension(name: str, spec: str) -> Dimension:
    """One parameter's spec, checked; a DlxError naming the parameter says what is wrong and how to write it."""
    name = name.strip()
    _check_name(name)
    text = spec.strip()
    kind, colon, rest = text.partition(":")
    if colon and kind in KINDS:
        if kind == "choice":
            values = tuple(coerce_value(v) for v in rest.split(",") if v.strip())
            if not values:
                raise DlxError(f"{name}: choice: needs at least one value, e.g. {name}=choice:adam,sgd", field=name)
            return _distinct(Dimension(name, "choice", values=values))
        low_text, colon2, high_text = rest.partition(":")
        if not colon2:
            raise DlxError(f"{name}: {text!r} needs two bounds, {kind}:LOW:HIGH", field=name)
        low, high = _bound(name, kind, low_text), _bound(name, kind, high_text)
        if not low < high:
            raise DlxError(f"{name}: {kind}:{low_text}:{high_text}: LOW must be below HIGH", field=name)
        if kind == "log" and low <= 0:
            raise DlxError(f"{name}: log:{low_text}:{high_text}: a log range needs LOW above 0", field=name)
        return Dimension(name, kind, low, high)
    if colon and not _number(coerce_value(kind)):
        raise DlxError(f"{name}: unknown spec kind {kind!r}; write values (1e-3,3e-3), float:LOW:HIGH, "
                       "log:LOW:HIGH, int:LOW:HIGH or choice:a,b,c", field=name)
    values = tuple(coerce_value(v) for v in text.split(",") if v.strip())
    if not values:
        raise DlxError(f"{name}: no values; write values (1e-3,3e-3), float:LOW:HIGH, log:LOW:HIGH, "
                       "int:LOW:HIGH or choice:a,b,c", field=name)
    return _distinct(Dimension(name, "values", values=values))


def _distinct(dimension: Dimension) -> Dimension:
    if len(set(map(repr, dimension.values))) != len(dimension.values):
        raise DlxError(f"{dimension.name}: a value is listed twice", field=dimension.name)
    return dimension


def _bound(name: str, kind: str, text: str) -> float:
    try:
        value = int(text) if kind == "int" else float(text)
    except ValueError:
        wanted = "a whole number" if kind == "int" else "a number"
        raise DlxError(f"{name}: {kind} bound {text.strip()!r} is not {wanted}", field=name) from None
    if not math.isfinite(value):
        raise DlxError(f"{name}: {kind} bound {text.strip()!r} must be finite", field=name)
    return value


def _check_name(name: str) -> None:
    field = name.partition(".")[0]
    if name.startswith("model_options.") and name.partition(".")[2]:
        return
    if field not in RunConfig.model_fields or field == "model_options":
        raise DlxError(f"{name}: not a run setting a search can vary; use a config field (lr, batch_size, "
                       "epochs, ...) or model_options.NAME", field=name or "param")
    if field in FIXED:
        raise DlxError(f"{name}: a search varies training settings, not the {field}; choose it once",
                       field=name)


def parse_space(specs: dict[str, str]) -> dict[str, Dimension]:
    """Every parameter's spec, checked; at least one."""
    if not specs:
        raise DlxError("param: a search needs at least one parameter to vary, e.g. lr=log:1e-4:1e-1", field="param")
    return {name.strip(): parse_dimension(name, spec) for name, spec in specs.items()}


def apply(base: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Config values with a trial's parameters set (`model_options.NAME` inside the options)."""
    values = {**base, "model_options": dict(base.get("model_options") or {})}
    for name, value in params.items():
        if name.startswith("model_options."):
            values["model_options"][name.partition(".")[2]] = value
        else:
            values[name] = value
    return values


def grid_size(space: dict[str, Dimension]) -> int | None:
    """The number of combinations, or None when a range is continuous."""
    total = 1
    for dimension in space.values():
        size = dimension.size()
        if size is None:
            return None
        total *= size
    return total
