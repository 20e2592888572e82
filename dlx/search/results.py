"""What a search holds, as dlx shows it (the CLI's `--json`, the study view): trials with their runs and
states in dlx's terms, the best trial, whether it is still going."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dlx.search import study as studies
from dlx.search.driver import driver_job, trial_run_id, trial_runs
from dlx.search.spec import SearchSpec

if TYPE_CHECKING:
    import optuna

    from dlx.store import Store

# Optuna's trial states in dlx's words (a trial's run says more while it exists: queued or running).
STATES = {"COMPLETE": "succeeded", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "queued"}


@dataclass
class SearchResult:
    name: str
    spec: SearchSpec
    study: optuna.Study
    trials: list[dict[str, Any]]  # {"run", "number", "state", "value"} per trial, by number
    best: dict[str, Any] | None  # {"run", "value", "params"}
    active: bool  # a driver is queued or running
    stopped: bool

    def as_json(self) -> dict[str, Any]:
        return {"study": self.name, "best": self.best, "trials": self.trials}


def result(store: Store, name: str) -> SearchResult:
    study, spec = studies.load(store, name)
    runs = trial_runs(store, name)
    trials = []
    frozen = study.get_trials(deepcopy=False)
    for trial in frozen:
        run = runs.get(trial.number)
        state = STATES[trial.state.name]
        if state == "running" and run is not None:
            state = run.status if run.status in ("queued", "running") else "running"
        trials.append({"run": run.id if run is not None else trial_run_id(trial), "number": trial.number,
                       "state": state, "value": _value(trial.values)})
    return SearchResult(name, spec, study, trials, _best(study, frozen, runs), driver_job(store, name) is not None,
                        bool(study.user_attrs.get(studies.STOPPED_ATTR)))


def _value(values: list[float] | None) -> float | list[float] | None:
    if values is None:
        return None
    return values[0] if len(values) == 1 else list(values)


def _best(study: optuna.Study, frozen: list, runs: dict) -> dict[str, Any] | None:
    """The best finished trial (a multi-objective search: the first of its Pareto front)."""
    from optuna.trial import TrialState

    if not any(t.state == TrialState.COMPLETE for t in frozen):
        return None
    best = study.best_trials[0] if len(study.directions) > 1 else study.best_trial
    run = runs.get(best.number)
    return {"run": run.id if run is not None else trial_run_id(best), "value": _value(best.values),
            "params": dict(best.params)}
