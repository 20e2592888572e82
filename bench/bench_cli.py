"""The command line's own cost: `dlx --help` and `dlx runs --limit 50` on a store of 1,000 runs.

Each command runs in a fresh Python, as a user's shell starts it, interleaved with the baseline (a
bare `python -c pass`: the interpreter's own start), several times; the figure is the process's CPU
time (user + system, from the kernel's accounting of the child), the median of the repeats. The
store is built once with bulk inserts (bench_runs_scale's generator, no histories) and is brought to
the latest schema before timing, as a user's store is.
Targets: `dlx --help` under 0.1 s, `dlx runs --limit 50` under 0.35 s CPU (newest first: read in plain SQL
without SQLAlchemy, dlx.store.plain). A sorted listing, which goes through the Store, is shown beside.

Run: python bench/bench_cli.py [--runs 1000] [--repeats 7]
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys

from bench_runs_scale import CACHE, generate
from common import ROOT, machine, median, report, setup

setup()

from dlx.store import Store  # noqa: E402


def cpu_of(command: list[str], env: dict[str, str]) -> float:
    """CPU seconds (user + system) of one child process running `command` to its end."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode == 0, done.stderr
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(machine())
    url = generate(CACHE / f"runs{args.runs}.sqlite", args.runs, 0, 0, 0)
    Store(url).list_runs(limit=1)  # the schema at its latest revision, as a user's store is after any use
    env = {**os.environ, "DLX_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    dlx = [sys.executable, "-m", "dlx.cli"]
    commands = {"python -c pass (the interpreter's start)": [sys.executable, "-c", "pass"],
                "dlx --help": [*dlx, "--help"],
                f"dlx runs --limit 50 ({args.runs:,} runs)": [*dlx, "runs", "--limit", "50"],
                "  the same, sorted by a metric (the Store's path, no target)": [*dlx, "runs", "--limit", "50",
                                                                              "--sort", "val_acc"]}
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(args.repeats):  # interleaved: the machine's load falls on each alike
        for name, command in commands.items():
            times[name].append(cpu_of(command, env))
    baseline, help_s, runs_s, _sorted = (median(t) for t in times.values())
    report(f"the command line's CPU time per call (median of {args.repeats}, interleaved)",
           [(name, f"{median(t) * 1e3:7.0f} ms  (min {min(t) * 1e3:.0f}, max {max(t) * 1e3:.0f})")
            for name, t in times.items()])
    print(f"\ndlx --help: {help_s * 1e3:.0f} ms CPU (interpreter {baseline * 1e3:.0f} ms); target < 100 ms: "
          f"{'met' if help_s < 0.1 else 'NOT met'}")
    print(f"dlx runs --limit 50, {args.runs:,} runs: {runs_s * 1e3:.0f} ms CPU; target < 350 ms: "
          f"{'met' if runs_s < 0.35 else 'NOT met'}")


if __name__ == "__main__":
    main()
