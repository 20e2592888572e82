"""MLflow measured for real, in its own virtual environment, or skipped with a message.

MLflow is never installed into dlx's venv (its pins fight ours): point `--mlflow-python` (or
DLX_BENCH_MLFLOW_PYTHON) at the python of a venv where `pip install mlflow` was run. Each
figure is measured in a subprocess of that python on a fresh SQLite tracking store in a
temporary folder; nothing is assumed when it is absent.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import textwrap

SKIPPED = "MLflow: not installed, skipped (pass --mlflow-python PATH of a venv with mlflow)"

_COMMON = """
import json, sys, time, mlflow
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
folder, steps, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
client = MlflowClient(tracking_uri=f"sqlite:///{folder}/mlflow.db")
def fill():
    run = client.create_run(client.create_experiment(f"e{time.time_ns()}")).info.run_id
    now = int(time.time() * 1000)
    points = [Metric(key, value, now, step) for step in range(steps)
              for key, value in (("train_loss", 1.0 / (step + 1)), ("lr", 0.003), ("samples_per_s", 8000.0))]
    start = time.perf_counter()
    for i in range(0, len(points), 1000):  # log_batch takes at most 1,000 metrics per call
        client.log_batch(run, metrics=points[i:i + 1000])
    return run, len(points) / (time.perf_counter() - start)
"""

_INGEST = _COMMON + """
print(json.dumps({"points_per_s": [fill()[1] for _ in range(repeats)], "version": mlflow.__version__}))
"""

_HISTORY = _COMMON + """
run, _ = fill()
times = []
for _ in range(repeats):
    start = time.perf_counter()
    history = client.get_metric_history(run, "train_loss")
    times.append(1000 * (time.perf_counter() - start))
assert len(history) == steps
print(json.dumps({"ms": times, "version": mlflow.__version__}))
"""


def mlflow_python(given: str | None) -> str | None:
    """The python to measure MLflow with, when one is given and can import mlflow."""
    python = given or os.environ.get("DLX_BENCH_MLFLOW_PYTHON")
    if not python:
        return None
    found = subprocess.run([python, "-c", "import mlflow"], capture_output=True)
    return python if found.returncode == 0 else None


def measure(python: str, which: str, steps: int, repeats: int) -> dict:
    """Run the ingest or history measurement in MLflow's venv; its JSON result."""
    script = {"ingest": _INGEST, "history": _HISTORY}[which]
    with tempfile.TemporaryDirectory(prefix="dlx-bench-mlflow-") as folder:
        done = subprocess.run([python, "-c", textwrap.dedent(script), folder, str(steps), str(repeats)],
                              capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])
