"""The Explain page's Projector tab (streamlit.testing): the job's button, the job run as the worker runs it,
then the WebGL scatter of the test split coloured as chosen, a sample's explanation, and the Slices table;
the scatter's slice colouring and a slice's errors from dlx.views."""
from __future__ import annotations

import numpy as np
import pytest

from dlx.explain.models_cache import get_loaded_run
from dlx.explain.slices import CORRECT, in_slice, slice_metrics
from dlx.jobs.kinds import job_function
from dlx.store import default_store
from dlx.views.charts.projector import projector_figure
from dlx.views.projector import HOVER, projector_frame, slice_errors
from tests.helpers.explain_page import charts, open_page
from tests.helpers.processes import train_in_process


@pytest.fixture(scope="module")
def dlx_home(shared_home):
    return shared_home


@pytest.fixture(scope="module")
def digits_run(dlx_home) -> int:
    return train_in_process({"dataset": "digits", "model": "cnn", "epochs": 1,
                             "model_options": {"width": 8, "hidden": 32}})


def _scatter(at) -> dict:
    figure, = [f for f in charts(at) if any(t["type"] == "scattergl" for t in f["data"])]
    return figure


def test_projector_tab_queues_its_job_then_draws_the_split_and_explains_a_sample(digits_run, monkeypatch):
    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "0")
    store = default_store()
    at = open_page(run=str(digits_run))
    at.multiselect(key="explain.projector.projections").set_value(["pca"]).run()
    at.button(key="explain.projector.run").click().run()
    job = store.queue.latest_job(digits_run, "projector")
    assert job is not None and job.status == "queued"
    job_function("projector")(store, job)  # what the worker's job process runs
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    test = get_loaded_run(store, digits_run).bundle.test
    figure = _scatter(at)
    points = [i for t in figure["data"] for i in t["customdata"]]
    assert sorted(p[0] for p in points) == list(range(len(test)))  # every test sample, once, by its index
    hovers = [h for t in figure["data"] for h in t["text"]]
    assert all(h.count("<br>") == 8 and "@" in h for h in hovers)  # its line, then 8 x 8 shades
    at.selectbox(key="explain.projector.colour").set_value(CORRECT).run()
    assert {t["name"] for t in _scatter(at)["data"]} <= {"correct", "wrong"}
    slices, = [d.value for d in at.dataframe if "slice" in d.value.columns]
    assert list(slices["accuracy"]) == sorted(slices["accuracy"]) and set(slices["column"]) == {
        "true class", "predicted class"}
    at.number_input(key="explain.projector.sample.test").set_value(5).run()  # what a click on sample 5 sets
    assert not at.exception, [e.value for e in at.exception]
    titles = [a.get("text", "") for f in charts(at) for a in f["layout"].get("annotations", [])]
    assert any("test #5" in t for t in titles)  # the sample drawn with the page's gallery


def test_a_chosen_slice_is_coloured_and_its_errors_listed(digits_run):
    store = default_store()
    loaded = get_loaded_run(store, digits_run)
    from dlx.explain.projector import ProjectorTask, compute_projection

    result = compute_projection(loaded, ProjectorTask(run_id=digits_run, points=100, projections=["pca"]))
    frame = projector_frame(result, loaded.bundle, "test")
    worst = slice_metrics(frame.drop(columns=HOVER)).iloc[0]
    member = in_slice(frame, worst["column"], worst["slice"])
    figure = projector_figure(result.coordinates["pca"], frame, CORRECT, frame[HOVER], member, "worst")
    other, chosen = figure.data
    assert len(chosen.x) == worst["samples"] == member.sum() and len(other.x) == len(frame) - member.sum()
    errors = slice_errors(frame, member)
    assert len(errors) == worst["errors"] and not errors.index.difference(frame.index[member]).size
    assert list(errors["confidence"]) == sorted(errors["confidence"], reverse=True)
    assert np.isin(np.array([c[0] for c in chosen.customdata]), frame.index[member]).all()
