"""`dlx import mlflow` (issue 32) on stores MLflow 3.18 itself made (tests/data/mlflow/make_store.py): every
experiment, run name, status, param, tag and metric point (step, value, time) equal to what MLflow's client
read back; a second import adds nothing. The SQLite store's MLflow tables, copied into PostgreSQL, import the
same."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from dlx.cli import main
from dlx.importers.mlflow import STATUS, import_mlflow
from dlx.store import default_store
from dlx.store.imports import SOURCE_TAG

DATA = Path(__file__).resolve().parents[1] / "data" / "mlflow"


def imported_runs() -> dict[str, int]:
    """MLflow run id -> dlx run id, from the source tag each imported run carries."""
    store = default_store()
    return {store.get_run(run.id).tags[SOURCE_TAG].removeprefix("mlflow:"): run.id for run in store.list_runs()}


MLFLOW_TABLES = ("experiments", "runs", "params", "tags", "metrics")


@pytest.fixture
def mlflow_on_postgresql(pg_cluster):
    """The committed MLflow SQLite database's tracking tables, with their columns and rows, in a new PostgreSQL
    database (MLflow's own PostgreSQL schema has the same tables and columns)."""
    from sqlalchemy import MetaData, create_engine, insert, select

    source = create_engine(f"sqlite:///{DATA / 'mlflow.db'}")
    meta = MetaData()
    meta.reflect(source, only=MLFLOW_TABLES)
    for t in meta.tables.values():  # the sqlite CHECK constraints' SQL need not be PostgreSQL's
        t.constraints = {c for c in t.constraints if type(c).__name__ != "CheckConstraint"}
    url = pg_cluster.create_database()
    target = create_engine(url)
    meta.create_all(target)
    with source.connect() as read, target.begin() as write:
        for t in meta.sorted_tables:
            rows = [dict(r._mapping) for r in read.execute(select(t))]
            if "is_nan" in t.c:
                rows = [{**r, "is_nan": bool(r["is_nan"])} for r in rows]
            if rows:
                write.execute(insert(t), rows)
    source.dispose()
    target.dispose()
    yield url
    pg_cluster.drop_database(url)


@pytest.mark.parametrize("kind,uri", [("file", str(DATA / "mlruns")), ("sqlite", f"sqlite:///{DATA / 'mlflow.db'}"),
                                      ("postgresql", None)])
def test_every_value_of_an_mlflow_store_is_imported_and_a_second_import_adds_nothing(kind, uri, capsys, request):
    if kind == "postgresql":
        uri, kind = request.getfixturevalue("mlflow_on_postgresql"), "sqlite"  # the same values as the SQLite store
    expected = json.loads((DATA / f"expected-{kind}.json").read_text())
    assert main(["import", "mlflow", uri]) == 0
    captured = capsys.readouterr()
    assert f"imported {len(expected)} MLflow runs" in captured.out and f"{len(expected)}/{len(expected)} runs" in captured.err
    store = default_store()
    runs = imported_runs()
    assert set(runs) == set(expected)
    for uuid, want in expected.items():
        run = store.get_run(runs[uuid])
        assert run.experiment == want["experiment"] and run.name == want["name"]
        assert run.status == STATUS[want["status"]]
        assert abs(_unix(run.started_at) - want["start_time"] / 1000) < 1e-3
        assert abs(_unix(run.ended_at) - want["end_time"] / 1000) < 1e-3
        assert run.params == want["params"]
        tags = dict(run.tags)
        assert tags.pop(SOURCE_TAG) == f"mlflow:{uuid}" and tags == want["tags"]
        assert set(run.metrics) == set(want["metrics"])
        for key, points in want["metrics"].items():
            history = store.metric_history(run.id, key)
            got = sorted([int(s), round(t * 1000), float(v)] for s, v, t in zip(history.steps, history.values,
                                                                                history.times))
            assert [p[:2] for p in got] == [p[:2] for p in points]
            assert all(math.isclose(g[2], p[2], rel_tol=0, abs_tol=0) for g, p in zip(got, points))
    count = len(store.list_runs())
    assert main(["import", "mlflow", uri]) == 0
    assert len(store.list_runs()) == count
    assert "imported 0 MLflow runs" in capsys.readouterr().out


def _unix(moment) -> float:
    from datetime import UTC

    return moment.replace(tzinfo=UTC).timestamp()


def test_a_uri_that_is_not_an_mlflow_store_is_a_clear_error(tmp_path, capsys):
    assert main(["import", "mlflow", str(tmp_path / "nowhere")]) != 0
    assert "uri:" in capsys.readouterr().err
    assert main(["import", "mlflow", "http://localhost:5000"]) != 0  # a tracking server: not read
    assert "sqlite:///PATH" in capsys.readouterr().err
    assert main(["import", "mlflow", "postgresql+psycopg://me:secret@127.0.0.1:1/mlflow"]) != 0  # nothing listens
    err = capsys.readouterr().err
    assert "uri: postgresql+psycopg://me:***@127.0.0.1:1/mlflow cannot be read as an MLflow database" in err
    assert "secret" not in err
    assert main(["import", "mlflow", "mysql+pymysql://me:secret@127.0.0.1:1/mlflow"]) != 0  # no driver, or no server
    err = capsys.readouterr().err
    assert "uri:" in err and "mysql+pymysql://me:***@127.0.0.1:1/mlflow" in err and "secret" not in err
    assert main(["import", "mlflow", f"sqlite:///{tmp_path / 'none.db'}"]) != 0
    assert "there is no MLflow database" in capsys.readouterr().err


def test_the_library_call_returns_the_counts(capsys):
    summary = import_mlflow(default_store(), str(DATA / "mlruns"), progress=False)
    assert (summary.added, summary.skipped, summary.experiments) == (5, 0, 2) and summary.points > 100
    assert import_mlflow(default_store(), str(DATA / "mlruns"), progress=False).skipped == 5
    assert capsys.readouterr().err == ""
