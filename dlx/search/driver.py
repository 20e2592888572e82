"""The `search` job kind: drives a study by ask-and-tell on dlx's own queue.

Each step tells Optuna how the trials' runs ended, then asks new trials while fewer than `parallel` run
and the budget (trials, time) allows; each trial is queued as an ordinary train run in the search's sweep,
tagged `study` and `trial`. All state is in the database, so the driver is restartable: a new driver (the
worker re-queues a driver whose worker died) first reconciles the study's RUNNING trials with their runs,
queueing the run of a trial asked but never queued, instead of asking new ones.
"""
from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from dlx.errors import DlxError
from dlx.jobs.kinds import register_job_kind
from dlx.search import study as studies
from dlx.search.space import apply
from dlx.search.spec import SearchSpec
from dlx.states import ACTIVE_STATES
from dlx.training.fits import launch_config

if TYPE_CHECKING:
    import optuna

    from db.models import Job
    from dlx.store import RunInfo, Store

POLL = 0.5  # seconds between a driver's steps
STUDY_TAG, TRIAL_TAG = "study", "trial"


def trial_runs(store: Store, name: str) -> dict[int, RunInfo]:
    """The search's runs by trial number (the latest run of a number, should a user re-run one)."""
    runs = store.list_runs(sweep=name, limit=None, tag=STUDY_TAG)
    found: dict[int, RunInfo] = {}
    for run in sorted(runs, key=lambda r: r.id):
        number = run.tags.get(TRIAL_TAG, "")
        if run.tags.get(STUDY_TAG) == name and number.isdigit():
            found.setdefault(int(number), run)
    return found


def objective_values(run: RunInfo, spec: SearchSpec) -> list[float] | None:
    """The run's final value of each objective (a logged metric, else a summary number), or None if one is missing."""
    values = []
    for key in spec.objectives:
        value = run.metrics.get(key, run.summary.get(key))
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            return None
        values.append(float(value))
    return values


def step(store: Store, name: str) -> bool:
    """One round of tell and ask; returns whether the search is over (nothing runs, nothing more to ask)."""
    # optuna: imported by the processes that search, not the server
    from optuna.trial import TrialState

    study, spec = studies.load(store, name)
    told = studies.teller(store, name)
    runs = trial_runs(store, name)
    trials = study.get_trials(deepcopy=False)
    for trial in trials:
        if trial.state != TrialState.RUNNING:
            continue
        run = runs.get(trial.number)
        if run is None:  # asked, but the driver stopped before queueing it: queue it now, no new ask
            _queue(store, told, spec, trial.number, trial.params, trial._trial_id)
        elif run.status not in ACTIVE_STATES:
            _tell(told, spec, trial._trial_id, run)
        elif run.status == "queued" and run.job_id is None:  # its run made, its job not yet
            store.queue.submit_job("train", {"study": name, "trial": trial.number}, run.id, run.config.get("device", "auto"))
    trials = study.get_trials(deepcopy=False)
    running = sum(t.state == TrialState.RUNNING for t in trials)
    for _ in range(max(0, spec.parallel - running)):
        if not _may_ask(study, spec, trials):
            break
        asked = study.ask({n: d.distribution() for n, d in spec.dimensions().items()})
        _queue(store, told, spec, asked.number, asked.params, asked._trial_id)
        trials = study.get_trials(deepcopy=False)
    running = sum(t.state == TrialState.RUNNING for t in trials)
    return running == 0 and not _may_ask(study, spec, trials)


def _may_ask(study: optuna.Study, spec: SearchSpec, trials: list[optuna.trial.FrozenTrial]) -> bool:
    """Whether the budget allows another trial: not stopped, under the trial and time budgets, and not
    failing every time (as many failures as the budget ends it: a broken config would loop forever)."""
    from optuna.trial import TrialState

    attrs = study.user_attrs
    if attrs.get(studies.STOPPED_ATTR):
        return False
    counted = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING) for t in trials)
    failed = sum(t.state == TrialState.FAIL for t in trials)
    budget = spec.budget()
    if budget is not None and (counted >= budget or failed >= max(budget, 3)):
        return False
    if spec.sampler == "grid" and counted >= (spec.budget() or 0):
        return False
    started = float(attrs.get(studies.STARTED_ATTR, time.time()))
    return spec.timeout_s is None or time.time() - started < spec.timeout_s


def _queue(store: Store, study: optuna.Study, spec: SearchSpec, number: int, params: dict[str, Any],
           trial_id: int) -> int | None:
    """Queue trial `number` as a train run of the search's sweep; a config the params make invalid fails the
    trial (its message kept on it) rather than the search."""
    from optuna.trial import TrialState

    name = study.study_name
    try:
        config = launch_config(apply(spec.base, params) | {"sweep": name, "name": f"{name} #{number}"})
    except DlxError as err:
        study._storage.set_trial_user_attr(trial_id, "error", str(err))
        study.tell(number, state=TrialState.FAIL)
        return None
    run_id = store.create_run(config.model_dump(), config.experiment, config.name, config.sweep, "queued")
    store.set_tags(run_id, {STUDY_TAG: name, TRIAL_TAG: str(number)})
    study._storage.set_trial_system_attr(trial_id, "dlx_run", run_id)
    store.queue.submit_job("train", {"study": name, "trial": number}, run_id, config.device)
    return run_id


def _tell(study: optuna.Study, spec: SearchSpec, trial_id: int, run: RunInfo) -> None:
    """Tell Optuna how a trial's run ended: its objective(s), pruned, or failed (cancelled, or no objective)."""
    from optuna.trial import TrialState

    storage = study._storage
    storage.set_trial_system_attr(trial_id, "dlx_run", run.id)
    number = storage.get_trial_number_from_id(trial_id)
    if run.status == "pruned":
        study.tell(number, state=TrialState.PRUNED, skip_if_finished=True)
        return
    values = objective_values(run, spec) if run.status == "succeeded" else None
    if values is None:
        reason = run.error or f"run #{run.id} logged no {', '.join(spec.objectives)}"
        storage.set_trial_user_attr(trial_id, "error", f"{run.status}: {reason}"[:500])
        study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
        return
    study.tell(number, values, skip_if_finished=True)


def trial_run_id(trial: optuna.trial.FrozenTrial) -> int | None:
    value = trial.system_attrs.get("dlx_run")
    return int(value) if isinstance(value, int) else None


@register_job_kind("search")
def search_job(store: Store, job: Job) -> None:
    """Drive the study named in the payload until its budget is spent and its last trial has ended."""
    name = job.payload.get("study")
    if not isinstance(name, str):
        raise DlxError(f"job #{job.id}: a search job names its study", field="study")
    print(f"search {name}: driving", flush=True)
    while not step(store, name):
        time.sleep(POLL)
    print(f"search {name}: done", flush=True)


def submit(store: Store, name: str, spec: SearchSpec) -> int:
    """Create the study and queue its driver; returns the driver's job id. Its trials' configs are checked
    here first (the base config with the space's first values), so a bad search queues nothing."""
    first = {n: (d.values[0] if d.values else d.low) for n, d in spec.dimensions().items()}
    first = {n: int(v) if spec.dimensions()[n].kind == "int" else v for n, v in first.items()}
    launch_config(apply(spec.base, first) | {"sweep": name})
    studies.create(store, name, spec)
    return store.queue.submit_job("search", {"study": name}, None, "cpu")


def stop(store: Store, name: str) -> None:
    """Ask no more trials; those running finish and are told."""
    studies.load(store, name)
    studies.set_attr(store, name, studies.STOPPED_ATTR, True)


def extend(store: Store, name: str, more: int) -> int:
    """Add `more` trials to the budget (and lift a stop); queues a driver if none is active. Returns its job id."""
    if more < 1:
        raise DlxError("trials: extend by at least one trial", field="trials")
    study, spec = studies.load(store, name)
    from optuna.trial import TrialState

    counted = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
                  for t in study.get_trials(deepcopy=False))
    budget = max(spec.budget() or counted, counted) + more
    grown = spec.model_copy(update={"trials": budget, "timeout_s": None})
    studies.set_attr(store, name, studies.SPEC_ATTR, grown.model_dump(mode="json"))
    studies.set_attr(store, name, studies.STOPPED_ATTR, False)
    return driver_job(store, name) or store.queue.submit_job("search", {"study": name}, None, "cpu")


def driver_job(store: Store, name: str) -> int | None:
    """The search's active driver job, if one is queued or running."""
    return store.queue.active_job("search", {"study": name})
