"""The hook a search trial's training calls after each epoch: report the objective to the trial, and say
whether Optuna's pruner would stop it (the loop then ends the run `pruned`, keeping what it logged)."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dlx.search import study as studies

if TYPE_CHECKING:
    from dlx.store import Store

EpochHook = Callable[[int, dict[str, float]], str | None]  # (epoch, its metrics) -> why to stop, or None


def epoch_hook(store: Store, name: str, number: int) -> EpochHook | None:
    """The hook for trial `number` of study `name`; None when its objective is not an epoch metric (the
    pruner then has nothing to judge) or the search prunes nothing."""
    # optuna: imported by a trial's job process, not the server
    import optuna

    study, spec = studies.load(store, name)
    if spec.pruner == "none" or len(spec.objectives) != 1:
        return None
    key = spec.objectives[0]
    trial_id = next(t._trial_id for t in study.get_trials(deepcopy=False) if t.number == number)
    trial = optuna.trial.Trial(study, trial_id)

    def report(epoch: int, metrics: dict[str, float]) -> str | None:
        if key not in metrics:
            return None
        trial.report(float(metrics[key]), epoch)
        if trial.should_prune():
            return f"pruned after epoch {epoch} by the {spec.pruner} pruner ({key} {metrics[key]:.4g})"
        return None

    return report
