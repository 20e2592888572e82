"""MLflow's tracking database read with SQLAlchemy (any URL MLflow itself takes: sqlite, postgresql, mysql),
for `dlx import mlflow`: the active experiments and runs, each run's params, tags and metric points. Only
the columns MLflow has kept since its first schema are named, in portable SQL; nothing is written."""
from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, column, create_engine, make_url, select, table
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from dlx.errors import DlxError

SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")  # the databases MLflow's own store supports
DRIVERS = {"postgresql": "psycopg (postgresql+psycopg://...)", "mysql": "pymysql (mysql+pymysql://...)",
           "mariadb": "pymysql (mariadb+pymysql://...)"}

experiments = table("experiments", column("experiment_id"), column("name"), column("lifecycle_stage"))
runs = table("runs", column("run_uuid"), column("experiment_id"), column("name"), column("status"),
             column("start_time"), column("end_time"), column("lifecycle_stage"))
params = table("params", column("run_uuid"), column("key"), column("value"))
tags = table("tags", column("run_uuid"), column("key"), column("value"))
metrics = table("metrics", column("run_uuid"), column("key"), column("value"), column("timestamp"),
                column("step"), column("is_nan"))


def is_database_url(uri: str) -> bool:
    """Whether `uri` names a database MLflow can keep its runs in (else a folder or another service)."""
    return uri.partition("://")[0].partition("+")[0] in SCHEMES and "://" in uri


class MlflowTables:
    """One MLflow database, opened read-only where the database allows (SQLite)."""

    def __init__(self, uri: str):
        self.label = _label(uri)
        self.engine = _engine(uri)
        try:
            with self.engine.connect() as conn:
                self.experiments: dict[str, str] = {str(i): n for i, n in conn.execute(
                    select(experiments.c.experiment_id, experiments.c.name)
                    .where(experiments.c.lifecycle_stage == "active"))}
                self.runs: dict[str, str] = {r: str(e) for r, e in conn.execute(
                    select(runs.c.run_uuid, runs.c.experiment_id).where(runs.c.lifecycle_stage == "active")
                    .order_by(runs.c.start_time, runs.c.run_uuid)) if str(e) in self.experiments}
        except SQLAlchemyError as err:
            self.close()
            raise DlxError(f"uri: {self.label} cannot be read as an MLflow database ({_first_line(err)})",
                           field="uri") from None

    def run(self, run_id: str) -> tuple[tuple[Any, ...], dict[str, str], dict[str, str],
                                        list[tuple[str, int, float, float]]]:
        """A run's (name, status, start_time, end_time), params, tags and points (key, step, value, time in s)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(runs.c.name, runs.c.status, runs.c.start_time, runs.c.end_time)
                               .where(runs.c.run_uuid == run_id)).one()
            values = {k: v for k, v in conn.execute(select(params.c.key, params.c.value)
                                                    .where(params.c.run_uuid == run_id))}
            labels = {k: v for k, v in conn.execute(select(tags.c.key, tags.c.value).where(tags.c.run_uuid == run_id))}
            points = [(key, int(step), float("nan") if is_nan else float(value), int(time) / 1000)
                      for key, value, time, step, is_nan in conn.execute(
                          select(metrics.c.key, metrics.c.value, metrics.c.timestamp, metrics.c.step, metrics.c.is_nan)
                          .where(metrics.c.run_uuid == run_id)
                          .order_by(metrics.c.key, metrics.c.step, metrics.c.timestamp))]
        return tuple(row), values, labels, points

    def close(self) -> None:
        self.engine.dispose()


def _engine(uri: str) -> Engine:
    try:
        url = make_url(uri)
    except ArgumentError as err:
        raise DlxError(f"uri: {uri!r} is not a database URL ({err})", field="uri") from None
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        if not url.database or not path.is_file():
            raise DlxError(f"uri: there is no MLflow database at {path}", field="uri")
        url = URL.create("sqlite", database=f"file:{quote(str(path.resolve()))}?mode=ro", query={"uri": "true"})
    try:
        return create_engine(url)
    except (NoSuchModuleError, ImportError) as err:
        backend = url.get_backend_name()
        hint = f"; install {DRIVERS[backend]}" if backend in DRIVERS else ""
        raise DlxError(f"uri: no database driver for {_label(uri)} ({err}){hint}", field="uri") from None


def _label(uri: str) -> str:
    """The URL as shown in messages: its password hidden."""
    try:
        return make_url(uri).render_as_string(hide_password=True)
    except ArgumentError:
        return uri


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
