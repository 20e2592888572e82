"""ORM models: experiments, runs and what they log, the job queue, workers, cached explanations."""
from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON}
    # Every model here is declared by __tablename__, so it maps a Table (the base types it as any FromClause).
    __table__: ClassVar[Table]


class Experiment(Base):
    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Run(Base):
    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    sweep: Mapped[str | None] = mapped_column(String(200), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    dataset: Mapped[str | None] = mapped_column(String(100))
    model: Mapped[str | None] = mapped_column(String(100))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)  # final metrics, confusion matrix
    device: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    # Liveness of a run written by a process with no job row (a user's script): host:pid,
    # its last heartbeat, and a stop request that process honours.
    owner: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None]
    cancel_requested: Mapped[bool] = mapped_column(default=False, server_default=false())

    experiment: Mapped[Experiment] = relationship()
    params: Mapped[list[Param]] = relationship(cascade="all, delete-orphan", passive_deletes=True)
    tags: Mapped[list[Tag]] = relationship(cascade="all, delete-orphan", passive_deletes=True)


def param_number(value: str | None) -> float | None:
    """A parameter's stored text as a number where it is one (JSON int or float), else None.

    Kept in its own column so filters and sorts compare parameters numerically in SQL, with an index.
    """
    if value is None:
        return None
    try:
        decoded = json.loads(value)
    except ValueError:
        return None
    if isinstance(decoded, bool) or not isinstance(decoded, (int, float)):
        return None
    number = float(decoded)
    return number if math.isfinite(number) else None


def _param_number_default(context) -> float | None:
    return param_number(context.get_current_parameters().get("value"))


class Param(Base):
    """A run's parameter; `number` is filled from `value` on insert (re-logging one upserts both)."""

    __tablename__ = "params"
    __table_args__ = (Index("ix_params_key_number", "key", "number"),)

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    number: Mapped[float | None] = mapped_column(Float, default=_param_number_default)


class Tag(Base):
    __tablename__ = "tags"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Metric(Base):
    """One point; the index covers (run, key, step) so one history is one range scan."""

    __tablename__ = "metrics"
    __table_args__ = (Index("ix_metrics_run_key_step", "run_id", "key", "step", "value", "time"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(250))
    step: Mapped[int] = mapped_column(BigInteger)  # any signed 64-bit integer (0006)
    value: Mapped[float | None] = mapped_column(Float)  # NaN is stored as NULL by SQLite
    time: Mapped[float] = mapped_column(Float)  # unix seconds


class RunSummary(Base):
    """A run's final value of each metric (at its last step) with its min and max, kept up to date
    by the tracking flush, so tables, filters and sorts over many runs never read histories."""

    __tablename__ = "run_summaries"
    __table_args__ = (Index("ix_run_summaries_key_last", "key", "last"),)

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    step: Mapped[int] = mapped_column(BigInteger)  # the last step logged
    last: Mapped[float | None] = mapped_column(Float)  # the value at that step (NULL: NaN)
    min: Mapped[float | None] = mapped_column(Float)  # over the values logged, NaN left out
    max: Mapped[float | None] = mapped_column(Float)


class MetricBlock(Base):
    """Each metric of a run per block of BLOCK_STEPS steps (block = step // BLOCK_STEPS): its last point,
    min and max, kept by the tracking flush, so a chart of a long history reads 50x fewer rows."""

    __tablename__ = "metric_blocks"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    block: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    last_step: Mapped[int] = mapped_column(BigInteger)
    last: Mapped[float | None] = mapped_column(Float)
    min: Mapped[float | None] = mapped_column(Float)
    max: Mapped[float | None] = mapped_column(Float)


BLOCK_STEPS = 50


class Artifact(Base):
    """A file a run wrote, indexed by its path under the data directory; one per (run, kind, name)."""

    __tablename__ = "artifacts"
    __table_args__ = (Index("uq_artifacts_run_kind_name", "run_id", "kind", "name", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(50))  # checkpoint, log, ...
    name: Mapped[str] = mapped_column(String(250))
    path: Mapped[str] = mapped_column(Text)  # relative to the data directory
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """The queue: a worker claims a queued job atomically and heartbeats while it runs."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(50), default="train")
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    device: Mapped[str] = mapped_column(String(64), default="auto")
    worker: Mapped[str | None] = mapped_column(String(200))
    pid: Mapped[int | None]
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    progress: Mapped[float] = mapped_column(default=0.0)
    error: Mapped[str | None] = mapped_column(Text)
    log_path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]


class Worker(Base):
    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # host:pid
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    info: Mapped[dict[str, Any]] = mapped_column(default=dict)  # slots, devices, running


class Explanation(Base):
    """A computed attribution, keyed by everything that determines it, so a second look is free."""

    __tablename__ = "explanations"
    __table_args__ = (UniqueConstraint("key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64))  # sha256 of run, checkpoint, sample, method, params
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(100))
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    data: Mapped[bytes] = mapped_column(LargeBinary)  # safetensors bytes
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UserDataset(Base):
    """A data set a user brought (an uploaded archive, a folder on the server, a CSV), checked and kept.

    `path` is where its files are: relative to the data directory when dlx owns them (uploads),
    absolute for a folder the user pointed to (never deleted by dlx).
    """

    __tablename__ = "user_datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # image, table, text
    source: Mapped[str] = mapped_column(Text)  # the upload's file name or the folder's path
    path: Mapped[str] = mapped_column(Text)
    owned: Mapped[bool] = mapped_column(default=True)  # dlx copied the files and may delete them
    rows: Mapped[int] = mapped_column(Integer)  # samples
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    classes: Mapped[list[str]] = mapped_column(JSON, default=list)
    checksum: Mapped[str] = mapped_column(String(64))  # sha256 of the kept files
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)  # shape, mean/std, encodings, notes
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
