"""The Launch form's Search and the Compare page's study view, through Streamlit's AppTest (no worker: the
trials' runs are ended here as a worker's jobs would end them)."""
from __future__ import annotations

import pytest

from dlx.search import driver
from dlx.search import study as studies
from dlx.store import default_store
from dlx.tracking import start_run
from tests.helpers.pages import open_app, texts
from tests.search.test_study import drive, make_spec


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "0")
    monkeypatch.setenv("DLX_STALE_AFTER", "86400")


def test_the_launch_forms_search_names_a_bad_parameter_counts_trials_and_queues_the_study():
    at = open_app("pages/launch.py")
    at.text_input(key="launch.epochs").set_value("1")
    at.segmented_control(key="launch.mode").set_value("Search").run()
    at.text_area(key="launch.search.space").set_value("lr=log:0:1\nbatch_size=choice:16,32").run()
    error = at.error[0].value
    assert error.startswith("**lr") and "a log range needs LOW above 0" in error
    assert at.button(key="launch.search.submit").disabled
    at.text_area(key="launch.search.space").set_value("lr=log:1e-3:1e-1\nbatch_size=choice:16,32").run()
    at.number_input(key="launch.search.trials").set_value(6)
    at.selectbox(key="launch.search.pruner").set_value("median")
    at.text_input(key="launch.search.name").set_value("from-the-form").run()
    assert "6 trials, 1 at a time" in texts(at)
    at.button(key="launch.search.submit").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Queued search **from-the-form**" in texts(at)
    store = default_store()
    _, spec = studies.load(store, "from-the-form")
    assert (spec.trials, spec.pruner, spec.base["epochs"], spec.base["model"]) == (6, "median", 1, "cnn")
    assert spec.space == {"lr": "log:1e-3:1e-1", "batch_size": "choice:16,32"}
    assert driver.driver_job(store, "from-the-form") is not None


def test_the_study_view_draws_the_search_links_the_best_run_and_stops_and_extends():
    store = default_store()
    driver.submit(store, "viewed", make_spec(trials=4))
    drive(store, "viewed")
    at = open_app("pages/compare.py", study="viewed")
    shown = texts(at)
    for title in ("Optimisation history", "Parameter importance (fANOVA)", "Parallel coordinates", "Slices",
                  "Contour"):
        assert f"**{title}**" in shown
    assert len(at.get("plotly_chart")) >= 5  # the study's, then the page's own curves
    best = driver.trial_runs(store, "viewed")
    assert any("Best: run #" in str(link.label) for link in at.get("page_link")), best
    at.number_input(key="compare.study.more").set_value(2)
    at.button(key="compare.study.extend").click().run()
    assert not at.exception
    assert studies.load(store, "viewed")[1].trials == 6
    at.button(key="compare.study.stop").click().run()
    assert studies.load(store, "viewed")[0].user_attrs[studies.STOPPED_ATTR] is True


def test_a_pruned_run_says_so_on_its_page():
    store = default_store()
    with start_run(config={"dataset": "digits", "model": "mlp"}, store=store, handle_signals=False) as run:
        run.log_metrics({"val_acc": 0.5}, step=1)
    run_id = run.id
    with store.session() as s, s.begin():  # as the tracking ends a trial its pruner stopped
        from db.models import Run as RunRow
        s.get_one(RunRow, run_id).status = "pruned"
        s.get_one(RunRow, run_id).error = "pruned after epoch 1 by the median pruner"
    at = open_app("pages/runs.py", run=str(run_id))
    assert "Its search pruned this trial" in texts(at) and "after epoch 1" in texts(at)
    assert at.title[0].value.endswith(":violet-badge[pruned]")
