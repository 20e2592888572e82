"""The Projector's library: embeddings equal each model's own penultimate activations (image, table, text),
projections are seeded and stable, slice metrics equal a pandas groupby, and the projector job computes once
per run and checkpoint through the job-kind registry."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import dlx.explain
from dlx.data import DatasetMeta
from dlx.errors import DlxError
from dlx.explain.models_cache import get_loaded_run
from dlx.explain.projector import ProjectorTask, find_job, project, stored_projection, submit_task, vectors_of
from dlx.explain.slices import CONFIDENCE, CORRECT, PREDICTED, TRUE, prediction_frame, slice_metrics, table_columns
from dlx.jobs.kinds import job_function
from dlx.store import default_store
from dlx.training.checkpoints import load_run_model
from dlx.training.train import tokenize_bundle
from tests.helpers.processes import train_in_process


@pytest.fixture(scope="module")
def dlx_home(shared_home):
    return shared_home


@pytest.fixture(scope="module")
def runs(dlx_home) -> dict[str, int]:
    return {"image": train_in_process({"dataset": "digits", "model": "cnn", "epochs": 1,
                                       "model_options": {"width": 8, "hidden": 32}}),
            "table": train_in_process({"dataset": "wine", "model": "mlp", "epochs": 2}),
            "text": train_in_process({"dataset": "sentiment", "model": "transformer", "epochs": 1, "batch_size": 64,
                                      "model_options": {"layers": 1, "heads": 2, "hidden": 16, "max_length": 16},
                                      "device": "cpu"})}


@torch.no_grad()
def _penultimate_by_hand(kind: str, run_id: int) -> tuple[np.ndarray, np.ndarray]:
    """The trained model (not the explainer's copy) run by hand up to its final Linear layer, and its logits."""
    store = default_store()
    model, config = load_run_model(store, run_id, "best", torch.device("cpu"))
    model.eval()
    test = get_loaded_run(store, run_id).bundle.test
    if kind == "image":
        hidden = model.classifier[:-1](model.features(test.x))
        logits = model.classifier[-1](hidden)
    elif kind == "table":
        hidden = model[:-1](test.x)
        logits = model[-1](hidden)
    else:
        bundle = tokenize_bundle(get_loaded_run(store, run_id).bundle, model)
        ids, mask = bundle.test.x, bundle.test.attention_mask
        hidden = model.pool(model.encoder(input_ids=ids, attention_mask=mask).last_hidden_state, mask)
        logits = model.head(hidden)
    return hidden.numpy(), logits.numpy()


@pytest.mark.parametrize("kind", ["image", "table", "text"])
def test_embeddings_equal_the_models_own_penultimate_activations(runs, kind):
    frame = dlx.explain.embeddings(runs[kind])
    hidden, logits = _penultimate_by_hand(kind, runs[kind])
    assert list(frame.index) == list(range(len(hidden))) and frame.index.name == "sample"
    np.testing.assert_allclose(vectors_of(frame), hidden, rtol=1e-4, atol=1e-5)
    assert (frame["predicted"].to_numpy() == logits.argmax(1)).all()
    test_y = get_loaded_run(default_store(), runs[kind]).bundle.test.y.numpy()
    assert (frame["label"].to_numpy() == test_y).all()
    assert (frame["correct"] == (frame["label"] == frame["predicted"])).all()
    probs = torch.softmax(torch.as_tensor(logits), 1).max(1).values.numpy()
    np.testing.assert_allclose(frame["confidence"].to_numpy(), probs, rtol=1e-4)


def test_a_named_layers_embedding_is_its_output_flattened(runs):
    frame = dlx.explain.embeddings(runs["image"], split="val", layer="features")
    model, _ = load_run_model(default_store(), runs["image"], "best", torch.device("cpu"))
    val = get_loaded_run(default_store(), runs["image"]).bundle.val
    with torch.no_grad():
        expected = model.eval().features(val.x).flatten(1).numpy()
    np.testing.assert_allclose(vectors_of(frame), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(DlxError, match="layer: 'nope' is not a layer"):
        dlx.explain.embeddings(runs["image"], layer="nope")


def test_projections_are_seeded_and_stable(runs):
    vectors = vectors_of(dlx.explain.embeddings(runs["image"]))[:80]
    np.testing.assert_array_equal(project(vectors, "pca"), project(vectors, "pca"))
    first, again = project(vectors, "umap", seed=3), project(vectors, "umap", seed=3)
    assert first.shape == (80, 2)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, project(vectors, "umap", seed=4))
    np.testing.assert_array_equal(project(vectors[:40], "tsne", seed=1), project(vectors[:40], "tsne", seed=1))
    with pytest.raises(DlxError, match="projection: unknown projection 'lda'"):
        project(vectors, "lda")


def test_slice_metrics_equal_a_pandas_groupby_on_the_predictions():
    rng = np.random.default_rng(0)
    meta = DatasetMeta("toy", "table", ("a", "b", "c"), (2,), ("size", "colour=red", "colour=blue"))
    probs = rng.dirichlet(np.ones(3), 500).astype(np.float32)
    labels = rng.integers(0, 3, 500)
    x = np.column_stack([rng.integers(1, 4, 500), np.eye(2)[rng.integers(0, 2, 500)]]).astype(np.float32)
    frame = prediction_frame(np.arange(500), labels, probs, meta, table_columns(x, meta))
    assert set(frame["colour"]) == {"red", "blue"} and set(frame["size"]) == {"1", "2", "3"}
    table = slice_metrics(frame)
    assert list(table["accuracy"]) == sorted(table["accuracy"])  # worst first
    for column in (TRUE, PREDICTED, "size", "colour"):
        expected = frame.groupby(column).agg(samples=(CORRECT, "size"), accuracy=(CORRECT, "mean"),
                                             confidence=(CONFIDENCE, "mean"))
        got = table[table["column"] == column].set_index("slice").sort_index()
        assert list(got.index) == [str(v) for v in expected.index]
        np.testing.assert_array_equal(got["samples"], expected["samples"])
        np.testing.assert_allclose(got["accuracy"], expected["accuracy"])
        np.testing.assert_allclose(got["mean confidence"], expected["confidence"], rtol=1e-6)
        np.testing.assert_array_equal(got["errors"], expected["samples"] - (expected["accuracy"] * expected["samples"]).round())
    with pytest.raises(DlxError, match="slices: no column 'shape'"):
        slice_metrics(frame, ["shape"])
    assert slice_metrics(pd.DataFrame(columns=[TRUE, CORRECT, CONFIDENCE]), []).empty


def test_projector_job_computes_once_per_run_and_checkpoint(runs):
    store = default_store()
    task = ProjectorTask(run_id=runs["text"], points=50, projections=["pca"])
    loaded = get_loaded_run(store, runs["text"])
    assert stored_projection(loaded, task) is None
    job_id = submit_task(store, task)
    job = find_job(store, task)
    assert job is not None and job.id == job_id
    job_function("projector")(store, job)  # what the worker's job process runs
    result = stored_projection(loaded, task)
    assert result is not None
    count = len(loaded.bundle.test)
    assert len(result.embedded.indices) == min(50, count) and result.coordinates["pca"].shape == (min(50, count), 2)
    frame = dlx.explain.embeddings(runs["text"]).loc[result.embedded.indices]
    np.testing.assert_allclose(result.embedded.vectors, vectors_of(frame), rtol=1e-4, atol=1e-5)
    assert stored_projection(loaded, task.model_copy(update={"seed": 1})) is None  # another sample: another job


def test_a_text_runs_projector_hovers_its_sentences_and_colours_a_clicked_one(runs, monkeypatch):
    from dlx.explain.projector import compute_projection
    from tests.helpers.explain_page import charts, open_page, texts

    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "0")
    loaded = get_loaded_run(default_store(), runs["text"])
    test = loaded.bundle.test
    compute_projection(loaded, ProjectorTask(run_id=runs["text"], points=len(test), projections=["pca"]))
    at = open_page(run=str(runs["text"]))
    at.multiselect(key="explain.projector.projections").set_value(["pca"]).run()
    assert not at.exception, [e.value for e in at.exception]
    scatter, = [f for f in charts(at) if any(t["type"] == "scattergl" for t in f["data"])]
    hovers = [h for t in scatter["data"] for h in t["text"]]
    assert len(hovers) == len(test) and any(test.texts[0].split()[0] in h for h in hovers)
    slices, = [d.value for d in at.dataframe if "slice" in d.value.columns]
    assert "length (words)" in set(slices["column"])
    coloured = len(at.get("html"))
    at.number_input(key="explain.projector.sample.test").set_value(0).run()  # what a click on sentence 0 sets
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("html")) == coloured + 1 and "<span" in str(at.get("html")[-1].proto.body)
    assert "test sample #0" in texts(at) and "layer integrated gradients for the predicted class" in texts(at)
