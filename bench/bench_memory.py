"""Memory before any job (issue 18): the app's server with the Launch page and an opened run, and an
idle worker with and without a standby, in MB of resident memory (VmRSS, from /proc).

    python bench/bench_memory.py [--repeats 3]

The app is opened under `streamlit.testing` in a fresh process: Launch page (form, parameter
count), then the Runs page with a run opened (its Re-run check). "old path" is the same process
after importing what the Launch page imported before issue 18 (torch, every model builder,
scikit-learn, torchvision), measured in the same run. The worker runs with `DLX_PREWARM=1`: its
RSS idle, then with the standby the Launch page requests (before, one started with every worker).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, median, report, setup  # noqa: E402

APP = """
import json, sys
if sys.argv[3] == "old":
    import sklearn.datasets, sklearn.model_selection, torchvision  # noqa: E401
    from dlx.models import MODELS
    for entry in MODELS.values():
        entry.builder
from streamlit.testing.v1 import AppTest
at = AppTest.from_file(sys.argv[1], default_timeout=300)
at.switch_page("pages/launch.py")
at.run()
at.switch_page("pages/runs.py")
at.query_params["run"] = sys.argv[2]
at.run()
status = open("/proc/self/status").read()
rss = int(next(l for l in status.splitlines() if l.startswith("VmRSS")).split()[1]) // 1024
print(json.dumps({"rss": rss, "torch": "torch" in sys.modules, "errors": [str(e.value) for e in at.exception]}))
"""


def rss_mb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) // 1024


def children(pid: int) -> list[int]:
    found = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(child) for child in found.split()]


def app_rss(run_id: int, path: str) -> tuple[int, bool]:
    env = {**os.environ, "DLX_AUTOSTART_WORKER": "0", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", APP, str(ROOT / "streamlit_app.py"), str(run_id), path],
                          capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    shown = json.loads(done.stdout.strip().splitlines()[-1])
    if shown["errors"]:
        raise SystemExit(f"the app raised: {shown['errors']}")
    return shown["rss"], shown["torch"]


def worker_rss(home: Path) -> tuple[int, int, int]:
    """(idle worker, its children, worker + requested standby) in MB."""
    from dlx.jobs import standby

    (home / standby.REQUEST_FILE).unlink(missing_ok=True)  # the app's Launch page just asked for one
    log = home / f"worker-{time.monotonic_ns()}.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen([sys.executable, "-m", "dlx.cli", "worker"], stdout=out, stderr=subprocess.STDOUT,
                                  env={**os.environ, "DLX_PREWARM": "1", "PYTHONPATH": str(ROOT)},
                                  start_new_session=True, cwd=ROOT)
    try:
        time.sleep(10)  # registered and round its loop many times (a bench may wait; tests may not)
        idle = rss_mb(worker.pid)
        idle_children = sum(rss_mb(pid) for pid in children(worker.pid))
        standby.request()
        deadline = time.monotonic() + 180
        while "standby pid" not in log.read_text() or ": ready" not in log.read_text():
            if time.monotonic() > deadline:
                raise SystemExit("no standby became ready")
            time.sleep(0.5)
        with_standby = rss_mb(worker.pid) + sum(rss_mb(pid) for pid in children(worker.pid))
        return idle, idle_children, with_standby
    finally:
        worker.terminate()
        worker.wait(30)


def spread(values: list[int]) -> str:
    return f"{median(values):.0f} MB (min {min(values)}, max {max(values)}, n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    home = setup()
    from dlx.store import default_store
    from dlx.tracking import Run

    store = default_store()
    run = Run(store, store.create_run({"dataset": "digits", "model": "cnn", "epochs": 1}, status="running"))
    run.log_metric("train_loss", 1.0, 0)
    run.finish()
    new, old, idle, idle_children, standby = [], [], [], [], []
    for _ in range(args.repeats):  # interleaved, so a load change on the machine hits both alike
        rss, torch = app_rss(run.id, "new")
        assert not torch, "the app imported torch"
        new.append(rss)
        old.append(app_rss(run.id, "old")[0])
        worker = worker_rss(home)
        idle.append(worker[0])
        idle_children.append(worker[1])
        standby.append(worker[2])
    report("App server: Launch page, then Runs page with a run opened (VmRSS)", [
        ("now (no torch)", spread(new)), ("old path (torch, builders, sklearn)", spread(old)),
        ("ratio old/now", f"{median(old) / median(new):.2f}")])
    report("Worker, DLX_PREWARM=1 (VmRSS, worker + children)", [
        ("idle: the worker", spread(idle)), ("idle: its children", spread(idle_children)),
        ("with the requested standby (before: always)", spread(standby))])
    print(f"\napp + idle worker: {median(new) + median(idle):.0f} MB (target: under 600 MB)")


if __name__ == "__main__":
    main()
