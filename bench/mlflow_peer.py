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


_SEARCH = """
import json, sqlite3, sys, time, uuid, mlflow
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
folder, source = sys.argv[1], sys.argv[2]
client = MlflowClient(tracking_uri=f"sqlite:///{folder}/mlflow.db")
experiment = client.create_experiment("bench")
template = client.create_run(experiment).info.run_id
client.log_batch(template, metrics=[Metric("val_acc", 0.5, 0, 10), Metric("lr", 0.1, 0, 10)], params=[Param("lr", "0.1")])
client.set_terminated(template)
db = sqlite3.connect(f"{folder}/mlflow.db")
dlx = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
lr = dict(dlx.execute("SELECT run_id, value FROM params WHERE key = 'lr'"))
acc = dict(dlx.execute("SELECT run_id, last FROM run_summaries WHERE key = 'val_acc'"))
def copies(table, change):
    # the template run's rows of `table`, copied once per dlx run with `change(row, run_id)` applied
    columns = [c[1] for c in db.execute(f"PRAGMA table_info({table})")]
    rows = [dict(zip(columns, r)) for r in db.execute(f"SELECT * FROM {table} WHERE run_uuid = ?", (template,))]
    made = [change(dict(row), i) for i in sorted(lr) for row in rows]
    db.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                   [[row[c] for c in columns] for row in made])
def ident(i): return f"{i:032x}"
def run_row(row, i):
    row.update(run_uuid=ident(i), name=f"run-{i}", start_time=1_700_000_000_000 + i)
    return row
def keyed(row, i):
    row["run_uuid"] = ident(i)
    if "value" in row:
        text = isinstance(row["value"], str)  # a param's value; a metric's is a number
        row["value"] = (lr[i] if text else float(lr[i])) if row.get("key") == "lr" else acc[i]
    return row
for table, change in (("runs", run_row), ("params", keyed), ("latest_metrics", keyed), ("metrics", keyed),
                      ("tags", keyed)):
    copies(table, change)
db.execute("DELETE FROM latest_metrics WHERE run_uuid = ?", (template,))
for table in ("params", "metrics", "tags", "runs"):
    db.execute(f"DELETE FROM {table} WHERE run_uuid = ?", (template,))
db.commit()
print(json.dumps({"ready": len(lr), "version": mlflow.__version__}), flush=True)
for line in sys.stdin:  # one search per line: {"filter": ..., "order_by": [...]}, answered with its time
    asked = json.loads(line)
    start = time.perf_counter()
    found = client.search_runs([experiment], filter_string=asked["filter"], order_by=asked["order_by"],
                               max_results=50)
    took = time.perf_counter() - start
    print(json.dumps({"s": took, "ids": [int(r.info.run_id, 16) for r in found]}), flush=True)
"""


class Searcher:
    """MLflow's search_runs over a copy of a dlx store's runs (their lr params and val_acc final metrics), in
    a process of its own that answers one search at a time, so that its figures interleave with dlx's."""

    def __init__(self, python: str, source: str) -> None:
        self.folder = tempfile.TemporaryDirectory(prefix="dlx-bench-mlflow-")
        self.process = subprocess.Popen([python, "-c", textwrap.dedent(_SEARCH), self.folder.name, source],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.ready = json.loads(self.process.stdout.readline())

    def search(self, filter_string: str, order_by: list[str]) -> tuple[float, list[int]]:
        """(seconds, run ids) of one page of 50."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"filter": filter_string, "order_by": order_by}) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        return answer["s"], answer["ids"]

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()
        self.folder.cleanup()
