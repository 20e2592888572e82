"""The tracking API keeps every point: at the end of a block, on errors, on its timer, on SIGTERM."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from db.models import Metric, utcnow
from dlx.errors import DlxError
from dlx.store import default_store
from dlx.tracking import Run, start_run
from tests.helpers.processes import wait_for

pytestmark = pytest.mark.usefixtures("store_url")  # every test on SQLite and PostgreSQL


def stored_points(run_id: int, key: str | None = None) -> int:
    stmt = select(func.count()).select_from(Metric).where(Metric.run_id == run_id)
    if key is not None:
        stmt = stmt.where(Metric.key == key)
    with default_store().session() as s:
        return s.scalar(stmt)


def buffered_run(**options) -> Run:
    """A running run whose timer effectively never fires, so only the other flush paths write."""
    store = default_store()
    run_id = store.create_run({"dataset": "digits"}, status="running")
    return Run(store, run_id, **{"flush_interval": 3600.0, **options})


def test_first_points_are_written_at_once_so_pages_draw_them():
    store = default_store()
    run = buffered_run()
    with run:
        run.log_metrics({"loss": 2.3, "acc": 0.1}, step=0)
        assert stored_points(run.id) == 2  # no wait for the (hour-long) timer
        run.log_series("loss", [2.2, 2.1, 2.0], first_step=1)
        assert stored_points(run.id) == 2  # later points are buffered
    assert store.metric_history(run.id, "loss").steps.tolist() == [0, 1, 2, 3]
    assert store.metric_history(run.id, "loss").values.tolist() == [2.3, 2.2, 2.1, 2.0]


def test_points_are_buffered_and_written_when_the_block_ends():
    store = default_store()
    run = buffered_run()
    with run:
        for step in range(300):
            run.log_metrics({"loss": 1 / (step + 1), "acc": step / 300, "lr": 0.1}, step=step)
        assert stored_points(run.id) == 3  # only the first step's points: no round trip per point
    assert stored_points(run.id) == 900
    assert store.get_run(run.id).status == "succeeded"
    assert store.metric_history(run.id, "acc").steps.tolist() == list(range(300))


def test_full_buffer_is_written_without_waiting():
    run = buffered_run(flush_size=100)
    with run:
        for step in range(250):
            run.log_metric("loss", 1.0, step=step)
        # the first point at once, then the full buffers by the background thread (not its hour-long timer)
        wait_for(lambda: stored_points(run.id) >= 201, timeout=30, message="the full buffers' writes")
    assert stored_points(run.id) == 250


def test_a_logging_line_writes_itself_when_the_background_writer_falls_a_buffer_behind():
    run = buffered_run(flush_size=100)
    with run:
        run.log_metric("loss", 1.0, step=0)  # the first point, at once
        with run._write_lock:  # the background writer held up (a slow disk): its write waits
            for step in range(1, 200):
                run.log_metric("loss", 1.0, step=step)
            assert len(run._buffer) == 199  # full, the writer woken, and still waiting
            writing = threading.Thread(target=run.log_metric, args=("loss", 1.0, 200))
            writing.start()  # two buffers' worth: this line writes them itself, once the writer lets go
            writing.join(0.2)
            assert writing.is_alive()
        writing.join(30)
        assert stored_points(run.id) >= 201 and len(run._buffer) < 100
    assert stored_points(run.id) == 201


def test_exception_fails_the_run_with_its_text_and_keeps_metrics():
    with pytest.raises(ValueError), start_run(name="boom", handle_signals=False) as run:
        for step in range(50):
            run.log_metric("loss", 0.5, step=step)
        raise ValueError("shapes do not match: 3 vs 4")
    info = default_store().get_run(run.id)
    assert info.status == "failed"
    assert info.error == "ValueError: shapes do not match: 3 vs 4"
    assert info.ended_at is not None
    assert stored_points(run.id, "loss") == 50


def test_timer_writes_points_before_the_block_ends():
    store = default_store()
    run = Run(store, store.create_run({"dataset": "digits"}, status="running"), flush_interval=0.2)
    with run:
        for step in range(40):
            run.log_metric("loss", 0.1, step=step)
        wait_for(lambda: stored_points(run.id) == 40, timeout=30, message="the timer's flush")
        assert store.get_run(run.id).status == "running"
    assert stored_points(run.id) == 40


def test_failed_write_keeps_points_for_the_next_flush():
    store = default_store()
    run = buffered_run()
    for step in range(30):
        run.log_metric("loss", 0.5, step=step)
    with store.session() as s, s.begin():  # the table is briefly unavailable: the write fails
        s.execute(text("ALTER TABLE metrics RENAME TO metrics_away"))
    with pytest.raises((OperationalError, ProgrammingError)):  # SQLite's and PostgreSQL's "no such table"
        run.flush()
    with store.session() as s, s.begin():
        s.execute(text("ALTER TABLE metrics_away RENAME TO metrics"))
    run.log_metric("loss", 0.25, step=30)
    run.finish()
    assert store.metric_history(run.id, "loss").steps.tolist() == list(range(31))


def test_a_transaction_writes_its_edits_together_or_not_at_all():
    store = default_store()
    run = buffered_run()
    with run.transaction():
        run.log_params({"lr": 0.1})
        run.update_summary({"total_steps": 10}, device="cpu")
    info = store.get_run(run.id)
    assert info.params == {"lr": "0.1"} and info.summary == {"total_steps": 10} and info.device == "cpu"
    with pytest.raises(RuntimeError), run.transaction():
        run.log_params({"lr": 0.2})
        run.update_summary({"total_steps": 20})
        raise RuntimeError("the block fails: nothing of it is kept")
    info = store.get_run(run.id)
    assert info.params == {"lr": "0.1"} and info.summary == {"total_steps": 10}
    run.finish()


def test_a_transaction_is_this_threads_and_a_nested_one_joins_it():
    store = default_store()
    run = buffered_run()
    other = threading.Thread(target=lambda: run.set_tags({"from": "thread"}))  # writes on its own
    with pytest.raises(RuntimeError), run.transaction():
        run.log_params({"lr": 0.1})
        with run.transaction():  # part of the outer block: rolled back with it
            run.set_tags({"stage": "inner"})
        other.start()  # on SQLite it waits for the block's lock, then writes
        raise RuntimeError("the block fails")
    other.join(60)
    assert not other.is_alive()
    info = store.get_run(run.id)
    assert info.params == {} and info.tags == {"from": "thread"}
    run.finish()


def test_edits_with_points_are_written_with_the_first_points():
    store = default_store()
    run = buffered_run()
    with run.transaction(with_points=True):
        run.log_params({"lr": 0.1})
        run.update_summary({"total_steps": 10}, device="cpu")
    run.update_summary({"note": "direct"})  # outside the block: written at once
    info = store.get_run(run.id)
    assert info.params == {} and info.summary == {"note": "direct"} and info.device is None
    run.log_metric("loss", 1.0, step=0)  # the first point: written at once, with the waiting edits
    info = store.get_run(run.id)
    assert info.params == {"lr": "0.1"} and info.device == "cpu"
    assert info.summary == {"note": "direct", "total_steps": 10}  # merged with what was there when written
    assert stored_points(run.id) == 1
    run.finish()


def test_edits_with_points_are_written_by_the_timer_without_points_and_kept_while_unavailable():
    store = default_store()
    run = Run(store, store.create_run({"dataset": "digits"}, status="running"), flush_interval=0.2)
    with store.session() as s, s.begin():  # the params table is briefly unavailable
        s.execute(text("ALTER TABLE params RENAME TO params_away"))
    with run.transaction(with_points=True):
        run.log_params({"lr": 0.1})
        run.update_summary({"total_steps": 10})
    time.sleep(1.0)  # several timer flushes fail meanwhile
    with store.session() as s, s.begin():
        s.execute(text("ALTER TABLE params_away RENAME TO params"))
    wait_for(lambda: store.get_run(run.id).params == {"lr": "0.1"}, timeout=30, message="the timer's flush")
    assert store.get_run(run.id).summary == {"total_steps": 10}
    run.finish()
    assert store.get_run(run.id).status == "succeeded"


def run_script(body: str) -> subprocess.Popen:
    """A user script in its own Python process, writing to this test's data directory."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(body)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ))


def test_script_that_raises_fails_its_run_and_keeps_points():
    script = run_script("""
        from dlx.tracking import start_run

        with start_run(name="crashing script") as run:
            print(run.id, flush=True)
            for step in range(1000):
                run.log_metrics({"loss": 1.0 / (step + 1), "acc": 0.5}, step=step)
            raise RuntimeError("the script crashed")
    """)
    out, err = script.communicate(timeout=120)
    assert script.returncode == 1, err
    assert "RuntimeError: the script crashed" in err
    run_id = int(out.split()[0])
    info = default_store().get_run(run_id)
    assert info.status == "failed"
    assert info.error == "RuntimeError: the script crashed"
    assert stored_points(run_id) == 2000


def test_sigterm_cancels_a_script_run_and_keeps_points():
    store = default_store()
    script = run_script("""
        import time
        from dlx.tracking import start_run

        with start_run(name="long script") as run:
            for step in range(500):
                run.log_metric("loss", 1.0 / (step + 1), step=step)
            print(run.id, flush=True)
            while True:
                time.sleep(0.05)
    """)
    run_id = int(script.stdout.readline())
    script.send_signal(signal.SIGTERM)
    _, err = script.communicate(timeout=60)
    assert script.returncode != 0
    assert "Cancelled" in err
    info = store.get_run(run_id)
    assert info.status == "cancelled"
    assert info.error == "cancelled by request"
    assert stored_points(run_id) == 500
    assert store.metric_history(run_id, "loss").steps.tolist() == list(range(500))


def test_script_that_never_closes_its_run_keeps_points_at_exit():
    script = run_script("""
        from dlx.tracking import start_run

        run = start_run(name="forgetful script")
        print(run.id, flush=True)
        for step in range(120):
            run.log_metric("loss", 0.5, step=step)
    """)
    out, err = script.communicate(timeout=120)
    assert script.returncode == 0, err
    assert stored_points(int(out)) == 120


# -- bad points fail where they are logged; nothing they do blocks later writes ------------------
BAD_POINTS = {
    "tuple key": (("loss", 1), 0.5, 1),
    "None key": (None, 0.5, 1),
    "empty key": ("", 0.5, 1),
    "unencodable key": ("loss\ud800", 0.5, 1),
    "key too long": ("k" * 251, 0.5, 1),
    "text value": ("loss", "0.5", 1),
    "None value": ("loss", None, 1),
    "complex value": ("loss", 1j, 1),
    "array value": ("loss", np.array([0.5, 0.6]), 1),
    "step past 64 bits": ("loss", 0.5, 2**63),
    "step below 64 bits": ("loss", 0.5, -(2**63) - 1),
    "float step": ("loss", 0.5, 1.5),
    "text step": ("loss", 0.5, "1"),
    "bool step": ("loss", 0.5, True),
}


@pytest.mark.parametrize("key, value, step", list(BAD_POINTS.values()), ids=list(BAD_POINTS))
def test_a_bad_point_is_refused_in_the_callers_line_and_later_points_are_kept(key, value, step):
    store = default_store()
    run = buffered_run()
    with run:
        run.log_metric("loss", 1.0, step=0)  # written at once: what follows is buffered
        with pytest.raises((TypeError, ValueError)):
            run.log_metric(key, value, step=step)
        with pytest.raises((TypeError, ValueError)):
            run.log_metrics({"acc": 0.5, key: value}, step=step)  # no point of a refused call is kept
        with pytest.raises((TypeError, ValueError)):
            run.log_series(key, [value, value], first_step=step)
        for later in range(2, 6):
            run.log_metrics({"loss": 1.0 / later, "acc": 0.9}, step=later)
    info = store.get_run(run.id)
    assert info.status == "succeeded", info.error
    assert store.metric_keys(run.id) == ["acc", "loss"]
    assert store.metric_history(run.id, "loss").steps.tolist() == [0, 2, 3, 4, 5]
    assert store.metric_history(run.id, "acc").steps.tolist() == [2, 3, 4, 5]


def test_a_series_running_past_64_bits_is_refused_whole():
    run = buffered_run()
    with pytest.raises(ValueError, match="64-bit"):
        run.log_series("loss", [0.1, 0.2, 0.3], first_step=2**63 - 2)
    run.finish()
    assert stored_points(run.id) == 0


def test_numpy_and_tensor_points_are_stored_as_plain_numbers():
    store = default_store()
    import torch

    run = buffered_run()
    with run:
        run.log_metric("loss", np.float32(0.5), step=np.int64(3))
        run.log_metrics({"loss": torch.tensor(0.25), "acc": np.float64(0.75), "done": True}, step=torch.tensor(4))
        run.log_series("loss", np.array([0.2, 0.1]), first_step=np.int32(5))
        run.log_params({"seed": np.int64(7), "widths": np.array([8, 16]), "name": "cnn"})
    with default_store().session() as s:
        postgres = s.bind.dialect.name == "postgresql"
        typeof = "pg_typeof" if postgres else "typeof"  # the type of the stored value, not the column's
        step_types = set(s.scalars(text(f"SELECT DISTINCT CAST({typeof}(step) AS TEXT) FROM metrics WHERE run_id = :r"),
                                   {"r": run.id}))
        value_types = set(s.scalars(text(f"SELECT DISTINCT CAST({typeof}(value) AS TEXT) FROM metrics WHERE run_id = :r"),
                                    {"r": run.id}))
    assert step_types == {"bigint" if postgres else "integer"}
    assert value_types == {"double precision" if postgres else "real"}
    assert store.metric_history(run.id, "loss").steps.tolist() == [3, 4, 5, 6]
    assert store.metric_history(run.id, "loss").values.tolist() == [0.5, 0.25, 0.2, 0.1]
    assert store.metric_history(run.id, "done").values.tolist() == [1.0]
    params = store.get_run(run.id).params
    assert params == {"seed": "7", "widths": "[8, 16]", "name": "cnn"}


def test_numpy_steps_export_as_numbers(capsys):
    from dlx.cli import main

    run = buffered_run()
    with run:
        for step in np.arange(3):
            run.log_metric("loss", 0.5, step=step)
    assert main(["export", str(run.id), "--format", "json"]) == 0
    assert '"step": [0, 1, 2]' in capsys.readouterr().out


@pytest.mark.parametrize("params", [{("a", 1): 1}, {"": 1}, {"lr": object()}, {"note": "x\udcff"}])
def test_bad_params_are_refused_with_the_key_named(params):
    run = buffered_run()
    with pytest.raises((TypeError, ValueError), match="param"):
        run.log_params(params)
    run.log_params({"lr": 0.1})
    run.finish()
    assert default_store().get_run(run.id).params == {"lr": "0.1"}


def refuse_key(key: str) -> None:
    """The database itself refuses one key's rows (as PostgreSQL refuses a value it cannot store)."""
    with default_store().session() as s, s.begin():
        if s.bind.dialect.name == "postgresql":
            s.execute(text("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                           "$$ BEGIN RAISE EXCEPTION 'refused by the database'; END $$"))
            s.execute(text(f"CREATE TRIGGER refuse BEFORE INSERT ON metrics FOR EACH ROW "
                           f"WHEN (NEW.key = '{key}') EXECUTE FUNCTION refuse()"))
        else:
            s.execute(text(f"CREATE TRIGGER refuse BEFORE INSERT ON metrics WHEN NEW.key = '{key}' "
                           "BEGIN SELECT RAISE(ABORT, 'refused by the database'); END"))


def test_rows_the_database_refuses_are_dropped_and_the_rest_written(caplog):
    store = default_store()
    refuse_key("bad")
    run = buffered_run()
    with run:
        run.log_metric("loss", 1.0, step=0)
        for step in range(1, 40):
            run.log_metrics({"loss": 1.0 / step, **({"bad": 0.0} if step in (7, 21) else {})}, step=step)
        run.flush()  # refused rows dropped; the good ones around them written
        assert stored_points(run.id) == 40
        run.log_metric("loss", 0.01, step=40)
    assert store.get_run(run.id).status == "succeeded"
    assert store.metric_history(run.id, "loss").steps.tolist() == list(range(41))
    assert stored_points(run.id, "bad") == 0
    assert caplog.text.count("dropped the metric point") == 2


def test_finish_records_a_final_status_even_when_the_points_cannot_be_written():
    store = default_store()
    run = buffered_run()
    run.log_metric("loss", 0.5, step=0)
    for step in range(1, 10):
        run.log_metric("loss", 0.5, step=step)
    with store.session() as s, s.begin():  # the metrics table is gone for good
        s.execute(text("ALTER TABLE metrics RENAME TO metrics_away"))
    run.finish()
    info = store.get_run(run.id)
    assert info.status == "failed"
    assert "9 metric points could not be written" in info.error
    assert info.ended_at is not None


def test_a_final_status_is_never_overwritten_by_a_late_finish():
    store = default_store()
    run = start_run(name="late", handle_signals=False)
    with store.session() as s, s.begin():  # someone (a reaper) ended it first
        s.execute(text("UPDATE runs SET status = 'failed', error = 'reaped' WHERE id = :r"), {"r": run.id})
    run.log_metric("loss", 0.5, step=0)
    run.finish("succeeded")
    info = store.get_run(run.id)
    assert (info.status, info.error) == ("failed", "reaped")
    assert stored_points(run.id) == 1  # its points still count


def end_from_outside(run_id: int, status: str = "failed") -> None:
    """What a reaper or a cancel does: the run's row ended by another writer, now."""
    time.sleep(0.002)  # the points logged before lie strictly before the end
    with default_store().session() as s, s.begin():
        s.execute(text("UPDATE runs SET status = :s, ended_at = :t, error = 'reaped' WHERE id = :r"),
                  {"s": status, "t": utcnow(), "r": run_id})
    time.sleep(0.002)


def test_a_point_logged_after_the_block_ended_is_refused_naming_the_run_and_its_status():
    with start_run(name="done", handle_signals=False) as run:
        run.log_metric("loss", 0.5, step=0)
        run.log_metric("loss", 0.4, step=1)  # buffered: written when the block ends
    with pytest.raises(DlxError, match=rf"run #{run.id} has already ended \(succeeded\)"):
        run.log_metric("loss", 0.3, step=2)
    with pytest.raises(DlxError, match="refused"):
        run.log_series("loss", [0.2, 0.1], first_step=3)
    assert default_store().metric_history(run.id, "loss").steps.tolist() == [0, 1]


def test_a_fresh_handle_on_a_finished_run_refuses_its_points():
    store = default_store()
    with start_run(name="done", handle_signals=False) as run:
        run.log_metric("loss", 0.5, step=0)
    handle = Run(store, run.id)
    with pytest.raises(DlxError, match=rf"run #{run.id} has already ended \(succeeded\)"):
        handle.log_metric("loss", 0.1, step=1)
    handle.finish()
    assert store.get_run(run.id).status == "succeeded"
    with pytest.raises(DlxError, match=rf"run #{run.id} has already ended \(succeeded\)"):
        start_run(run_id=run.id, handle_signals=False)
    assert stored_points(run.id) == 1


def test_points_logged_before_an_outside_end_land_and_later_ones_are_refused(caplog):
    store = default_store()
    run = buffered_run()
    run.log_metric("loss", 1.0, step=0)  # the first point: written at once
    run.log_metric("loss", 0.9, step=1)  # buffered
    end_from_outside(run.id)
    run.log_metric("loss", 0.8, step=2)  # logged after the end, buffered before anyone knows
    with pytest.raises(DlxError, match=rf"run #{run.id} has already ended \(failed\)"):
        run.flush()
    assert store.metric_history(run.id, "loss").steps.tolist() == [0, 1]  # step 1 still landed
    assert "refused 1 metric points logged after it ended" in caplog.text
    with pytest.raises(DlxError, match="has already ended"):
        run.log_metric("loss", 0.7, step=3)
    run.finish("succeeded")  # its status stays the one it ended with
    info = store.get_run(run.id)
    assert (info.status, info.error) == ("failed", "reaped")
    assert stored_points(run.id) == 2
    assert store.latest_metrics(run.id)["loss"] == (1, 0.9)  # the summary follows what was kept


def test_a_run_ended_from_outside_refuses_its_scripts_next_point_in_the_scripts_line():
    run = buffered_run()
    run.log_metric("loss", 1.0, step=0)
    end_from_outside(run.id, "cancelled")
    run._heartbeat()  # what the background thread does every 2 s
    with pytest.raises(DlxError, match=rf"run #{run.id} has already ended \(cancelled\)"):
        run.log_metric("loss", 0.9, step=1)
    run.finish()
    assert stored_points(run.id) == 1


def test_start_run_refuses_a_run_that_already_ended():
    store = default_store()
    run_id = store.create_run({"dataset": "digits"}, status="cancelled")
    with pytest.raises(DlxError, match="already ended"):
        start_run(run_id=run_id, handle_signals=False)
    assert store.get_run(run_id).status == "cancelled"


def test_a_scripts_run_is_created_running_with_its_start_owner_and_one_experiment():
    store = default_store()
    runs = [start_run(experiment="fresh-experiment", handle_signals=False) for _ in range(2)]
    with store.session() as s:
        rows = s.execute(text("SELECT status, started_at, heartbeat_at, owner, experiment_id FROM runs "
                              "WHERE id IN (:a, :b)"), {"a": runs[0].id, "b": runs[1].id}).all()
        experiments = s.scalar(text("SELECT count(*) FROM experiments WHERE name = 'fresh-experiment'"))
    assert experiments == 1
    assert len({row.experiment_id for row in rows}) == 1
    for row in rows:
        assert row.status == "running" and row.started_at is not None and row.heartbeat_at is not None
        assert row.owner == f"{os.getpid()}@{os.uname().nodename}"
    for run in runs:
        run.finish()
    assert [store.get_run(run.id).status for run in runs] == ["succeeded", "succeeded"]
