"""Users' own image sets: registered from their database row, trained by a real worker, deleted safely."""
from __future__ import annotations

import numpy as np
import pytest

from dlx.config import parse_config
from dlx.data import DATASETS, load_dataset
from dlx.data.user_sets import delete_user_set, get_user_set, import_image_archive, import_image_folder
from dlx.errors import DlxError
from dlx.store import default_store
from dlx.views.launch import models_for
from tests.helpers.files import image_zip, table_csv, texts_csv
from tests.helpers.processes import train_in_process, wait_for


@pytest.fixture(autouse=True)
def data_roots(tmp_path, monkeypatch):
    """Server folders are registered from this test's own folder (DLX_DATA_ROOTS)."""
    monkeypatch.setenv("DLX_DATA_ROOTS", str(tmp_path))


def test_uploaded_zip_trains_a_cnn_to_success_through_a_real_worker(worker, tmp_path):
    store = default_store()
    import_image_archive(default_store(), image_zip(tmp_path / "shapes.zip", classes=3, per_class=20), "shapes")
    assert "shapes" in DATASETS and DATASETS["shapes"].shape == (3, 32, 32)
    assert "cnn" in models_for("shapes")
    run_id, _ = store.queue.submit(parse_config({"dataset": "shapes", "model": "cnn", "epochs": 4, "lr": 3e-3,
                                     "batch_size": 16}))
    run = wait_for(lambda: (r := store.get_run(run_id)).status in ("succeeded", "failed") and r,
                   timeout=180, message="the run on the uploaded set to end")
    assert run.status == "succeeded", run.error
    assert run.summary["test_acc"] >= 0.9


def test_user_set_loads_normalised_with_its_own_statistics(tmp_path):
    archive = image_zip(tmp_path / "shapes.zip", classes=2, per_class=10)
    user_set, _ = import_image_archive(default_store(), archive, "two")
    bundle = load_dataset("two")
    assert len(bundle.train) + len(bundle.val) + len(bundle.test) == user_set.rows == 20
    everything = bundle.train.x.mean(dim=(0, 2, 3))
    assert everything.abs().max() < 0.5  # the set's own mean was taken off each channel
    assert bundle.meta.classes == ("class0", "class1")


def test_deleting_a_set_a_run_uses_needs_confirmation(tmp_path):
    user_set, _ = import_image_archive(default_store(), image_zip(tmp_path / "shapes.zip"), "used")
    default_store().queue.submit(parse_config({"dataset": "used", "model": "cnn", "epochs": 1}))
    with pytest.raises(DlxError, match="1 run\\(s\\) use 'used'; confirm") as caught:
        delete_user_set(default_store(), "used")
    assert caught.value.field == "dataset" and user_set.path.is_dir()
    delete_user_set(default_store(), "used", confirm=True)
    assert not user_set.path.exists() and get_user_set(default_store(), "used") is None and "used" not in DATASETS


def test_folder_on_the_server_is_registered_in_place_and_never_deleted(tmp_path):
    import zipfile

    with zipfile.ZipFile(image_zip(tmp_path / "shapes.zip")) as handle:
        handle.extractall(tmp_path / "mine")
    user_set, _ = import_image_folder(default_store(), tmp_path / "mine", "served")
    assert user_set.path == tmp_path / "mine" / "shapes" and not user_set.owned
    delete_user_set(default_store(), "served")
    assert (tmp_path / "mine" / "shapes" / "class0").is_dir()


def test_names_taken_or_malformed_are_refused(tmp_path):
    archive = image_zip(tmp_path / "shapes.zip")
    for name, match in (("digits", "exists already"), ("Bad Name!", "not a valid data set name")):
        with pytest.raises(DlxError, match=match) as caught:
            import_image_archive(default_store(), archive, name)
        assert caught.value.field == "name"


def test_csv_table_is_encoded_imputed_reported_and_trains(tmp_path):
    from dlx.data.tables import import_table

    user_set, notes = import_table(default_store(), table_csv(), "sizes", "label", "sizes.csv")
    assert user_set.classes == ("large", "small") and user_set.rows == 60
    present = [1.0 + 5 * (i % 2) + (i % 7) / 10 for i in range(60) if i % 10 != 3]
    assert notes == [f"size: numeric; 6 missing → median {np.median(present):g}",
                     "colour: categorical, one-hot over 3 values"]
    assert DATASETS["sizes"].shape == (4,) and "mlp" in models_for("sizes")
    run_id = train_in_process({"dataset": "sizes", "model": "mlp", "epochs": 20})
    assert default_store().get_run(run_id).summary["test_acc"] >= 0.9


@pytest.mark.parametrize("data, label, field, match", [
    (b"", "label", "file", "is empty"),
    (b"a,b\n1,x\n2,y\n", "label", "label_column", "no column 'label'; its columns are 'a', 'b'"),
    (b"a,label\n1,x\n2,x\n3,x\n", "label", "label_column", "only the class 'x'"),
    (b"a,label\n1,x\n2,y\nthree,x\n4,y\n5,x\n6,y\n", "label", "a", "mixes numbers and text \\(line 4: 'three'\\)"),
    ("a,label\n1,ü\n".encode("latin-1"), "label", "file", "not UTF-8 text .*line 2"),
    (b"a,label\n1,x\n2\n", "label", "file", "line 3 of t.csv has 1 fields"),
    (b"a,label\n1,x\n2,\n", "label", "label_column", "line 3 of t.csv has no value in 'label'"),
])
def test_bad_csv_gets_a_message_naming_the_column_or_line(data, label, field, match):
    from dlx.data.tables import import_table

    with pytest.raises(DlxError, match=match) as caught:
        import_table(default_store(), data, "bad", label, "t.csv")
    assert caught.value.field == field and get_user_set(default_store(), "bad") is None


def test_csv_of_texts_is_checked_by_the_text_loader_and_registered():
    from dlx.data.user_texts import import_text_csv

    user_set, notes = import_text_csv(default_store(), texts_csv(), "reviews", "review", "mood", "reviews.csv")
    assert user_set.classes == ("bad", "good") and notes == ["20 texts of 4 to 4 words"]
    assert DATASETS["reviews"].kind == "text"
    bundle = load_dataset("reviews")
    assert len(bundle.train.texts) == len(bundle.train) and "film" in bundle.train.texts[0]
    with pytest.raises(DlxError, match="no column 'text'") as caught:
        import_text_csv(default_store(), texts_csv(), "other", "text", "mood")
    assert caught.value.field == "text_column" and get_user_set(default_store(), "other") is None
