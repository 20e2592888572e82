"""Users' own image sets: registered from their database row, trained by a real worker, deleted safely."""
from __future__ import annotations

from dlx import store
from dlx.config import parse_config
from dlx.data import DATASETS, load_dataset
from dlx.data.user_sets import delete_user_set, get_user_set, import_image_archive, import_image_folder
from dlx.errors import DlxError
from dlx.jobs import submit
from dlx.launch import models_for
from tests.conftest import wait_for
from tests.test_archives import image_zip

import pytest


def test_uploaded_zip_trains_a_cnn_to_success_through_a_real_worker(worker, tmp_path):
    import_image_archive(image_zip(tmp_path / "shapes.zip", classes=3, per_class=20), "shapes")
    assert "shapes" in DATASETS and DATASETS["shapes"].shape == (3, 32, 32)
    assert "cnn" in models_for("shapes")
    run_id, _ = submit(parse_config({"dataset": "shapes", "model": "cnn", "epochs": 4, "lr": 3e-3,
                                     "batch_size": 16}))
    run = wait_for(lambda: (r := store.get_run(run_id)).status in ("succeeded", "failed") and r,
                   timeout=180, message="the run on the uploaded set to end")
    assert run.status == "succeeded", run.error
    assert run.summary["test_acc"] >= 0.9


def test_user_set_loads_normalised_with_its_own_statistics(tmp_path):
    user_set, _ = import_image_archive(image_zip(tmp_path / "shapes.zip", classes=2, per_class=10), "two")
    bundle = load_dataset("two")
    assert len(bundle.train) + len(bundle.val) + len(bundle.test) == user_set.rows == 20
    everything = bundle.train.x.mean(dim=(0, 2, 3))
    assert everything.abs().max() < 0.5  # the set's own mean was taken off each channel
    assert bundle.meta.classes == ("class0", "class1")


def test_deleting_a_set_a_run_uses_needs_confirmation(tmp_path):
    user_set, _ = import_image_archive(image_zip(tmp_path / "shapes.zip"), "used")
    submit(parse_config({"dataset": "used", "model": "cnn", "epochs": 1}))
    with pytest.raises(DlxError, match="1 run\\(s\\) use 'used'; confirm") as caught:
        delete_user_set("used")
    assert caught.value.field == "dataset" and user_set.path.is_dir()
    delete_user_set("used", confirm=True)
    assert not user_set.path.exists() and get_user_set("used") is None and "used" not in DATASETS


def test_folder_on_the_server_is_registered_in_place_and_never_deleted(tmp_path):
    import zipfile

    with zipfile.ZipFile(image_zip(tmp_path / "shapes.zip")) as handle:
        handle.extractall(tmp_path / "mine")
    user_set, _ = import_image_folder(tmp_path / "mine", "served")
    assert user_set.path == tmp_path / "mine" / "shapes" and not user_set.owned
    delete_user_set("served")
    assert (tmp_path / "mine" / "shapes" / "class0").is_dir()


def test_names_taken_or_malformed_are_refused(tmp_path):
    archive = image_zip(tmp_path / "shapes.zip")
    for name, match in (("digits", "exists already"), ("Bad Name!", "not a valid data set name")):
        with pytest.raises(DlxError, match=match) as caught:
            import_image_archive(archive, name)
        assert caught.value.field == "name"
