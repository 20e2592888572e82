"""Two real workers and eight writer processes at once, on SQLite and PostgreSQL: every job is
claimed once, every point lands, and no process meets "database is locked" or a deadlock."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from sqlalchemy import func, select

from db.models import Metric, RunSummary
from dlx import settings
from dlx.config import parse_config
from dlx.store import FINAL_STATES, default_store
from tests.helpers.processes import start_worker, stop_process, wait_for

pytestmark = [pytest.mark.usefixtures("store_url"), pytest.mark.slow]  # about a minute per store on 2 cores

WRITERS, STEPS = 8, 400
QUICK = {"dataset": "breast_cancer", "model": "mlp", "epochs": 2}
# Each writer logs to a run of its own and, under keys of its own, to one run all of them share
# (the same run's summary rows and blocks written by eight transactions at once); a small flush
# size makes many transactions.
WRITER = """
    import sys
    from dlx.store import default_store
    from dlx.tracking import Run

    index, shared_id = int(sys.argv[1]), int(sys.argv[2])
    shared = Run(default_store(), shared_id, flush_size=37)
    with Run(default_store(), default_store().create_run(status="running"), flush_size=37) as run:
        print(run.id, flush=True)
        for step in range(STEPS):
            run.log_metrics({"loss": 1.0 / (step + 1), "acc": step / STEPS}, step=step)
            shared.log_metric("w%d/loss" % index, float(step), step=step)
    shared.flush()
"""
TROUBLE = ("database is locked", "deadlock", "Traceback")


def count(run_id: int, key: str | None = None) -> int:
    with default_store().session() as s:
        query = select(func.count()).select_from(Metric).where(Metric.run_id == run_id)
        return s.scalar(query.where(Metric.key == key) if key else query)


def test_two_workers_and_eight_writers_lose_nothing_and_never_lock():
    home = settings.home()
    home.mkdir(parents=True, exist_ok=True)
    jobs = [default_store().queue.submit(parse_config({**QUICK, "seed": seed})) for seed in range(4)]
    shared = default_store().create_run({"dataset": "digits"}, name="shared", status="running")
    script = textwrap.dedent(WRITER).replace("STEPS", str(STEPS))
    workers: list[subprocess.Popen] = []
    writers: list[subprocess.Popen] = []
    try:
        workers.extend(start_worker(home) for _ in range(2))
        writers.extend(subprocess.Popen([sys.executable, "-c", script, str(i), str(shared)], text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
                       for i in range(WRITERS))
        outputs = [process.communicate(timeout=300) for process in writers]
        finished = [wait_for(lambda job_id=job_id: (job := default_store().queue.get_job(job_id)).status in FINAL_STATES and job,
                             timeout=300, message=f"job {job_id} to end") for _, job_id in jobs]
    finally:
        for process in writers:
            if process.poll() is None:
                process.kill()
                process.wait()
        for process in workers:
            stop_process(process)
    for process, (out, err) in zip(writers, outputs):
        assert process.returncode == 0, err
        assert not any(word in err for word in TROUBLE), err
        run_id = int(out.split()[0])
        assert default_store().get_run(run_id).status == "succeeded"
        assert count(run_id, "loss") == count(run_id, "acc") == STEPS
        assert default_store().latest_metrics(run_id)["loss"] == (STEPS - 1, 1.0 / STEPS)
    for index in range(WRITERS):
        key = f"w{index}/loss"
        assert count(shared, key) == STEPS
        with default_store().session() as s:
            summary = s.get(RunSummary, (shared, key))
        assert (summary.step, summary.last, summary.min, summary.max) == (STEPS - 1, STEPS - 1, 0, STEPS - 1)
    for (run_id, _), job in zip(jobs, finished):
        assert job.status == "succeeded", job.error
        losses = default_store().metric_history(run_id, "train_loss")
        assert len(losses) == default_store().get_run(run_id).summary["total_steps"]  # each job ran once
        assert len(set(losses.steps.tolist())) == len(losses)
    for log in home.glob("worker-*.log"):
        text = log.read_text(errors="replace")
        assert not any(word in text for word in TROUBLE), f"{log.name}:\n{text[-3000:]}"
