"""Searches as the Launch page and `dlx search` start them, and the study view's content (without Streamlit).

A search starts from the Launch form's values (one config: what the space varies is taken from the space),
so its trials are the runs the form would launch, with the space's values set.
"""
from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dlx.errors import DlxError
from dlx.search import driver
from dlx.search.results import SearchResult, result
from dlx.search.space import grid_size, parse_space
from dlx.search.spec import SearchSpec, parse_spec
from dlx.views import launch

if TYPE_CHECKING:
    from dlx.store import Store



def parse_space_text(text: str) -> dict[str, str]:
    """`NAME=SPEC` items, one per line (or per `--param`), into the space's specs."""
    space: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, spec = line.partition("=")
        if not sep or not name.strip():
            raise DlxError(f"param: {line.strip()!r} is not NAME=SPEC (e.g. lr=log:1e-4:1e-1)", field="param")
        if name.strip() in space:
            raise DlxError(f"{name.strip()}: given twice in the search space", field=name.strip())
        space[name.strip()] = spec.strip()
    return space


def spec_from_form(store: Store, form: dict[str, Any], space: dict[str, str], objectives: str, directions: str,
                   sampler: str = "tpe", pruner: str = "none", trials: int | None = None,
                   timeout_s: float | None = None, parallel: int = 1, name: Any = launch.label) -> SearchSpec:
    """A search over the form's single config: checked (space, sampler, budget, the base config as a launch
    would check it); a DlxError names the field or parameter."""
    parse_space(space)  # a bad spec is named before the base config is checked (which can take a moment)
    varied = {key.partition(".")[0] for key in space}
    fixed = dict(form)
    for key in varied & set(launch.NUMBER_FIELDS):  # the space decides these: the form's value is a placeholder
        fixed[key] = str(fixed.get(key, "1")).replace(";", ",").split(",")[0] or "1"
    for key in varied & set(launch.CHOICE_FIELDS):
        fixed[key] = list(fixed.get(key) or [])[:1]
    planned = launch.plan(store, fixed, name=name)
    if planned.count != 1:
        raise DlxError(f"sweep: a search starts from one config; {planned.describe()} have several values: "
                       "put what varies in the search space", field="sweep")
    base = planned.configs[0].model_dump(exclude={"sweep", "name"})
    return parse_spec({"base": base, "space": space, "objectives": _items(objectives),
                       "directions": _items(directions), "sampler": sampler, "pruner": pruner, "trials": trials,
                       "timeout_s": timeout_s, "parallel": parallel, "seed": base.get("seed", 0)})


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def trial_count(spec: SearchSpec) -> str:
    """What the form shows before launch: how many trials, and why."""
    budget = spec.budget()
    size = grid_size(spec.dimensions())
    parts = [f"{budget} trials" if budget else "trials until the time budget"]
    if spec.timeout_s:
        parts.append(f"at most {spec.timeout_s / 60:g} min")
    if size is not None:
        parts.append(f"of a space of {size} combinations")
    parts.append(f"{spec.parallel} at a time")
    return ", ".join(parts)


def default_name(base: dict[str, Any]) -> str:
    return f"search-{base.get('dataset')}-{base.get('model')}-{datetime.now():%Y%m%d-%H%M%S}"


def launch_search(store: Store, spec: SearchSpec, name: str | None = None) -> tuple[str, int]:
    """Create the study and queue its driver; returns (study name, driver job id)."""
    name = (name or "").strip() or default_name(spec.base)
    if len(name) > 200:
        raise DlxError("name: at most 200 characters", field="name")
    return name, driver.submit(store, name, spec)


def wait(store: Store, name: str, job_id: int, poll: float = 1.0) -> SearchResult:
    """Wait for the search's driver to end (the study's budget spent, its last trial told)."""
    while (job := store.queue.get_job(job_id)) is not None and job.status in ("queued", "running"):
        time.sleep(poll)
    if job is not None and job.status == "failed":
        raise DlxError(f"study: the search's driver failed: {job.error}", field="study")
    return result(store, name)


def stop(store: Store, name: str) -> None:
    driver.stop(store, name)


def extend(store: Store, name: str, more: int) -> int:
    return driver.extend(store, name, more)


def study_names(store: Store) -> list[str]:
    from dlx.search import study  # optuna: only where a page or command shows searches

    return study.names(store)
