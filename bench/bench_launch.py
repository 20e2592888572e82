"""From pressing Launch in the browser to the run's first metric point drawn on the run's page.

The real app and its auto-started worker serve headless Chromium. Each trial opens the Launch
page with the defaults (digits, small CNN, 3 epochs) and presses Launch; the page follows the run
at once (it opens the run's live page) and the trial waits until the curves are drawn, which
happens with the run's first metric point. The baseline does the same without the browser, in
this process: `dlx.jobs.submit`, then poll the store for the first point, through the same warm
worker; the ratio is what the app adds on top of the queue and the job.

The worker keeps a standby job process ready (`DLX_PREWARM`, `DLX_STANDBY_PRELOAD`): it imported
torch and the training loop before the job existed. Every trial starts once the worker has one
ready, as an idle worker does. "A fresh worker's first job" is a new app on a new data directory:
open Launch, press Launch as soon as the form is there (the worker is still starting, its
standby too), median of `--fresh` such apps.

Each browser trial is split along the run's own timestamps: queued -> claimed by the worker,
claimed -> the job's process has marked the run running, running -> the first point logged
(data, model, one logging window of 10 steps), logged -> drawn (the write, the page's refresh).

Run: python bench/bench_launch.py [--repeats 5] [--fresh 2]
"""
from __future__ import annotations

import argparse
import re
import time
from datetime import UTC

from common import machine, median, report, setup

home = setup()

from dlx import settings  # noqa: E402
from dlx.config import parse_config  # noqa: E402
from dlx.jobs import status  # noqa: E402
from dlx.store import FINAL_STATES, default_store  # noqa: E402
from dlx.views.launch import defaults_for, first_choice  # noqa: E402
from tests.helpers.browser import chromium_page, open_page, running_app  # noqa: E402
from tests.helpers.processes import wait_for  # noqa: E402


def first_point_time(run_id: int) -> float | None:
    history = default_store().metric_history(run_id, "train_loss")
    return float(history.times[0]) if len(history) else None


def standby_ready() -> bool:
    """Whether the worker has a standby that finished its imports and holds no job yet."""
    output = (home / "logs" / "worker.log").read_text()
    return output.count(": ready in ") > output.count("started job ")


def wait_finished(run_id: int) -> None:
    """Cancel the run (its first point is all a trial needs), then wait until the worker has collected
    the job's process and has a standby ready for the next trial."""
    default_store().queue.cancel_run(run_id)
    wait_for(lambda: default_store().queue.latest_job(run_id).status in FINAL_STATES, timeout=300, interval=0.1,
             message=f"run {run_id} to end")
    if settings.standby_processes():
        wait_for(standby_ready, timeout=300, interval=0.1, message="a standby to be ready")


def unix(moment) -> float:
    return moment.replace(tzinfo=UTC).timestamp()


def browser_trial(page, url: str) -> dict[str, float]:
    store = default_store()
    open_page(page, url, "Launch a training run")
    page.get_by_text("This queues 1 run").wait_for(timeout=120_000)  # the model check runs in a child: slow when loaded
    pressed_wall, pressed = time.time(), time.perf_counter()
    page.get_by_role("button", name="Launch", exact=True).click()  # the page opens the run's live page itself
    page.get_by_role("heading", name=re.compile("Run #")).wait_for(timeout=120_000)
    page.locator(".js-plotly-plot g.trace").first.wait_for(timeout=120_000)  # the first point's curve
    drawn = time.perf_counter() - pressed
    heading = page.get_by_role("heading", name=re.compile("Run #")).inner_text()
    run_id = int(re.search(r"#(\d+)", heading).group(1))
    logged = wait_for(lambda: first_point_time(run_id), timeout=120, interval=0.01, message="the first point")
    run = store.get_run(run_id)
    claimed, queued = unix(store.queue.latest_job(run_id).started_at), unix(run.created_at)
    wait_finished(run_id)
    return {"total": drawn, "press to queued": queued - pressed_wall, "queue": claimed - queued,
            "process start": unix(run.started_at) - claimed, "first window": logged - unix(run.started_at),
            "write and refresh": pressed_wall + drawn - logged}


def api_trial() -> float:
    start = time.perf_counter()
    run_id, _ = default_store().queue.submit(parse_config(defaults_for(*first_choice())))
    wait_for(lambda: first_point_time(run_id), timeout=120, interval=0.01, message="the first point")
    elapsed = time.perf_counter() - start
    wait_finished(run_id)
    return elapsed


def fresh_trial(page, n: int) -> float:
    """A new app on a new data directory: open Launch, press Launch at once; seconds to the first point drawn."""
    fresh_home = home / f"fresh-{n}"
    with running_app(fresh_home) as app:
        open_page(page, app.url, "Launch a training run")
        page.get_by_text("This queues 1 run").wait_for(timeout=120_000)  # the model check runs in a child: slow when loaded
        pressed = time.perf_counter()
        page.get_by_role("button", name="Launch", exact=True).click()
        page.get_by_role("heading", name=re.compile("Run #")).wait_for(timeout=120_000)
        page.locator(".js-plotly-plot g.trace").first.wait_for(timeout=120_000)
        return time.perf_counter() - pressed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--fresh", type=int, default=2)
    args = parser.parse_args()
    with chromium_page() as page:
        fresh = [fresh_trial(page, n) for n in range(args.fresh)]
        with running_app(home) as app:
            open_page(page, app.url, "Launch a training run")  # this session starts the worker
            wait_for(lambda: status(default_store()).state == "alive", message="the worker")
            browser_trial(page, app.url)  # warm-up: file caches, the page's first drawing
            trials, baseline = [], []
            for _ in range(args.repeats):  # interleaved, so both see the same machine state
                trials.append(browser_trial(page, app.url))
                baseline.append(api_trial())
    parts = {key: median([t[key] for t in trials]) for key in trials[0]}
    browser, api = parts["total"], median(baseline)
    start = "a ready standby takes the job" if settings.standby_processes() else "a fresh process imports"
    report(f"Launch to first metric on the Runs page ({machine()}; median of {args.repeats})", [
        ("browser: press Launch -> first point drawn", f"{browser:.2f} s"),
        ("  press -> run queued", f"{parts['press to queued']:.2f} s"),
        ("  queued -> claimed by the worker", f"{parts['queue']:.2f} s"),
        (f"  claimed -> job process running ({start})", f"{parts['process start']:.2f} s"),
        ("  running -> first point logged (data, model, 10 steps)", f"{parts['first window']:.2f} s"),
        ("  logged -> drawn (write, page refresh)", f"{parts['write and refresh']:.2f} s"),
        ("baseline: default_store().queue.submit() -> first point in the store", f"{api:.2f} s"),
        ("browser / baseline", f"{browser / api:.2f}x"),
        ("all browser trials", ", ".join(f"{t['total']:.2f}" for t in trials) + " s"),
        (f"a fresh worker's first job (median of {len(fresh)})", f"{median(fresh):.2f} s: "
         + ", ".join(f"{f:.2f}" for f in fresh) + " s"),
    ])
    print(f"\npress Launch -> first point drawn, median: {browser:.2f} s; target < 1.5 s: "
          f"{'met' if browser < 1.5 else 'not met'}")
    print(f"a fresh worker's first job: {median(fresh):.2f} s; target < 3 s: "
          f"{'met' if median(fresh) < 3 else 'not met'}")


if __name__ == "__main__":
    main()
