"""A search's figures: Optuna's own Plotly figures (optuna.visualization) for its study, with dlx's words
and colours: history with the best so far, fANOVA importances, parallel coordinates, slices, contours,
intermediate values with pruned trials marked, and the Pareto front of a multi-objective search."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dlx.views.charts.style import STATUS_COLORS

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from dlx.search.results import SearchResult

MIN_TRIALS = 2  # finished trials before importances, slices and contours mean anything


def figures(found: SearchResult) -> list[tuple[str, go.Figure | str]]:
    """(title, figure) per chart, or (title, why it is not drawn yet)."""
    # optuna: imported where a search is shown, not by every page
    import optuna.visualization as plots
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.trial import TrialState

    study, spec = found.study, found.spec
    done = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    params = list(spec.space)
    targets: list[tuple[str, Callable[[Any], float] | None]] = [(spec.objectives[0], None)]
    if len(spec.objectives) > 1:
        targets = [(key, _nth(i)) for i, key in enumerate(spec.objectives)]
    wait = f"drawn once {MIN_TRIALS} trials have finished ({len(done)} so far)"
    charts: list[tuple[str, go.Figure | str]] = []
    if len(spec.objectives) > 1:
        charts.append(("Pareto front", _named(plots.plot_pareto_front(study, target_names=spec.objectives))
                       if done else wait))
    for name, target in targets:
        suffix = f" of {name}" if len(targets) > 1 else ""
        charts.append((f"Optimisation history{suffix}",
                       _named(plots.plot_optimization_history(study, target=target, target_name=name))
                       if done else wait))
    enough = len(done) >= MIN_TRIALS
    name, target = targets[0]
    charts.append(("Parameter importance (fANOVA)", _named(plots.plot_param_importances(
        study, evaluator=FanovaImportanceEvaluator(seed=0), target=target, target_name=name)) if enough else wait))
    charts.append(("Parallel coordinates", _named(plots.plot_parallel_coordinate(
        study, params=params, target=target, target_name=name)) if enough else wait))
    charts.append(("Slices", _named(plots.plot_slice(study, params=params, target=target, target_name=name))
                   if enough else wait))
    if len(params) > 1:
        charts.append(("Contour", _named(plots.plot_contour(study, params=params[:2], target=target,
                                                            target_name=name)) if enough else wait))
    if len(spec.objectives) == 1:
        reported = any(t.intermediate_values for t in study.get_trials(deepcopy=False))
        charts.append(("Intermediate values per epoch", intermediate(found) if reported
                       else "drawn once a trial has reported an epoch"))
    return charts


def _nth(index: int) -> Callable[[Any], float]:
    """A multi-objective trial's `index`-th value: what one-objective figures plot of it."""
    return lambda trial: trial.values[index]


def intermediate(found: SearchResult) -> go.Figure:
    """Each trial's objective per epoch; pruned trials dashed in the pruned colour, ended where they stopped."""
    import optuna.visualization as plots

    figure = plots.plot_intermediate_values(found.study)
    states = {f"Trial{t['number']}": t["state"] for t in found.trials}
    for trace in figure.data:
        state = states.get(trace.name or "")
        if state == "pruned":
            trace.update(line={"dash": "dash", "color": STATUS_COLORS["pruned"]}, name=f"{trace.name} (pruned)")
    figure.update_layout(xaxis_title="epoch", yaxis_title=found.spec.objectives[0])
    return _named(figure)


def _named(figure: go.Figure) -> go.Figure:
    """Optuna's titles out (the page heads each chart), a height that fits beside the others."""
    figure.update_layout(title=None, height=380, margin={"t": 30, "b": 40, "l": 50, "r": 20})
    return figure
