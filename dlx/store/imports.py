"""Runs brought in from other trackers (dlx.importers: MLflow, TensorBoard): each one written whole in one
transaction (row with its times and final status, params, tags, every metric point with its own time)
and marked with where it came from, so importing the same history again adds nothing."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select

from db.models import Experiment, Tag
from db.models import Run as RunRow
from dlx.store.ingest import RunWrites

if TYPE_CHECKING:
    from dlx.store import Store

SOURCE_TAG = "dlx.source"  # e.g. "mlflow:<run uuid>", "tensorboard:<folder>": the reserved prefix, no user's tag


@dataclass
class ForeignRun:
    """A finished run as another tracker kept it; times are unix seconds, points (key, step, value, time)."""

    source: str
    experiment: str
    name: str | None
    status: str
    started: float | None
    ended: float | None
    params: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    points: Sequence[tuple[str, int, float, float]] = ()
    config: Mapping[str, Any] = field(default_factory=dict)


def imported_sources(store: Store, prefix: str) -> dict[str, int]:
    """The sources (starting with `prefix`) already imported into `store`, and their run ids."""
    with store.engine.connect() as conn:
        rows = conn.execute(select(Tag.value, Tag.run_id).where(Tag.key == SOURCE_TAG, Tag.value.startswith(prefix)))
        return {value: run_id for value, run_id in rows}


def add_run(store: Store, run: ForeignRun) -> int:
    """Write `run` whole (or nothing: one transaction); returns its new id."""
    experiments = Experiment.__table__
    with store.engine.begin() as conn:
        find = select(experiments.c.id).where(experiments.c.name == run.experiment)
        experiment_id = conn.execute(find).scalar()
        if experiment_id is None:
            conn.execute(store.upsert(experiments).values(name=run.experiment)
                         .on_conflict_do_nothing(index_elements=["name"]))
            experiment_id = conn.execute(find).scalar_one()
        config = dict(run.config)
        started, ended = _time(run.started), _time(run.ended)
        key = conn.execute(insert(RunRow.__table__).values(
            experiment_id=experiment_id, name=run.name, status=run.status, config=config,
            dataset=config.get("dataset"), model=config.get("model"), created_at=started or _time(0),
            started_at=started, ended_at=ended)).inserted_primary_key
        assert key is not None  # a one-row INSERT always has its primary key
        run_id = key[0]
        writes = RunWrites(store, run_id)
        if run.params:
            writes.params(run.params)(conn)
        writes.tags({**run.tags, SOURCE_TAG: run.source})(conn)
        if run.points:
            writes.insert_points(conn, [(run_id, k, step, value, time) for k, step, value, time in run.points])
        return run_id


def _time(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)
