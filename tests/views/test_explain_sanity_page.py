"""The Explain page's Sanity checks tab: the button queues the job, its progress shows, then a badge per method
and the randomisation curves."""
from __future__ import annotations

import pytest

from dlx.explain.jobs import SanityTask, find_job, run_sanity
from dlx.explain.models_cache import get_loaded_run
from dlx.store import default_store
from tests.helpers.explain_page import charts, open_page


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    """Nothing picks up the job the page queues: the test finishes it in-process."""
    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "0")


def test_sanity_tab_queues_the_check_then_shows_a_badge_per_method_and_the_curves(trained_run):
    store = default_store()
    at = open_page()
    at.multiselect(key="explain.sanity.methods").set_value(["saliency", "guided_backprop"])
    at.number_input(key="explain.sanity.n").set_value(8).run()
    assert not at.exception, [e.value for e in at.exception]
    at.button(key="explain.sanity.run").click().run()
    task = SanityTask(run_id=trained_run, methods=["saliency", "guided_backprop"], n_samples=8)
    job = find_job(store, task)
    assert job is not None and job.status == "queued" and job.kind == "sanity"
    assert any(p.proto.text.startswith(f"sanity job #{job.id} queued") for p in at.get("progress"))
    run_sanity(get_loaded_run(store, trained_run), task)  # what the worker would do
    store.queue.finish_job(job.id, "succeeded")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    badges = next(m.value for m in at.markdown if "-badge[" in m.value)
    assert "Saliency: " in badges and "Guided Backprop: " in badges
    assert badges.count(":green-badge[") + badges.count(":red-badge[") == 2
    assert any("is above 0.3" in c.value for c in at.caption)  # the threshold, stated
    curves = [f for f in charts(at) if "randomised" in str(f["layout"].get("xaxis", {}).get("title"))]
    assert len(curves) == 2  # cascading and independent
    cascade = next(f for f in curves if "cumulatively" in f["layout"]["xaxis"]["title"]["text"])
    assert len(cascade["data"]) == 2 and cascade["data"][0]["x"][0] == "trained"
    assert cascade["data"][0]["x"][1:] == ["classifier.4", "classifier.2", "features.2", "features.0"]
