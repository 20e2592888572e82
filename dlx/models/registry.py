"""The model registry: a name maps to a builder(meta, **options) -> nn.Module."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from dlx.data.registry import DatasetMeta, Kind
from dlx.errors import DlxError

Builder = Callable[..., nn.Module]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kinds: tuple[Kind, ...]  # the data set kinds this model accepts
    description: str
    builder: Builder


MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, kinds: tuple[Kind, ...], description: str) -> Callable[[Builder], Builder]:
    def decorate(builder: Builder) -> Builder:
        MODELS[name] = ModelEntry(name, kinds, description, builder)
        return builder

    return decorate


def check_model_fits(model: str, kind: Kind) -> None:
    """Raise a DlxError naming the field when a model cannot take this kind of data."""
    if model not in MODELS:
        raise DlxError(f"model: unknown model {model!r}; choose one of {sorted(MODELS)}", field="model")
    if kind not in MODELS[model].kinds:
        fits = sorted(name for name, entry in MODELS.items() if kind in entry.kinds)
        raise DlxError(f"model: {model!r} does not take {kind} data; for {kind} data use one of {fits}",
                       field="model")


def build_model(name: str, meta: DatasetMeta, **options) -> nn.Module:
    check_model_fits(name, meta.kind)
    return MODELS[name].builder(meta, **options)
