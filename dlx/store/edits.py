"""Editing runs in the store: creating, tags, a note, the archived mark, deletion (the Store's mixin for them)."""
from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select

from db.models import Artifact, Experiment, Job, Metric, Param, RunSummary, Tag, utcnow
from db.models import Run as RunRow
from dlx import settings
from dlx.errors import DlxError
from dlx.states import ACTIVE_STATES, OWNER
from dlx.store.run_info import ARCHIVED_TAG, NOTE_TAG, RESERVED_TAG_PREFIX

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy import Engine, Table
    from sqlalchemy.dialects import postgresql, sqlite
    from sqlalchemy.orm import Session

    from dlx.store.queue import Queue

    Upsert = postgresql.Insert | sqlite.Insert  # an INSERT with .on_conflict_do_update/_do_nothing



def parse_tags(text: str) -> dict[str, str]:
    """'baseline, owner=ana' -> {'baseline': '', 'owner': 'ana'}: what people type into a tags box."""
    tags: dict[str, str] = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        key = key.strip()
        if not key and not value.strip():
            continue
        if not key:
            raise DlxError(f"tags: {part.strip()!r} has a value but no name before '='", field="tags")
        _check_tag_name(key)
        tags[key] = value.strip()
    return tags


def _check_tag_name(key: str) -> None:
    if not key.strip() or len(key) > 250:
        raise DlxError(f"tags: a tag name must have 1 to 250 characters, got {key[:20]!r}", field="tags")
    if key.startswith(RESERVED_TAG_PREFIX):
        raise DlxError(f"tags: names starting with {RESERVED_TAG_PREFIX!r} are reserved ({key!r})", field="tags")


class RunEdits:
    """Methods of `dlx.store.Store` that change runs; they need only its engine, `session()` and `queue`."""

    engine: Engine
    session: Callable[[], Session]
    upsert: Callable[[Table], Upsert]
    merging_upsert: Callable[..., Upsert]

    if TYPE_CHECKING:  # Store's cached property
        @property
        def queue(self) -> Queue: ...

    def keyed_upsert(self, table: Table) -> Upsert:
        """The upsert of a run's key/value rows (params, tags): a key set again takes the new value
        (a param's number with it), so writers setting the same keys at once never collide."""
        columns = [column for column in ("value", "number") if column in table.c]
        return self.merging_upsert(table, ["run_id", "key"],
                                   lambda upsert: {column: upsert.excluded[column] for column in columns})

    def create_run(self, config: Mapping[str, Any] | None = None, experiment: str = "default",
                   name: str | None = None, sweep: str | None = None, status: str = "queued") -> int:
        """Insert a run row (and its experiment if new); returns the run id. A run created
        "running" is a script's own, started now by this process (`start_run`): it is created
        with its start time, heartbeat and owner, so starting it is no second write."""
        config = dict(config or {})
        values: dict[str, Any] = {"name": name, "sweep": sweep, "status": status, "config": config,
                                  "dataset": config.get("dataset"), "model": config.get("model")}
        if status == "running":
            now = utcnow()
            values.update(started_at=now, heartbeat_at=now, owner=OWNER)
        experiments = Experiment.__table__
        with self.engine.begin() as conn:  # Core, not the ORM: a script opens its run in ~1 ms less
            find = select(experiments.c.id).where(experiments.c.name == experiment)
            values["experiment_id"] = conn.execute(find).scalar()
            if values["experiment_id"] is None:  # a new one: inserted unless another writer just did
                conn.execute(self.upsert(experiments).values(name=experiment)
                             .on_conflict_do_nothing(index_elements=["name"]))
                values["experiment_id"] = conn.execute(find).scalar_one()
            key = conn.execute(insert(RunRow.__table__).values(**values)).inserted_primary_key
            assert key is not None  # a one-row INSERT always has its primary key
            return key[0]

    def set_tags(self, run_id: int, tags: dict[str, str]) -> None:
        """Replace a run's own tags with `tags` (its note and archived mark stay): the others deleted,
        these upserted, so that two people saving a run's tags at once never collide on a key."""
        for key in tags:
            _check_tag_name(key)
        with self.session() as s, s.begin():
            _require_run(s, run_id)
            s.execute(delete(Tag).where(Tag.run_id == run_id, ~Tag.key.startswith(RESERVED_TAG_PREFIX),
                                        Tag.key.not_in(list(tags))))
            if tags:
                s.execute(self.keyed_upsert(Tag.__table__),
                          [{"run_id": run_id, "key": key, "value": value} for key, value in tags.items()])

    def set_note(self, run_id: int, note: str) -> None:
        """A run's free-text note; an empty one removes it."""
        with self.session() as s, s.begin():
            _require_run(s, run_id)
            s.execute(delete(Tag).where(Tag.run_id == run_id, Tag.key == NOTE_TAG))
            if note.strip():
                s.add(Tag(run_id=run_id, key=NOTE_TAG, value=note.strip()))

    def set_archived(self, run_ids: list[int], archived: bool = True) -> None:
        """Archive runs (hidden from lists by default, kept whole) or bring them back."""
        with self.session() as s, s.begin():
            s.execute(delete(Tag).where(Tag.run_id.in_(run_ids), Tag.key == ARCHIVED_TAG))
            if archived:
                existing = s.scalars(select(RunRow.id).where(RunRow.id.in_(run_ids)))
                s.add_all(Tag(run_id=run_id, key=ARCHIVED_TAG, value=utcnow().isoformat()) for run_id in existing)

    def delete_run(self, run_id: int, wait: float = 20.0) -> None:
        """Delete a run, everything it logged, and its files: its folder and its jobs' logs.

        An active run is stopped first (its jobs cancelled, its script asked to end) and given up to
        `wait` seconds to end, so no worker or script finds its rows gone while it still writes.
        """
        if self._stop_before_delete(run_id):
            deadline = time.monotonic() + wait
            while self._still_active(run_id) and time.monotonic() < deadline:
                time.sleep(0.2)
        home = settings.home()
        with self.session() as s, s.begin():
            files = list(s.scalars(select(Artifact.path).where(Artifact.run_id == run_id)))
            for table in (Metric, RunSummary, Param, Tag, Artifact, Job):
                s.execute(delete(table).where(table.run_id == run_id))
            s.execute(delete(RunRow).where(RunRow.id == run_id))
        shutil.rmtree(home / "runs" / str(run_id), ignore_errors=True)
        for stored in files:
            try:
                path = settings.stored_path(stored)
            except DlxError:
                continue  # an index entry never reaches outside the data directory
            path.unlink(missing_ok=True)

    def _stop_before_delete(self, run_id: int) -> bool:
        """Cancel the run's active jobs (training and explanations), or ask its script to end; whether any was active."""
        with self.session() as s:
            jobs = list(s.scalars(select(Job.id).where(Job.run_id == run_id, Job.status.in_(ACTIVE_STATES))))
            status = s.scalar(select(RunRow.status).where(RunRow.id == run_id))
        for job_id in jobs:
            self.queue.cancel_job(job_id)
        if status in ACTIVE_STATES and not jobs:
            self.queue.cancel_run(run_id)
        return bool(jobs) or status in ACTIVE_STATES

    def _still_active(self, run_id: int) -> bool:
        with self.session() as s:
            job = s.scalar(select(Job.id).where(Job.run_id == run_id, Job.status.in_(ACTIVE_STATES)).limit(1))
            return job is not None or s.scalar(select(RunRow.status).where(RunRow.id == run_id)) in ACTIVE_STATES


def _require_run(s: Session, run_id: int) -> None:
    if s.scalar(select(RunRow.id).where(RunRow.id == run_id)) is None:
        raise DlxError(f"run: there is no run #{run_id}", field="run")
