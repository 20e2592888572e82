"""Writers in separate processes setting the same run's same params, tags and artifacts at once, on
SQLite and PostgreSQL: each write is one upsert per table, so none fails on a key another writer
inserted meanwhile, none is lost, the last value of each key stays and no artifact is indexed twice;
summary merges take turns, so none drops another's keys.
"""
from __future__ import annotations

import multiprocessing
import traceback

import pytest
from sqlalchemy import func, insert, select

from db.engine import get_engine, upgrade
from db.models import Artifact, Experiment, Param, Tag
from db.models import Run as RunRow
from dlx.store import Store
from dlx.tracking import Run

pytestmark = pytest.mark.usefixtures("store_url")  # every test on SQLite and PostgreSQL

WRITERS = 4
ROUNDS = 15
SHARED = ("lr", "batch_size", "optimizer")
NAMES = ("best", "last")


def write(url: str, run_id: int, other_run: int, writer: int, start, errors) -> None:
    """One writer: every round sets the shared keys (and its own) to values naming writer and round."""
    try:
        store = Store(url)
        run = Run(store, run_id)
        start.wait()
        for round_ in range(ROUNDS):
            value = f"w{writer}-r{round_}"
            run.log_params({**{key: value for key in SHARED}, "step_size": round_ * 10 + writer,
                            f"own{writer}": value})
            run.set_tags({**{key: value for key in SHARED}, f"own{writer}": value})
            run.log_artifacts([("checkpoint", name, f"runs/{run_id}/{name}-{value}.pt", {"round": round_})
                               for name in NAMES])
            store.set_tags(other_run, {key: value for key in SHARED})
            run.update_summary({f"w{writer}-r{round_}": round_, "shared": value})
    except BaseException:  # noqa: BLE001 - the parent reports it
        errors.put(f"writer {writer}: {traceback.format_exc()}")
        raise


def last_values() -> set[str]:
    return {f"w{writer}-r{ROUNDS - 1}" for writer in range(WRITERS)}


def test_writers_setting_the_same_keys_at_once_neither_fail_nor_lose_nor_duplicate(store_url):
    store = Store(store_url)
    run_id, other_run = store.create_run(status="running"), store.create_run()
    context = multiprocessing.get_context("spawn")  # a fresh interpreter each: no engine crosses a fork
    start, errors = context.Barrier(WRITERS), context.Queue()
    writers = [context.Process(target=write, args=(store_url, run_id, other_run, i, start, errors))
               for i in range(WRITERS)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(240)
    reports = []
    while not errors.empty():
        reports.append(errors.get())
    assert not reports, "\n".join(reports)
    assert [p.exitcode for p in writers] == [0] * WRITERS

    with store.session() as s:
        params = {p.key: p for p in s.scalars(select(Param).where(Param.run_id == run_id))}
        tags = dict(s.execute(select(Tag.key, Tag.value).where(Tag.run_id == run_id)).all())
        other_tags = dict(s.execute(select(Tag.key, Tag.value).where(Tag.run_id == other_run)).all())
        artifacts = list(s.scalars(select(Artifact).where(Artifact.run_id == run_id)))
        summary = s.scalar(select(RunRow.summary).where(RunRow.id == run_id))
    own = {f"own{writer}" for writer in range(WRITERS)}
    assert set(params) == {*SHARED, "step_size", *own}
    for key in SHARED:  # one writer's last value, the same one in each table only if it wrote last in each
        assert params[key].value in last_values() and tags[key] in last_values()
    for writer in range(WRITERS):
        assert params[f"own{writer}"].value == tags[f"own{writer}"] == f"w{writer}-r{ROUNDS - 1}"
    step_size = params["step_size"]
    assert int(step_size.value) in {(ROUNDS - 1) * 10 + writer for writer in range(WRITERS)}
    assert step_size.number == float(step_size.value)  # the numeric column follows the new value
    assert set(tags) == {*SHARED, *own}
    assert set(other_tags) == set(SHARED) and set(other_tags.values()) <= last_values()
    assert sorted(a.name for a in artifacts) == sorted(NAMES)  # each (kind, name) once
    for artifact in artifacts:
        assert artifact.meta == {"round": ROUNDS - 1}
        assert artifact.path.removeprefix(f"runs/{run_id}/{artifact.name}-").removesuffix(".pt") in last_values()
    assert summary.pop("shared") in last_values()
    assert summary == {f"w{writer}-r{round_}": round_ for writer in range(WRITERS) for round_ in range(ROUNDS)}


def test_logging_an_artifact_again_points_it_at_the_new_file(store_url):
    store = Store(store_url)
    run = Run(store, store.create_run(status="running"))
    run.log_artifacts([("checkpoint", "best", f"runs/{run.id}/a.pt", None),
                       ("checkpoint", "best", f"runs/{run.id}/b.pt", {"epoch": 2})])  # the last entry wins
    run.log_artifact("checkpoint", "last", f"runs/{run.id}/c.pt")
    run.log_artifact("checkpoint", "last", f"runs/{run.id}/d.pt", {"epoch": 3})
    run.finish()
    found = {a.name: (a.path, a.meta) for a in store.artifacts(run.id)}
    assert found == {"best": (f"runs/{run.id}/b.pt", {"epoch": 2}), "last": (f"runs/{run.id}/d.pt", {"epoch": 3})}


def test_migration_0005_keeps_the_newest_of_duplicate_artifacts(store_url):
    engine = get_engine(store_url, upgrade_schema=False)
    upgrade(engine, "0004")
    rows = [("checkpoint", "best", "old.pt"), ("checkpoint", "best", "new.pt"), ("checkpoint", "last", "l.pt"),
            ("log", "best", "log.txt")]
    with engine.begin() as conn:
        experiment = conn.execute(insert(Experiment).values(name="default").returning(Experiment.id)).scalar_one()
        run_id = conn.execute(insert(RunRow).values(experiment_id=experiment, status="succeeded", config={})
                              .returning(RunRow.id)).scalar_one()
        other = conn.execute(insert(RunRow).values(experiment_id=experiment, status="succeeded", config={})
                             .returning(RunRow.id)).scalar_one()
        for kind, name, path in rows:
            conn.execute(insert(Artifact).values(run_id=run_id, kind=kind, name=name, path=path))
        conn.execute(insert(Artifact).values(run_id=other, kind="checkpoint", name="best", path="other.pt"))
    upgrade(engine, "head")
    with engine.connect() as conn:
        kept = conn.execute(select(Artifact.run_id, Artifact.kind, Artifact.name, Artifact.path)
                            .order_by(Artifact.id)).all()
        assert conn.scalar(select(func.count()).select_from(Artifact)) == 4
    assert [tuple(row) for row in kept] == [
        (run_id, "checkpoint", "best", "new.pt"), (run_id, "checkpoint", "last", "l.pt"),
        (run_id, "log", "best", "log.txt"), (other, "checkpoint", "best", "other.pt")]
