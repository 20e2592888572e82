"""The study on the store's own database (SQLite and PostgreSQL), driven step by step without training: each
trial's run is ended here with a value computed from its params, as a worker's job would end it."""
from __future__ import annotations

import math

import pytest

from dlx.errors import DlxError
from dlx.search import driver
from dlx.search import study as studies
from dlx.search.results import result
from dlx.search.spec import parse_spec
from dlx.store import default_store
from dlx.tracking import start_run

SPACE = {"lr": "log:1e-4:1e-1", "batch_size": "choice:16,32,64"}


def make_spec(**values):
    return parse_spec({"base": {"dataset": "digits", "model": "mlp", "epochs": 1}, "space": SPACE,
                       "objectives": ["val_acc"], "directions": ["maximize"], "trials": 5, "seed": 3, **values})


def score(params: dict) -> float:
    """A made-up objective with its best at lr 1e-2, batch 32."""
    return 1 - abs(math.log10(params["lr"]) + 2) / 3 - abs(params["batch_size"] - 32) / 200


def finish_queued(store, name: str, status: str = "succeeded") -> None:
    """End every queued trial run of the search as its job would, logging the made-up objective."""
    for run in driver.trial_runs(store, name).values():
        if run.status == "queued":
            with start_run(run_id=run.id, store=store, handle_signals=False) as handle:
                handle.log_metrics({"val_acc": score(run.config)}, step=1)
            if status != "succeeded":
                store.queue.finish_job(run.job_id, status, "made to fail by the test")


def drive(store, name: str) -> list[dict]:
    """Step the driver, ending each trial's run, until it says the search is over; the trials' params."""
    for _ in range(50):
        if driver.step(store, name):
            break
        finish_queued(store, name)
    study, _ = studies.load(store, name)
    return [t.params for t in study.get_trials()]


def test_a_seeded_search_proposes_the_same_trials_twice(store_url):
    store = default_store()
    driver.submit(store, "first", make_spec())
    driver.submit(store, "second", make_spec())
    first, second = drive(store, "first"), drive(store, "second")
    assert len(first) == 5 and first == second
    assert len({tuple(sorted(p.items())) for p in first}) == 5  # a fresh sampler per step still proposes anew
    other = make_spec(seed=4)
    driver.submit(store, "other", other)
    assert drive(store, "other") != first
    found = result(store, "first").as_json()
    assert found["study"] == "first" and [t["number"] for t in found["trials"]] == list(range(5))
    assert {t["state"] for t in found["trials"]} == {"succeeded"}
    runs = driver.trial_runs(store, "first")
    best = max(found["trials"], key=lambda t: t["value"])
    assert found["best"]["run"] == best["run"] == runs[best["number"]].id
    assert found["best"]["params"] == {key: runs[best["number"]].config[key] for key in SPACE}
    assert runs[best["number"]].tags == {"study": "first", "trial": str(best["number"])}
    assert runs[best["number"]].sweep == "first"
    with pytest.raises(DlxError, match="exists already") as err:
        driver.submit(store, "first", make_spec())
    assert err.value.field == "name"


def test_a_restarted_driver_reconciles_instead_of_asking_again(store_url):
    store = default_store()
    driver.submit(store, "s", make_spec(parallel=2, trials=4))
    assert not driver.step(store, "s")
    assert sorted(driver.trial_runs(store, "s")) == [0, 1]
    # The driver dies after asking trial 2 but before queueing its run; trial 0's worker dies (its run fails).
    finish_queued(store, "s")
    study, spec = studies.load(store, "s")
    study.tell(1, 0.5)  # as if told already; trial 0's run is ended, trial 1 is done
    study.ask({n: d.distribution() for n, d in spec.dimensions().items()})
    driver.step(store, "s")  # the restarted driver: trial 2 gets its run, one new trial (3) fills the slot
    runs = driver.trial_runs(store, "s")
    assert sorted(runs) == [0, 1, 2, 3]
    assert len({run.id for run in runs.values()}) == 4
    study, _ = studies.load(store, "s")
    assert [t.state.name for t in study.get_trials()] == ["COMPLETE", "COMPLETE", "RUNNING", "RUNNING"]
    drive(store, "s")
    assert len(driver.trial_runs(store, "s")) == 4 == len(studies.load(store, "s")[0].get_trials())


def test_failed_trials_do_not_spend_the_budget_and_stop_extends(store_url):
    store = default_store()
    driver.submit(store, "f", make_spec(trials=2))
    driver.step(store, "f")
    assert store.queue.cancel_run(driver.trial_runs(store, "f")[0].id) == "cancelled"
    driver.step(store, "f")  # trial 0 failed (its run cancelled): trial 1 takes its place in the budget
    driver.stop(store, "f")
    assert not driver.step(store, "f")  # stopped, but trial 1 still runs
    finish_queued(store, "f")
    assert driver.step(store, "f")  # nothing asked after a stop: the search is over
    found = result(store, "f")
    assert found.stopped and [t["state"] for t in found.trials] == ["failed", "succeeded"]
    job = driver.extend(store, "f", 1)
    assert store.queue.get_job(job).kind == "search" and not result(store, "f").stopped
    drive(store, "f")
    states = [t["state"] for t in result(store, "f").trials]
    assert states == ["failed", "succeeded", "succeeded", "succeeded"]  # a budget of 2, extended to 3


def test_a_grid_search_walks_every_point_once_and_ends(store_url):
    store = default_store()
    driver.submit(store, "g", make_spec(sampler="grid", trials=None, space={"lr": "1e-3,1e-2", "batch_size": "16,32"}))
    tried = drive(store, "g")
    assert sorted((p["lr"], p["batch_size"]) for p in tried) == [(1e-3, 16), (1e-3, 32), (1e-2, 16), (1e-2, 32)]
    assert {t["state"] for t in result(store, "g").trials} == {"succeeded"}


def test_a_cmaes_search_proposes_numeric_trials_in_range_and_seeded(store_url):
    store = default_store()
    space = {"lr": "log:1e-4:1e-1", "batch_size": "int:16:64"}
    driver.submit(store, "cma-a", make_spec(sampler="cmaes", space=space, trials=4))
    driver.submit(store, "cma-b", make_spec(sampler="cmaes", space=space, trials=4))
    first = drive(store, "cma-a")
    assert first == drive(store, "cma-b") and len(first) == 4
    assert all(1e-4 <= p["lr"] <= 1e-1 and 16 <= p["batch_size"] <= 64 for p in first)
    assert len({p["batch_size"] for p in first}) > 1  # it searches, not repeats its mean
