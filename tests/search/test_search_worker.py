"""A search on real workers: `dlx search --json` waits while its worker is killed mid-study and another is
started; the study continues where it was, with no trial asked or run twice."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from dlx.search import driver
from dlx.store import default_store
from tests.helpers.processes import start_worker, stop_process, wait_for

pytestmark = pytest.mark.slow


def test_a_search_continues_without_duplicates_after_its_worker_is_killed(dlx_home):
    dlx_home.mkdir(parents=True, exist_ok=True)
    env = {"DLX_STALE_AFTER": "6", "DLX_CPU_JOBS": "1"}
    first = start_worker(dlx_home, env=env)
    command = [sys.executable, "-m", "dlx.cli", "search", "--dataset", "digits", "--model", "mlp",
               "--param", "lr=log:1e-3:1e-1", "--param", "batch_size=choice:32,64", "--set", "epochs=2",
               "--trials", "2", "--objective", "val_acc", "--direction", "maximize", "--sampler", "tpe",
               "--pruner", "median", "--parallel", "1", "--name", "s", "--no-worker", "--json"]
    cli = subprocess.Popen(command, env={**os.environ, "DLX_HOME": str(dlx_home)}, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    second = None
    try:
        store = default_store()
        wait_for(lambda: (runs := driver.trial_runs(store, "s")) and runs[0].status == "running",
                 timeout=120, message="the first trial to run")
        os.killpg(first.pid, signal.SIGKILL)  # the worker, the driver and the trial go down together
        first.wait()
        second = start_worker(dlx_home, env=env)
        out, err = cli.communicate(timeout=300)
    finally:
        cli.kill()
        stop_process(first)
        if second is not None:
            stop_process(second)
    assert cli.returncode == 0, err
    found = json.loads(out)
    assert set(found) == {"study", "best", "trials"} and found["study"] == "s"
    trials = found["trials"]
    assert [t["number"] for t in trials] == list(range(len(trials)))
    assert set(trials[0]) == {"run", "number", "state", "value"}
    runs = [t["run"] for t in trials]
    assert None not in runs and len(set(runs)) == len(runs)  # one run per trial
    assert sum(t["state"] in ("succeeded", "pruned") for t in trials) == 2  # the budget, no more
    assert store.count_runs(sweep="s") == len(trials)  # no run outside a trial, none queued twice
    assert found["best"]["run"] in runs and set(found["best"]["params"]) == {"lr", "batch_size"}
    drivers = [job for job in store.queue.jobs(list(range(1, 40))).values() if job.kind == "search"]
    assert [job.status for job in drivers] == ["succeeded"]  # the same driver, re-queued and finished
