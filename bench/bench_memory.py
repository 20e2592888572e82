"""The memory a user's `dlx ui` costs: every process it started, as PSS, after a browser walked the pages.

    python bench/bench_memory.py [--repeats 2] [--idle 30]

Each trial starts the real `dlx ui` (its auto-started worker included) on a fresh data directory, opens
Launch, Runs, Compare and Data in headless Chromium, waits for the standby the Launch page requests to be
ready, then leaves the tab open for `--idle` seconds and sums PSS (/proc/PID/smaps_rollup: shared pages
split between the processes that map them) over the tree: what `dlx ui` became or kept (the launcher,
where there is one, and the server), the worker, its standbys. Modes, interleaved in the same run:
now (DLX_STANDBY_PRELOAD=train), the old preload (DLX_STANDBY_PRELOAD=all: every job kind, captum and
torchvision with it) as the baseline, and no standby at all (DLX_PREWARM=0: the memory floor, paid for
by each launch importing torch).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, median, report, setup  # noqa: E402

root_home = setup()

from dlx import cli  # noqa: E402  (the processes are told apart by the modules they run)
from dlx.jobs import entry, standby  # noqa: E402
from tests.helpers.browser import chromium_page, free_port, open_page, stop_spawned_workers  # noqa: E402
from tests.helpers.processes import wait_for  # noqa: E402

MODES = {"now (DLX_STANDBY_PRELOAD=train)": {"DLX_STANDBY_PRELOAD": "train"},
         "old preload (DLX_STANDBY_PRELOAD=all)": {"DLX_STANDBY_PRELOAD": "all"},
         "no standby (DLX_PREWARM=0)": {"DLX_PREWARM": "0"}}
TARGET_MB = 600
WALK = [("", "Launch a training run"), ("runs", "Runs"), ("compare", "Compare runs"), ("data", "Data")]


def pss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    return 0.0


def parents() -> dict[int, int]:
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            found[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    return found


def tree(roots: list[int]) -> list[int]:
    """The roots and every descendant of them alive now."""
    table, found, todo = parents(), [], list(roots)
    while todo:
        pid = todo.pop()
        if pid in table and pid not in found:
            found.append(pid)
            todo += [child for child, parent in table.items() if parent == pid]
    return found


def role(pid: int) -> str:
    with contextlib.suppress(OSError):
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        for needle, name in ((standby.__name__, "standby"), (entry.__name__, "job"), (f"{cli.__name__} worker", "worker"),
                             ("streamlit run", "server"), (f"{cli.__name__} ui", "launcher")):
            if needle in command:
                return name
    return "other"


def trial(page, env: dict[str, str], idle: float, home: Path) -> dict[str, float]:
    port = free_port()
    merged = {**os.environ, **env, "DLX_HOME": str(home), "PYTHONPATH": str(ROOT)}
    ui = subprocess.Popen([sys.executable, "-m", "dlx.cli", "ui", "--port", str(port)], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True, env=merged, start_new_session=True, cwd=ROOT)
    try:
        line = ui.stdout.readline()
        if not line.startswith("dlx: "):
            raise SystemExit(f"dlx ui said {line!r} and ended with {ui.wait()}")
        url = f"http://127.0.0.1:{port}"
        for path, heading in WALK:
            open_page(page, f"{url}/{path}", heading)
        if env.get("DLX_PREWARM") != "0":
            log = home / "logs" / "worker.log"
            wait_for(lambda: log.exists() and ": ready in " in log.read_text(), timeout=300, interval=0.5,
                     message="the standby the Launch page requested")
        time.sleep(idle)  # the tab stays open on the Data page, as a user leaves it
        worker = int((home / "worker.spawn").read_text().split()[0])
        figures: dict[str, float] = {}
        for pid in tree([ui.pid, worker]):
            figures[role(pid)] = figures.get(role(pid), 0.0) + pss_mb(pid)
        figures["total"] = sum(figures.values())
        return figures
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(ui.pid, signal.SIGINT)
        try:
            ui.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(ui.pid, signal.SIGKILL)
            ui.wait()
        stop_spawned_workers(home)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--idle", type=float, default=30.0)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    with chromium_page() as page:
        for n in range(args.repeats):  # interleaved, so a load change on the machine hits every mode alike
            for mode, env in MODES.items():
                results[mode].append(trial(page, env, args.idle, root_home / f"{n}-{len(results[mode])}-{list(MODES).index(mode)}"))
    roles = sorted({name for runs in results.values() for figures in runs for name in figures} - {"total"})
    for mode, runs in results.items():
        totals = [r["total"] for r in runs]
        report(f"{mode}: PSS after Launch, Runs, Compare, Data and {args.idle:.0f} s idle (median of {len(runs)})",
               [(name, f"{median([r.get(name, 0.0) for r in runs]):.0f} MB") for name in roles]
               + [("total", f"{median(totals):.0f} MB (min {min(totals):.0f}, max {max(totals):.0f})")])
    now, old, floor = (median([r["total"] for r in results[mode]]) for mode in MODES)
    print(f"\nold preload / now: {old / now:.2f}x; now - no standby: {now - floor:.0f} MB (the standby's price)")
    print(f"dlx ui + worker + standby, PSS: {now:.0f} MB; target < {TARGET_MB} MB: "
          f"{'met' if now < TARGET_MB else 'not met'}")


if __name__ == "__main__":
    main()
