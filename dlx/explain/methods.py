"""The one registry of attribution methods: an entry per method, with how it runs on each kind of data.

An entry (`Method`) holds one `Way` per kind it takes: image and table share a way (Captum on input
tensors, dlx.explain.image.methods), text has its own (word pieces, dlx.explain.text.methods); each
way declares its parameters once and the pages draw their widgets from them.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from dlx.data.registry import Kind
from dlx.errors import DlxError
from dlx.explain.image.layers import conv_layers


@dataclass(frozen=True)
class Param:
    """One parameter of a method, described well enough for the page to draw its widget."""

    name: str
    default: int | float | str | bool
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()

    def coerce(self, method: str, value: Any) -> int | float | str | bool:
        """Check a value against the declaration; a DlxError names the method and parameter."""
        where = f"{method}.{self.name}"
        kind = type(self.default)
        try:
            if kind is bool:
                if not isinstance(value, (bool, int)):
                    raise ValueError
                value = bool(value)
            elif kind is int:
                if isinstance(value, float) and not value.is_integer():
                    raise ValueError
                value = int(value)
            elif kind is float:
                value = float(value)
            else:
                value = str(value)
        except (TypeError, ValueError):
            raise DlxError(f"{where}: expected a {kind.__name__}, got {value!r}", field=where) from None
        if self.choices and value not in self.choices:
            raise DlxError(f"{where}: {value!r} is not one of {list(self.choices)}", field=where)
        if self.low is not None and value < self.low or self.high is not None and value > self.high:
            raise DlxError(f"{where}: {value} is outside [{self.low}, {self.high}]", field=where)
        return value


# run(model, inputs, target, baseline, params) -> (attributions, convergence delta or None); the inputs
# are a batch of tensors (image, table) or one encoded sentence (text), the baseline of the same form.
Runner = Callable[[nn.Module, Any, Any, Any, dict[str, Any]], tuple[Tensor, Tensor | None]]


@dataclass(frozen=True)
class Way:
    """How a method runs on one kind of data: its runner, its parameters and what its values mean."""

    method: str
    description: str
    run: Runner
    params: tuple[Param, ...] = ()
    uses_baseline: bool = False
    needs_conv: bool = False
    needs_attention: bool = False  # only for a ViT (a model with `.attentions`): rollout, [CLS] attention
    signed: Callable[[dict[str, Any]], bool] = lambda params: True

    def resolve(self, params: dict[str, Any]) -> dict[str, Any]:
        return resolve_params(self.method, self.params, params)


@dataclass(frozen=True)
class Method:
    """One attribution method: its name and label, and how it runs on each kind of data it takes."""

    name: str
    label: str
    ways: dict[Kind, Way] = field(default_factory=dict)

    @property
    def kinds(self) -> tuple[Kind, ...]:
        return tuple(self.ways)

    @property
    def on_tensors(self) -> Way:
        """Its way on input tensors: images' or tables' (one and the same where it takes both)."""
        way = self.ways.get("image") or self.ways.get("table")
        if way is None:
            raise DlxError(f"method: {self.name} explains {' and '.join(self.kinds)} only, not images or tables; "
                           f"choose one of {sorted({*methods_for('image'), *methods_for('table')})}", field="method")
        return way


def resolve_params(method: str, declared: tuple[Param, ...], given: dict[str, Any]) -> dict[str, Any]:
    """A method's parameters with defaults filled in and every value checked; unknown names are refused."""
    known = {p.name: p for p in declared}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise DlxError(f"{method}: unknown parameter(s) {unknown}; it takes {sorted(known)}",
                       field=f"{method}.{unknown[0]}")
    return {name: p.coerce(method, given.get(name, p.default)) for name, p in known.items()}


METHODS: dict[str, Method] = {}
_LISTED: dict[Kind, list[str]] = {}  # per kind, its methods in the order they were registered for it


def register_method(name: str, label: str, kinds: tuple[Kind, ...], description: str, *,
                    params: tuple[Param, ...] = (), uses_baseline: bool = False,
                    needs_conv: bool = False, needs_attention: bool = False,
                    signed: Callable[[dict[str, Any]], bool] = lambda params: True
                    ) -> Callable[[Runner], Runner]:
    """Add the decorated runner as the way `name` runs on `kinds` (the entry is made on its first way)."""
    def decorate(run: Runner) -> Runner:
        entry = METHODS.setdefault(name, Method(name, label))
        if entry.label != label or set(kinds) & set(entry.ways):
            raise ValueError(f"method {name!r}: registered twice for a kind, or under two labels")
        way = Way(name, description, run, params, uses_baseline, needs_conv, needs_attention, signed)
        for kind in kinds:
            entry.ways[kind] = way
            _LISTED.setdefault(kind, []).append(name)
        return run

    return decorate


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise DlxError(f"method: unknown attribution method {name!r}; choose one of {sorted(METHODS)}",
                       field="method")
    return METHODS[name]


def get_way(name: str, kind: Kind) -> Way:
    """How `name` runs on `kind`; a DlxError lists the methods for that kind when it does not."""
    entry = METHODS.get(name)
    if entry is None or kind not in entry.ways:
        raise DlxError(f"method: unknown {kind} attribution method {name!r}; choose one of "
                       f"{sorted(methods_for(kind))}", field="method")
    return entry.ways[kind]


def methods_for(kind: Kind) -> list[str]:
    """The methods that take this kind of data, in the order they were registered for it."""
    return list(_LISTED.get(kind, []))


def available_methods(model: nn.Module, kind: Kind) -> list[str]:
    """The methods that apply to this model and kind of data (Grad-CAM needs a conv layer,
    attention rollout a vision transformer)."""
    has_conv = bool(conv_layers(model))
    attends = has_attentions(model)
    return [name for name in methods_for(kind) if (has_conv or not METHODS[name].ways[kind].needs_conv)
            and (attends or not METHODS[name].ways[kind].needs_attention)]


def has_attentions(model: nn.Module) -> bool:
    """A ViT (dlx.models.vit) hands out its per-layer attention; only then do the attention methods apply."""
    return callable(getattr(model, "attentions", None))
