"""Ray's per-job launch overhead against the local executor, for a trivial job (iris MLP, one epoch).

For each executor a real `dlx worker` serves the same store; each trial submits one job and waits
until it ends, then measures submit -> first metric point (the job's start-up: process, imports,
data) and submit -> job ended (what a user waits for in all). The local worker keeps its standby
process ready (the default); the ray executor starts each task in a Ray worker process on a
two-CPU head on loopback (`ray start --head --block`, stopped by signal at the end). Medians and
spread (min-max) over the repeats; the ratio is ray against local measured in the same run.

Run: python bench/bench_ray.py [--repeats 5]
"""
from __future__ import annotations

import argparse
import time

from common import machine, median, report, setup

home = setup()

from dlx.config import parse_config  # noqa: E402
from dlx.store import FINAL_STATES, default_store  # noqa: E402
from tests.helpers.processes import start_worker, stop_process, wait_for  # noqa: E402
from tests.helpers.ray_head import ray_head  # noqa: E402

JOB = {"dataset": "iris", "model": "mlp", "epochs": 1}


def trials(env: dict[str, str], repeats: int) -> tuple[list[float], list[float]]:
    """Seconds from submit to the first metric point and to the job's end, one pair per trial."""
    store = default_store()
    worker = start_worker(home, env=env)
    try:
        wait_for(lambda: any(w.id.endswith(f":{worker.pid}") for w in store.workers.alive()), timeout=120,
                 message="the worker")
        firsts, ends = [], []
        for _ in range(repeats + 1):
            time.sleep(6)  # as an idle worker: its standby (local) is ready again
            start = time.time()
            run_id, job_id = store.queue.submit(parse_config(JOB))
            job = wait_for(lambda job_id=job_id: (j := store.queue.get_job(job_id)).status in FINAL_STATES and j, timeout=180,
                           interval=0.05, message=f"job {job_id}")
            assert job.status == "succeeded", job.error
            firsts.append(float(store.metric_history(run_id, "train_loss").times[0]) - start)
            ends.append(time.time() - start)
        return firsts[1:], ends[1:]  # the first trial warms up (first imports, Ray's first worker): not counted
    finally:
        stop_process(worker, timeout=40)


def figure(values: list[float]) -> str:
    return f"{median(values):6.2f} s  (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    local = trials({"DLX_EXECUTOR": "local"}, args.repeats)
    with ray_head(home / "ray") as address:
        ray = trials({"DLX_EXECUTOR": "ray", "DLX_RAY_ADDRESS": address}, args.repeats)
    print(machine())
    report(f"Per-job launch overhead, {JOB}", [
        ("local: submit -> first point", figure(local[0])),
        ("ray:   submit -> first point", figure(ray[0])),
        ("local: submit -> job ended", figure(local[1])),
        ("ray:   submit -> job ended", figure(ray[1])),
        ("ray / local, first point", f"{median(ray[0]) / median(local[0]):.2f}x"),
        ("ray / local, job ended", f"{median(ray[1]) / median(local[1]):.2f}x"),
    ])


if __name__ == "__main__":
    main()
