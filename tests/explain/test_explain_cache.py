"""Caching: loaded models stay in memory, computed explanations in the database, both keyed safely."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch
from sqlalchemy import func, select, text

from db.models import Explanation
from dlx.errors import DlxError
from dlx.explain import explain
from dlx.explain.cache import explain_cached, explanation_key
from dlx.explain.models_cache import get_loaded_run
from dlx.explain.scoring import scores_cached
from dlx.store import Store, default_store


def forward_calls(model) -> list[int]:
    """A counter of the model's forward passes (Captum cannot attribute without one)."""
    calls = [0]
    model.register_forward_hook(lambda module, inputs, output: calls.__setitem__(0, calls[0] + 1))
    return calls


def test_cached_explanation_is_returned_without_calling_captum_again(trained_run):
    loaded = get_loaded_run(default_store(), trained_run)
    x = loaded.bundle.test.x[:4]
    targets = [0, 1, 2, 3]
    first = explain_cached(loaded, x, targets, "integrated_gradients", "blur", {"n_steps": 20})
    assert not first.cached and first.seconds > 0 and first.delta is not None
    calls = forward_calls(loaded.model)
    again = explain_cached(loaded, x, targets, "integrated_gradients", "blur", {"n_steps": 20})
    assert again.cached and calls[0] == 0
    torch.testing.assert_close(again.values, first.values)
    torch.testing.assert_close(again.delta, first.delta)
    assert again.seconds == pytest.approx(first.seconds)  # the time it took when it was computed
    # A third sample is new: only it is computed, the others come from the store.
    mixed = explain_cached(loaded, loaded.bundle.test.x[2:5], [2, 3, 4], "integrated_gradients", "blur",
                           {"n_steps": 20})
    assert not mixed.cached and calls[0] > 0
    torch.testing.assert_close(mixed.values[:2], first.values[2:])


def test_cached_values_equal_a_direct_explanation(trained_run):
    loaded = get_loaded_run(default_store(), trained_run)
    x = loaded.bundle.test.x[:3]
    explain_cached(loaded, x, [1, 1, 1], "occlusion", "zeros")
    stored = explain_cached(loaded, x, [1, 1, 1], "occlusion", "zeros")
    assert stored.cached
    torch.testing.assert_close(stored.values, explain("occlusion", loaded.model, x, 1).values)


def test_cache_key_covers_what_changes_the_result(trained_run):
    loaded = get_loaded_run(default_store(), trained_run)
    x = loaded.bundle.test.x[0]
    key = explanation_key(loaded, x, "integrated_gradients", {}, "zeros", 3)
    assert key == explanation_key(loaded, x, "integrated_gradients", {"n_steps": 50}, "zeros", 3)  # a default
    assert key != explanation_key(loaded, x, "integrated_gradients", {"n_steps": 20}, "zeros", 3)
    assert key != explanation_key(loaded, x, "integrated_gradients", {}, "blur", 3)
    assert key != explanation_key(loaded, x, "integrated_gradients", {}, "zeros", 4)
    assert key != explanation_key(loaded, loaded.bundle.test.x[1], "integrated_gradients", {}, "zeros", 3)
    assert key != explanation_key(loaded, x, "deeplift", {}, "zeros", 3)
    # Saliency uses no baseline: changing it must not recompute.
    assert (explanation_key(loaded, x, "saliency", {}, "zeros", 3)
            == explanation_key(loaded, x, "saliency", {}, "blur", 3))


def test_explanations_are_stored_as_safetensors_rows_per_sample(trained_run):
    store = default_store()
    loaded = get_loaded_run(store, trained_run)
    explain_cached(loaded, loaded.bundle.test.x[:5], [0] * 5, "saliency")
    with store.session() as s:
        rows = s.scalars(select(Explanation).where(Explanation.run_id == trained_run)).all()
    assert len(rows) == 5 and all(row.method == "saliency" for row in rows)
    assert all(row.data[8:9] == b"{" for row in rows)  # safetensors: an 8-byte length, then a JSON header
    assert rows[0].meta["params"] == {"abs": True} and rows[0].meta["target"] == 0


def test_loaded_model_is_kept_until_its_checkpoint_changes(trained_run):
    store = default_store()
    first = get_loaded_run(store, trained_run)
    assert get_loaded_run(store, trained_run) is first
    assert trained_run in store.checkpointed_run_ids()
    path = store.checkpoint_path(trained_run)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    reloaded = get_loaded_run(store, trained_run)
    assert reloaded is not first
    assert reloaded.checkpoint_id == first.checkpoint_id  # same bytes, same cache keys


def test_run_without_a_checkpoint_gives_a_clear_message():
    store = default_store()
    run_id = default_store().create_run({"dataset": "digits", "model": "cnn"}, status="queued")
    with pytest.raises(DlxError, match="has no 'best' checkpoint.*status queued.*finished at least one epoch"):
        get_loaded_run(store, run_id)
    with pytest.raises(DlxError, match="there is no run #999"):
        get_loaded_run(store, 999)
    assert run_id not in store.checkpointed_run_ids()


def test_scores_of_the_same_samples_are_computed_once(trained_run):
    store = default_store()
    loaded = get_loaded_run(store, trained_run)
    x = loaded.bundle.test.x[:3]
    assert scores_cached(loaded, x, [0, 1, 2], ["saliency"], compute=False) is None
    scores = scores_cached(loaded, x, [0, 1, 2], ["saliency"], sensitivity=False)
    calls = forward_calls(loaded.model)
    again = scores_cached(loaded, x, [0, 1, 2], ["saliency"], sensitivity=False, compute=False)
    assert calls[0] == 0 and again.table() == scores.table()
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Explanation).where(Explanation.method == "scores")) == 1


def test_deleting_a_run_deletes_its_cached_explanations(trained_run):
    store = default_store()
    loaded = get_loaded_run(store, trained_run)
    explain_cached(loaded, loaded.bundle.test.x[:2], [0, 0], "saliency")
    store.delete_run(trained_run)
    with default_store().session() as s:
        assert s.scalar(select(func.count()).select_from(Explanation)) == 0


def test_a_batch_of_new_explanations_is_stored_in_one_transaction(trained_run):
    from sqlalchemy import event

    from db.engine import get_engine

    store = default_store()
    loaded = get_loaded_run(store, trained_run)
    x = loaded.bundle.test.x[:6]
    commits = []
    engine = get_engine()
    listener = lambda connection: commits.append(1)  # noqa: E731
    event.listen(engine, "commit", listener)
    try:
        fresh = explain_cached(loaded, x, [0] * 6, "saliency", "zeros")
    finally:
        event.remove(engine, "commit", listener)
    assert not fresh.cached and len(commits) == 1
    with store.session() as s:
        assert s.scalar(select(func.count()).select_from(Explanation).where(Explanation.method == "saliency")) == 6
    again = explain_cached(loaded, x, [0] * 6, "saliency", "zeros")
    assert again.cached
    torch.testing.assert_close(again.values, fresh.values)


# The page's store in the background (dlx.store.explanations): seen at once, written later, never lost.

def saliency_entry(value: float) -> tuple[dict, dict[str, torch.Tensor]]:
    return {"seconds": 0.01}, {"values": torch.full((1, 8, 8), value)}


def stored_keys(url: str) -> list[str]:
    """The cache's keys as a second Store object on the same database reads them (it sees no pending entry)."""
    with Store(url).connect() as conn:
        return list(conn.execute(select(Explanation.key).order_by(Explanation.key)).scalars())


def test_an_entry_saved_without_waiting_is_seen_at_once_and_written_after_a_failed_write(store_url):
    store = Store(store_url)
    run_id = store.create_run({"dataset": "digits", "model": "cnn"})
    failures = threading.Event()
    handler = logging.Handler()
    handler.emit = lambda record: failures.set() if "failed" in record.getMessage() else None
    logging.getLogger("dlx.store.explanations").addHandler(handler)
    try:
        with store.engine.begin() as conn:  # another connection takes the table away: every write fails
            conn.execute(text("ALTER TABLE explanations RENAME TO explanations_away"))
        store.explanations.save_many(run_id, {"saliency": {"a" * 64: saliency_entry(1.0)}}, wait=False)
        meta, tensors = store.explanations.load_many(["a" * 64])["a" * 64]  # from memory: the table is gone
        assert meta == {"seconds": 0.01} and tensors["values"].sum() == 64
        assert failures.wait(60), "the writer never tried to write"
        assert "a" * 64 in store.explanations.load_many(["a" * 64])  # still pending after the failure
        with store.engine.begin() as conn:
            conn.execute(text("ALTER TABLE explanations_away RENAME TO explanations"))
        store.explanations.flush(timeout=60)  # the writer's retry
    finally:
        logging.getLogger("dlx.store.explanations").removeHandler(handler)
    assert stored_keys(store_url) == ["a" * 64]
    stored = Store(store_url).explanations.load("a" * 64)
    torch.testing.assert_close(stored[1]["values"], torch.ones(1, 8, 8))


def test_entries_saved_without_waiting_are_written_when_the_process_exits(store_url):
    code = textwrap.dedent("""
        import sys, torch
        from dlx.store import Store
        store = Store(sys.argv[1])
        run_id = store.create_run({"dataset": "digits", "model": "cnn"})
        store.explanations.save_many(run_id, {"saliency": {k * 64: ({}, {"values": torch.ones(3)}) for k in "bc"}},
                                     wait=False)
        """)  # and exits at once: the atexit hook writes them
    subprocess.run([sys.executable, "-c", code, store_url], check=True, timeout=120)
    assert stored_keys(store_url) == ["b" * 64, "c" * 64]


@pytest.mark.slow  # two processes load a model: about 15 s per store on 2 cores
def test_two_processes_explaining_the_same_sample_at_once_store_one_row(store_url, trained_run, dlx_home):
    go = dlx_home / "go"
    code = textwrap.dedent("""
        import sys, time
        from pathlib import Path
        from dlx.explain.image.gallery import build_gallery
        from dlx.explain.models_cache import get_loaded_run
        from dlx.store import Store, default_store
        loaded = get_loaded_run(default_store(), int(sys.argv[1]))
        x = loaded.bundle.test.x[:1]
        Path(sys.argv[2] + ".ready" + sys.argv[3]).touch()
        while not Path(sys.argv[2]).exists():
            time.sleep(0.005)
        build_gallery(loaded, x, ["#0"], ["saliency", "integrated_gradients"])
        """)  # the page's path, stored by the background writer as the process exits
    processes = [subprocess.Popen([sys.executable, "-c", code, str(trained_run), str(go), str(i)]) for i in range(2)]
    try:
        while not all(Path(f"{go}.ready{i}").exists() for i in range(2)):
            assert all(p.poll() is None for p in processes), "a process ended before explaining"
            time.sleep(0.05)
        go.touch()
        assert [p.wait(120) for p in processes] == [0, 0]
    finally:
        for p in processes:
            p.kill()
    with Store(store_url).connect() as conn:
        methods = conn.execute(select(Explanation.method).where(Explanation.run_id == trained_run)).scalars().all()
    assert sorted(methods) == ["integrated_gradients", "saliency"]


def test_pending_entries_of_a_deleted_run_do_not_hold_back_the_others(store_url):
    store = Store(store_url)
    kept, deleted = (store.create_run({"dataset": "digits", "model": "cnn"}) for _ in range(2))
    store.delete_run(deleted)
    store.explanations.save_many(deleted, {"saliency": {"d" * 64: saliency_entry(1.0)}}, wait=False)
    store.explanations.save_many(kept, {"saliency": {"e" * 64: saliency_entry(2.0)}}, wait=False)
    store.explanations.flush(timeout=60)  # the batch fails on the deleted run's key; the rest is written
    assert stored_keys(store_url) == ["e" * 64]


def test_a_lookup_reads_stored_entries_among_any_number_of_keys(store_url):
    """The lookup runs its own compiled SQL on a pooled DB-API connection: JSON meta and safetensors
    bytes come back as the columns' types give them, for one key or many, present or not."""
    store = Store(store_url)
    run_id = store.create_run({"dataset": "digits", "model": "cnn"})
    entries = {f"{k:064x}": ({"seconds": k / 10, "params": {"n_steps": k}, "signed": k % 2 == 0},
                             {"values": torch.full((2, 3), float(k)), "delta": torch.tensor([k / 100])})
               for k in range(1, 6)}
    store.explanations.save_many(run_id, {"integrated_gradients": entries})
    reader = Store(store_url).explanations  # nothing pending in this one: every entry from the database
    absent = ["f" * 64, "e" * 64]
    for keys in (list(entries)[:1], absent[:1], [*absent, *list(entries)[::2]], [*list(entries), *absent]):
        found = reader.load_many(keys)
        assert sorted(found) == sorted(k for k in keys if k in entries)
        for key, (meta, tensors) in found.items():
            assert meta == entries[key][0]
            assert tensors.keys() == {"values", "delta"}
            for name, value in tensors.items():
                torch.testing.assert_close(value, entries[key][1][name])
