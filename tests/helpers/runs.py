"""Runs to look at: a thousand bulk-inserted finished runs (a fixture), one huge run beside a small one, and a
data directory a whole test module shares (`shared_home`: its runs trained once)."""
from __future__ import annotations

import json
import random

import pytest
from sqlalchemy import insert

from db.engine import dispose_all, get_engine
from db.models import Param, RunSummary
from db.models import Run as RunRow
from dlx.data.registry import load_dataset
from dlx.store import default_store
from dlx.tracking import Run, start_run


@pytest.fixture(scope="module")
def shared_home(tmp_path_factory):
    """One data directory and store for a module whose tests share its trained runs (the module overrides
    `dlx_home` with it)."""
    home = tmp_path_factory.mktemp("dlx-data")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DLX_HOME", str(home))
        env.delenv("DLX_DATABASE_URL", raising=False)
        env.setenv("HF_HUB_OFFLINE", "1")
        env.setenv("DLX_AUTOSTART_WORKER", "0")
        yield home
    dispose_all()
    load_dataset.cache_clear()


@pytest.fixture
def thousand_runs() -> list[int]:
    """1,000 finished runs (bulk inserted) with lr, optimizer and final metrics; the first three have curves."""
    store = default_store()
    first = store.create_run({"dataset": "digits", "model": "cnn"}, status="succeeded")
    rng = random.Random(1)
    table = RunRow.__table__
    with get_engine().begin() as conn:
        conn.execute(insert(table), [{"experiment_id": 1, "status": "succeeded", "dataset": "digits",
                                      "model": rng.choice(("cnn", "mlp")), "config": {}, "summary": {}}
                                     for _ in range(999)])
        ids = list(range(first, first + 1000))
        conn.execute(insert(Param), [{"run_id": i, "key": key, "value": json.dumps(value)} for i in ids
                                     for key, value in (("lr", rng.choice((0.1, 0.01, 0.001))),
                                                        ("layers", rng.randint(1, 4)), ("epochs", 3))])
        conn.execute(insert(RunSummary), [{"run_id": i, "key": "val_acc", "step": 3, "last": v, "min": v, "max": v}
                                          for i in ids for v in [rng.random()]])
    for run_id in ids[:3]:
        run = Run(store, run_id)
        run.log_series("val_acc", [0.1 * run_id, 0.5, 1.0 - 0.1 * run_id], 0)
        run.flush()
        run._stop.set()
    return ids


NAMES = 10_000


BIG = "p" * 10_000_000  # the 10 MB param


def huge_run() -> tuple[int, int]:
    """The huge run (config, param, tag, note and error all long) and a small one beside it."""
    store = default_store()
    small = store.create_run({"lr": 0.1, "blob": "small"}, name="small", status="queued")
    with start_run(run_id=small, handle_signals=False) as run:
        run.log_metrics({"val_acc": 0.5}, step=0)
    huge = store.create_run({"lr": 0.2, "blob": BIG}, name="huge", status="queued")
    run = start_run(run_id=huge, handle_signals=False)
    run.log_params({"blob": BIG})
    run.log_metrics({f"metric_{i:05d}": float(i) for i in range(NAMES)}, step=0)
    run.log_metrics({f"metric_{i:05d}": float(i) + 1 for i in range(NAMES)}, step=1)
    run.finish("failed", error="E" * 1_000_000)
    store.set_tags(huge, {"owner": "t" * 100_000})
    store.set_note(huge, "n" * 1_000_000)
    return huge, small
