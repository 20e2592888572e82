"""RunConfig: everything that defines a training run, and its plain checks (the checks against the data set
and model registries are the launch's: dlx.training.fits)."""
from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dlx.errors import DlxError

MAX_SEED = 2**32 - 1  # scikit-learn's splitter takes seeds up to here (torch's up to 2**64 - 1)


class RunConfig(BaseModel):
    """A run's full configuration; defaults (Adam 3e-3, one-cycle, batch 32) learn digits to about
    0.97 in three CPU epochs."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    dataset: str = "digits"
    model: str = "cnn"
    model_options: dict[str, Any] = Field(default_factory=dict)
    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(3e-3, gt=0, le=10, allow_inf_nan=False)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0, le=1)
    schedule: Literal["constant", "cosine", "onecycle"] = "onecycle"
    epochs: int = Field(3, ge=1, le=10_000)
    batch_size: int = Field(32, ge=1, le=65_536)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    grad_clip: float | None = Field(None, gt=0)
    early_stopping_patience: int | None = Field(None, ge=1)
    early_stopping_metric: Literal["val_loss", "val_acc"] = "val_loss"
    device: str = "auto"
    amp: bool = True  # bf16 autocast, only ever used on CUDA
    val_fraction: float = Field(0.15, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5)
    download: bool = False
    label_permutation: bool = False  # train on a seeded permutation of the training labels (a sanity check)
    # A seeded fraction of the training labels flipped to another class (a known answer for influence).
    label_noise: float = Field(0.0, ge=0, lt=1, allow_inf_nan=False)
    experiment: str = Field("default", min_length=1, max_length=200)
    name: str | None = Field(None, max_length=200)
    sweep: str | None = Field(None, max_length=200)
    # Checkpoints over training: one every N epochs (and the final epoch's); 0 keeps only best and last.
    checkpoint_every: int = Field(0, ge=0, le=10_000)
    keep_checkpoints: int = Field(10, ge=0, le=10_000)  # at most this many, oldest thinned first; 0: all

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
            raise ValueError("must be auto, cpu, cuda or cuda:N")
        return value


def parse_config(values: dict[str, Any]) -> RunConfig:
    """Validate values into a RunConfig, turning pydantic's errors into one DlxError naming each field."""
    try:
        return RunConfig(**values)
    except ValidationError as err:
        problems = []
        for e in err.errors():
            where = ".".join(str(p) for p in e["loc"])
            message = e["msg"].removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        first = err.errors()[0]["loc"]
        # Whole-config checks have no location; their messages start with the field they blame.
        field = str(first[0]) if first else problems[0].partition(":")[0].partition(".")[0]
        raise DlxError("; ".join(problems), field=field) from None


def parse_run_id(text: str) -> int:
    """A run number typed by a person (a URL's `?run=`): ASCII digits only, in the database's range.

    str.isdigit() also accepts "٣" and "²", which int() then reads or rejects unpredictably.
    """
    text = text.strip()
    if not re.fullmatch(r"[0-9]{1,18}", text):
        raise DlxError(f"run: {text[:40]!r} is not a run number; use digits 0-9, e.g. ?run=3", field="run")
    return int(text)


def coerce_value(text: str) -> Any:
    """Read a command-line or form value: numbers, booleans and none become Python values."""
    lowered = text.strip().lower()
    if lowered in {"true", "false"}:
        return lowered == "true"
    if lowered in {"none", "null", ""}:
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def expand_sweep(base: dict[str, Any], grid: dict[str, list[Any]],
                 parse: Callable[[dict[str, Any]], RunConfig] = parse_config) -> list[RunConfig]:
    """One config per combination of the grid's values (the cartesian product), each validated by `parse`
    in turn (the launch's also checks it against the registries)."""
    if not grid:
        return [parse(base)]
    keys = list(grid)
    for key in keys:
        if not grid[key]:
            raise DlxError(f"{key}: a sweep needs at least one value", field=key)
    return [parse({**base, **dict(zip(keys, combo))})
            for combo in itertools.product(*(grid[k] for k in keys))]
