"""The Explain page's Influence tab (streamlit.testing): the job's button, then proponents and opponents of the
samples shown, the self-influence review and the planted-noise table, and a reviewed example's own proponents."""
from __future__ import annotations

import pytest

from dlx.explain.influence import InfluenceTask, find_job, influence, stored_self_influence
from dlx.store import default_store
from tests.helpers.explain_page import open_page, texts
from tests.helpers.processes import train_in_process


@pytest.fixture(scope="module")
def dlx_home(shared_home):
    return shared_home


@pytest.fixture(scope="module")
def noisy_run(dlx_home) -> int:
    return train_in_process({"dataset": "digits", "model": "cnn", "epochs": 3, "checkpoint_every": 1,
                             "label_noise": 0.1})


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "0")


def test_influence_tab_shows_proponents_opponents_the_review_and_the_noise_table(noisy_run):
    at = open_page()
    at.selectbox(key="explain.pick").set_value("index").run()  # test samples 0, 1, 2, 3
    assert at.button(key="explain.influence.run.test")  # nothing computed yet: the job waits for its button
    influence(default_store(), InfluenceTask(run_id=noisy_run, indices=[0, 1, 2, 3]))  # what the job computes
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    shown = texts(at)
    assert "test sample #0" in shown and "Self-influence review" in shown and "Planted label noise" in shown
    images = at.get("image")
    assert len(images) == 4 * 2 + 1  # proponents and opponents per sample, and the review gallery
    assert len(images[0].proto.imgs) == 8 and len(images[-1].proto.imgs) == 24  # k = 8; the review's 24
    assert any("flipped" in img.caption for img in images[-1].proto.imgs)  # planted noise tops the review
    noise = next(d.value for d in at.dataframe if "AUPRC" in d.value.columns)
    assert list(noise.index) == ["self-influence", "random (expected)"]
    assert noise.loc["self-influence", "recall in top 20%"] > 2 * noise.loc["random (expected)", "recall in top 20%"]
    review = at.selectbox(key="explain.influence.train")
    first = review.options[1]
    review.set_value(int(first.lstrip("#"))).run()
    assert at.button(key="explain.influence.run.train")
    influence(default_store(), InfluenceTask(run_id=noisy_run, indices=[int(first.lstrip("#"))], split="train",
                                             self_influence=False))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert f"Proponents of training example {first}" in texts(at)


def test_layers_chosen_for_tracincp_queue_their_own_job_and_show_their_own_results(noisy_run):
    at = open_page()
    at.selectbox(key="explain.pick").set_value("index").run()
    layers = at.multiselect(key="explain.influence.layers")
    assert layers.options[-1] == "classifier.4" and "features.0" in layers.options and layers.value == []
    layers.set_value(["classifier.4"]).run()
    at.button(key="explain.influence.run.test").click().run()  # TracInCP's results are not the default's
    assert not at.exception, [e.value for e in at.exception]
    task = InfluenceTask(run_id=noisy_run, indices=[0, 1, 2, 3], layers=["classifier.4"])
    job = find_job(default_store(), task)
    assert job is not None and job.payload["layers"] == ["classifier.4"]
    at.button(key=f"job.cancel.{job.id}").click().run()  # the job followed here can be cancelled from here
    assert default_store().queue.get_job(job.id).status == "cancelled"
    assert f"Job #{job.id} cancelled" in [e.value for e in at.error][0]
    assert at.button(key="explain.influence.run.test")  # and queued again
    influence(default_store(), task)  # what that job computes
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "test sample #0" in texts(at) and len(at.get("image")) == 4 * 2 + 1
    assert stored_self_influence(default_store(), noisy_run, ["classifier.4"]) is not None


def test_each_tab_holds_its_own_view(noisy_run):
    """A run with kept checkpoints has every tab; each view sits under its own label (a tab added in the
    middle of the list once drew Over training under Influence's label and Influence under Sanity checks')."""
    at = open_page()
    tabs = {tab.label: tab for tab in at.tabs}
    assert list(tabs) == ["Attributions", "Faithfulness", "Over training", "Influence", "Sanity checks", "What-if",
                          "Projector"]
    owned = {"Over training": "explain.over.submit", "Influence": "explain.influence.run.test",
             "Sanity checks": "explain.sanity.methods", "What-if": "whatif.on", "Projector": "explain.projector.run"}
    for label, tab in tabs.items():
        keys = {widget.key for kind in ("button", "multiselect", "toggle") for widget in tab.get(kind)}
        assert {key for key in owned.values() if key in keys} == ({owned[label]} if label in owned else set()), label
