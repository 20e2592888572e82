"""The Explain page on users' data sets: samples read from the test split without decoding it whole,
shown as pixels, explained on the model's real (normalised) input; uploads preprocessed as in training."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch

from dlx.data import load_dataset
from dlx.data.image_folders import load_image
from dlx.data.streaming import FolderSplit
from dlx.data.user_sets import get_user_set, import_image_archive
from dlx.explain.image.gallery import build_gallery
from dlx.explain.image.uploads import read_image
from dlx.explain.jobs import ExplainTask, task_samples
from dlx.explain.models_cache import get_loaded_run
from dlx.explain.samples import sample_inputs
from dlx.store import default_store
from dlx.views.charts.explain import gallery_rows
from tests.helpers.explain_page import charts, open_page, texts, traces
from tests.helpers.files import image_zip, table_csv
from tests.helpers.processes import train_in_process

SIDE = 16


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    """Nothing picks up queued jobs; the streamed set reads in this process (no loader workers);
    each test's "shapes" set is loaded afresh (the per-process cache would keep an earlier test's)."""
    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "0")
    monkeypatch.setenv("DLX_LOADER_WORKERS", "0")
    load_dataset.cache_clear()
    yield
    load_dataset.cache_clear()


@pytest.fixture
def streamed_run(tmp_path, monkeypatch) -> tuple[int, zipfile.ZipFile]:
    """A small CNN trained on an uploaded zip of PNGs read through the streaming path."""
    monkeypatch.setenv("DLX_IN_MEMORY_BYTES", "0")
    archive = image_zip(tmp_path / "shapes.zip", classes=3, per_class=10)
    import_image_archive(default_store(), archive, "shapes", side=SIDE)
    run_id = train_in_process({"dataset": "shapes", "model": "cnn", "epochs": 2, "lr": 3e-3, "batch_size": 8})
    return run_id, zipfile.ZipFile(archive)


def test_samples_come_from_the_streamed_test_split_without_decoding_it_whole(streamed_run):
    run_id, _ = streamed_run
    loaded = get_loaded_run(default_store(), run_id)
    test = loaded.bundle.test
    assert isinstance(test, FolderSplit)
    inputs = sample_inputs(test, [2, 0])
    assert torch.equal(inputs, torch.stack([test.dataset[2][0], test.dataset[0][0]]))
    inputs, targets, _ = task_samples(loaded, ExplainTask(run_id=run_id, task="faithfulness",
                                                          methods=["saliency"], n_samples=3))
    assert len(inputs) == 3 and len(targets) == 3
    assert "x" not in vars(test)  # the whole-split tensor was never built


def test_gallery_explains_the_normalised_input_and_shows_its_pixels(streamed_run):
    run_id, _ = streamed_run
    loaded = get_loaded_run(default_store(), run_id)
    test = loaded.bundle.test
    inputs = sample_inputs(test, [0, 1])
    gallery = build_gallery(loaded, inputs, ["a", "b"], ["saliency", "integrated_gradients"])
    assert torch.equal(gallery.inputs, inputs)  # what the model saw in training, not raw pixels
    assert torch.allclose(gallery.probs, loaded.predict(inputs))
    assert gallery.attributions["saliency"].values.shape == (2, 3, SIDE, SIDE)
    for row, path in zip(gallery_rows(gallery), test.dataset.files[:2]):
        np.testing.assert_allclose(row.image, load_image(path, SIDE, 3), atol=1e-5)  # denormalised to show


def test_an_upload_is_resized_and_normalised_as_in_training(streamed_run):
    run_id, archive = streamed_run
    loaded = get_loaded_run(default_store(), run_id)
    test = loaded.bundle.test
    path = test.dataset.files[0]
    member = path.relative_to(get_user_set(default_store(), "shapes").path).as_posix()
    image = read_image(archive.read(f"shapes/{member}"), loaded.meta, "mine.png")
    torch.testing.assert_close(image.tensor[0], test.dataset[0][0], atol=1e-5, rtol=0)
    assert image.changes[0] == f"mine.png (12×12) was resized to the model's {SIDE}×{SIDE}."
    assert image.changes[1].startswith("mine.png was normalised with shapes's own per-channel mean (")


def test_explain_page_shows_and_explains_a_user_image_set_and_says_how_uploads_are_preprocessed(streamed_run):
    store = default_store()
    run_id, archive = streamed_run
    at = open_page(run=str(run_id))
    assert not at.error
    grid, = charts(at)
    assert traces(grid, "heatmap") == 4 * 3  # four samples, three image methods for a CNN
    assert "x" not in vars(get_loaded_run(store, run_id).bundle.test)
    at.selectbox(key="explain.pick").set_value("index").run()
    at.text_input(key="explain.indices").set_value("1, 3").run()
    grid, = charts(at)
    shown = [a["text"].split(" ")[0] for a in grid["layout"]["annotations"] if a["text"].startswith("#")]
    assert shown == ["#1", "#3"] and "x" not in vars(get_loaded_run(store, run_id).bundle.test)
    at.radio(key="explain.source").set_value("an uploaded image").run()
    assert "normalised with the set's own mean/std, as in training" in at.file_uploader(key="explain.upload").label
    png = archive.read("shapes/class1/0.png")
    at.file_uploader(key="explain.upload").set_value(("mine.png", png, "image/png")).run()
    assert not at.error and not at.exception
    assert any("mine.png was normalised with shapes's own per-channel mean" in str(i.value) for i in at.info)
    grid, = charts(at)
    assert traces(grid, "heatmap") == 3


def test_explain_page_explains_a_user_csv_table(tmp_path):
    from dlx.data.tables import import_table

    import_table(default_store(), table_csv(), "sizes", "label", "sizes.csv")
    run_id = train_in_process({"dataset": "sizes", "model": "mlp", "epochs": 5})
    at = open_page(run=str(run_id))
    assert not at.error
    bars = charts(at)
    assert len(bars) == 4 and traces(bars[0], "bar") == 2  # four test rows, IG and Feature Ablation
    assert "size" in str(bars[0]) and "true " in texts(at)


def test_pickers_other_than_misclassified_need_no_test_probabilities():
    from dlx.errors import DlxError
    from dlx.explain.samples import pick_samples

    labels = torch.tensor([0, 1, 2, 1, 0])
    assert pick_samples(labels, None, "class", 2, cls=1, num_classes=3) == [1, 3]
    assert pick_samples(labels, None, "index", 2, indices=[4, 2], num_classes=3) == [4, 2]
    with pytest.raises(DlxError, match="choose a class between 0 and 2") as caught:
        pick_samples(labels, None, "class", 2, cls=3, num_classes=3)
    assert caught.value.field == "samples"
    with pytest.raises(DlxError, match="misclassified samples needs the model's test probabilities"):
        pick_samples(labels, None, "misclassified", 2, num_classes=3)
