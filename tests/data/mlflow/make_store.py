"""Makes the MLflow stores `dlx import mlflow` is tested on, with MLflow itself (never installed into dlx's venv):

    python3 -m venv /work/mlflow-venv && /work/mlflow-venv/bin/pip install mlflow==3.18.0
    cd tests/data/mlflow && MLFLOW_ALLOW_FILE_STORE=true /work/mlflow-venv/bin/python make_store.py

writes `mlruns/` (the file store) and `mlflow.db` (the SQLite store): two experiments, runs with names,
params, tags, statuses and metric histories with steps and timestamps, and `expected.json`: every value
as MLflow's own client reads it back, which the test compares dlx's import with.
"""
import json
import shutil
from pathlib import Path

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

HERE = Path(__file__).resolve().parent
T0 = 1_765_000_000_000  # ms: fixed timestamps, so the stores are the same each time they are made


def fill(client: MlflowClient) -> None:
    for e, name in enumerate(["sentiment", "digits sweep"]):
        experiment = client.create_experiment(name, tags={"team": f"team-{e}"})
        for r, status in enumerate(["FINISHED", "FAILED", "KILLED"][: 3 - e]):
            run = client.create_run(experiment, start_time=T0 + 1000 * r, run_name=f"{name}-run-{r}",
                                    tags={"mlflow.note.content": f"note {r}", "stage": ["dev", "prod", "dev"][r]})
            rid = run.info.run_id
            client.log_batch(rid, params=[Param("lr", str(10 ** -(r + 2))), Param("optimizer", "adam"),
                                          Param("layers", str(r + 1))],
                             tags=[RunTag("seed", str(r))])
            client.log_batch(rid, metrics=[Metric("loss", 1.0 / (s + 1 + r), T0 + 100 * s, s) for s in range(20)]
                             + [Metric("val_acc", 0.5 + 0.02 * s, T0 + 100 * s + 7, s) for s in range(0, 20, 5)]
                             + [Metric("lr", 0.1, T0 + 5, 0), Metric("lr", 0.05, T0 + 6, 0)])  # one step twice
            client.set_terminated(rid, status, end_time=T0 + 60_000 + r)


def expected(client: MlflowClient) -> dict:
    out = {}
    for experiment in client.search_experiments():
        if experiment.name == "Default":
            continue
        for run in client.search_runs([experiment.experiment_id]):
            histories = {key: sorted([m.step, m.timestamp, m.value] for m in client.get_metric_history(run.info.run_id, key))
                         for key in run.data.metrics}
            out[run.info.run_id] = {"experiment": experiment.name, "name": run.info.run_name,
                                    "status": run.info.status, "start_time": run.info.start_time,
                                    "end_time": run.info.end_time, "params": run.data.params,
                                    "tags": run.data.tags, "metrics": histories}
    return out


if __name__ == "__main__":
    for kind, uri in (("file", f"file://{HERE / 'mlruns'}"), ("sqlite", f"sqlite:///{HERE / 'mlflow.db'}")):
        shutil.rmtree(HERE / "mlruns", ignore_errors=True) if kind == "file" else (HERE / "mlflow.db").unlink(True)
        mlflow.set_tracking_uri(uri)
        client = MlflowClient(uri)
        fill(client)
        (HERE / f"expected-{kind}.json").write_text(json.dumps(expected(client), indent=1, sort_keys=True))
