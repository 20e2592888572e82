"""`dlx import mlflow URI`: experiments, runs, params, tags, metric histories (steps and times), statuses and run
names from an MLflow tracking store, read from its own formats without importing mlflow: the file store
(`./mlruns`: meta.yaml files, one file per param and tag, a line `timestamp value step` per metric point) or
its database (`sqlite:///mlflow.db`, `postgresql://...`, `mysql+pymysql://...`: the runs, params, tags, metrics
and experiments tables, read by dlx.store.mlflow_tables)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlx.errors import DlxError
from dlx.importers.progress import ImportSummary, run_import
from dlx.store.imports import ForeignRun
from dlx.store.mlflow_tables import MlflowTables, is_database_url

if TYPE_CHECKING:
    from dlx.store import Store

PREFIX = "mlflow:"
# MLflow's RunStatus (its file store keeps the number) -> dlx's status; a run MLflow still had running
# when it was imported is recorded failed, with the reason.
FILE_STATUS = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}
STATUS = {"FINISHED": "succeeded", "FAILED": "failed", "KILLED": "cancelled"}


def dlx_status(mlflow_status: str) -> str:
    return STATUS.get(mlflow_status, "failed")


def import_mlflow(store: Store, uri: str, progress: bool = True) -> ImportSummary:
    """Import every active run of the MLflow store at `uri` not imported before."""
    if is_database_url(uri):
        reader = DatabaseStore(uri)
        try:
            return run_import(store, PREFIX, reader.run_ids(), reader.read, progress)
        finally:
            reader.tables.close()
    if "://" in uri and not uri.startswith("file://"):
        raise DlxError(f"uri: {uri!r} is neither an mlruns folder nor a database URL (sqlite:///PATH, "
                       "postgresql://..., mysql+pymysql://...); dlx reads MLflow's file store and its database, "
                       "not its tracking server", field="uri")
    files = FileStore(Path(uri.removeprefix("file://")))
    return run_import(store, PREFIX, files.run_ids(), files.read, progress)


class FileStore:
    """An `mlruns` folder: <experiment id>/meta.yaml, <experiment id>/<run id>/{meta.yaml,params,tags,metrics}."""

    def __init__(self, root: Path):
        if not root.is_dir():
            raise DlxError(f"uri: {root} is not a folder (an MLflow ./mlruns file store)", field="uri")
        self.root = root
        self.experiments: dict[str, str] = {}  # id -> name, the active ones
        self.runs: dict[str, Path] = {}
        for meta in sorted(root.glob("*/meta.yaml")):
            values = _yaml(meta)
            if values.get("lifecycle_stage", "active") != "active":
                continue
            self.experiments[str(values["experiment_id"])] = str(values["name"])
            for run_meta in sorted(meta.parent.glob("*/meta.yaml")):
                run = _yaml(run_meta)
                if run.get("lifecycle_stage", "active") == "active":
                    self.runs[str(run["run_id"])] = run_meta.parent
        if not self.experiments:
            raise DlxError(f"uri: {root} holds no MLflow experiments (no <id>/meta.yaml)", field="uri")

    def run_ids(self) -> list[str]:
        return list(self.runs)

    def read(self, run_id: str) -> ForeignRun:
        folder = self.runs[run_id]
        meta = _yaml(folder / "meta.yaml")
        status = FILE_STATUS.get(int(meta.get("status") or 1), "RUNNING")
        points = []
        for path in sorted(p for p in (folder / "metrics").rglob("*") if p.is_file()):
            key = path.relative_to(folder / "metrics").as_posix()
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 2:
                    points.append((key, int(parts[2]) if len(parts) > 2 else 0, float(parts[1]), int(parts[0]) / 1000))
        return _foreign(run_id, self.experiments[str(meta["experiment_id"])], meta.get("run_name"), status,
                        meta.get("start_time"), meta.get("end_time"), _files(folder / "params"),
                        _files(folder / "tags"), points)


class DatabaseStore:
    """MLflow's database (SQLite, PostgreSQL or MySQL), read through dlx.store.mlflow_tables."""

    def __init__(self, uri: str):
        self.tables = MlflowTables(uri)

    def run_ids(self) -> list[str]:
        return list(self.tables.runs)

    def read(self, run_id: str) -> ForeignRun:
        (name, status, start, end), params, tags, points = self.tables.run(run_id)
        experiment = self.tables.experiments[self.tables.runs[run_id]]
        return _foreign(run_id, experiment, name, status, start, end, params, tags, points)


def _foreign(run_id: str, experiment: str, name: Any, status: str, start: Any, end: Any,
             params: dict[str, str], tags: dict[str, str], points: list) -> ForeignRun:
    return ForeignRun(
        PREFIX + run_id, experiment, name or None, dlx_status(status),
        None if start is None else int(start) / 1000, None if end is None else int(end) / 1000,
        params, tags, points, {"source": "mlflow", "mlflow_status": status})


def _files(folder: Path) -> dict[str, str]:
    """One value per file, its key the path below `folder` (MLflow keeps "a/b" keys as folders)."""
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def _yaml(path: Path) -> dict[str, Any]:
    """MLflow's flat meta.yaml files."""
    import yaml  # a dependency of transformers; only where an mlruns folder is read

    try:
        values = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise DlxError(f"uri: {path} cannot be read ({err})", field="uri") from None
    if not isinstance(values, dict):
        raise DlxError(f"uri: {path} is not an MLflow meta.yaml", field="uri")
    return values
