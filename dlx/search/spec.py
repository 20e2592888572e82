"""A search's settings (what `dlx search` and the Launch form's Search give), checked before anything is
queued and kept with its study so a restarted driver continues with the same ones."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dlx.errors import DlxError
from dlx.search.space import Dimension, grid_size, parse_space

SAMPLERS = ("tpe", "random", "grid", "cmaes")  # the form and the CLI list these
PRUNERS = ("none", "median", "hyperband")
DIRECTIONS = ("maximize", "minimize")
MAX_TRIALS = 1000


class SearchSpec(BaseModel):
    """A search: the base config its trials share, the space, objective(s) and budget."""

    model_config = ConfigDict(extra="forbid")

    base: dict[str, Any]  # a launch config's values: every trial starts from them
    space: dict[str, str]  # parameter -> spec text (dlx.search.space)
    objectives: list[str] = Field(min_length=1, max_length=4)
    directions: list[Literal["maximize", "minimize"]] = Field(min_length=1, max_length=4)
    sampler: Literal["tpe", "random", "grid", "cmaes"] = "tpe"
    pruner: Literal["none", "median", "hyperband"] = "none"
    trials: int | None = Field(None, ge=1, le=MAX_TRIALS)  # None: the grid's size, or no limit with a time budget
    timeout_s: float | None = Field(None, gt=0)
    parallel: int = Field(1, ge=1, le=64)
    seed: int = Field(0, ge=0, le=2**32 - 1)

    @model_validator(mode="after")
    def _consistent(self) -> SearchSpec:
        if len(self.directions) == 1 and len(self.objectives) > 1:
            self.directions = self.directions * len(self.objectives)
        if len(self.directions) != len(self.objectives):
            raise ValueError(f"direction: {len(self.objectives)} objectives need as many directions, "
                             f"got {len(self.directions)}")
        if len(self.objectives) > 1 and self.pruner != "none":
            raise ValueError("pruner: a multi-objective search cannot prune (Optuna reports one value per "
                             "epoch); use --pruner none")
        if len(self.objectives) > 1 and self.sampler == "cmaes":
            raise ValueError("sampler: CMA-ES optimises one objective; use tpe or random for several")
        return self

    def dimensions(self) -> dict[str, Dimension]:
        return parse_space(self.space)

    def budget(self) -> int | None:
        """The trial budget: the one given, else the grid's size for the grid sampler."""
        if self.trials is not None:
            return self.trials
        return grid_size(self.dimensions()) if self.sampler == "grid" else None


def parse_spec(values: dict[str, Any]) -> SearchSpec:
    """Values into a SearchSpec with every check (space, sampler against the space, budget, base config);
    a DlxError names the field or parameter at fault."""
    try:
        spec = SearchSpec(**values)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        field = where.partition(".")[0] or message.partition(":")[0]
        raise DlxError(f"{where}: {message}" if where else message, field=field) from None
    dimensions = spec.dimensions()
    if spec.sampler == "grid":
        for dimension in dimensions.values():
            dimension.grid()  # ranges have no grid: named here
    if spec.sampler == "cmaes":
        loose = [d.name for d in dimensions.values() if not d.numeric]
        if loose:
            raise DlxError(f"{loose[0]}: CMA-ES needs every parameter numeric; {loose[0]} is a choice "
                           "(use tpe or random)", field=loose[0])
    if spec.budget() is None and spec.timeout_s is None:
        raise DlxError("trials: a search needs a trial budget or a time budget", field="trials")
    for objective in spec.objectives:
        if not objective.strip():
            raise DlxError("objective: name a metric the runs log, e.g. val_acc", field="objective")
    return spec
