"""The Data page under streamlit.testing: adds a folder, lists and deletes user sets, browses any set."""
from __future__ import annotations

import zipfile

import pytest

from dlx.data import DATASETS
from dlx.data.tables import import_table
from dlx.data.user_sets import get_user_set, import_image_archive
from dlx.store import default_store
from tests.helpers.files import image_zip, table_csv
from tests.helpers.pages import open_app, texts
from tests.helpers.processes import train_in_process


@pytest.fixture(autouse=True)
def no_worker(tmp_path, monkeypatch):
    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "0")
    monkeypatch.setenv("DLX_DATA_ROOTS", str(tmp_path))  # server folders are made under it
    monkeypatch.delenv("DLX_EXPOSED", raising=False)


def test_data_page_renders_on_an_empty_store_browsing_digits():
    at = open_app("pages/data.py")
    assert "None yet" in texts(at) and not at.get("image")  # no set loaded until one is chosen
    at.selectbox(key="data.browsed").select("digits").run()
    page = texts(at)
    assert "scikit-learn handwritten digits" in page
    assert len(at.get("image")) == 10  # a row of samples for each digit
    assert at.dataframe[0].value.shape[0] == 10  # class balance: one row per class


def test_a_folder_on_the_server_is_added_from_the_page_and_offered_on_launch(tmp_path):
    with zipfile.ZipFile(image_zip(tmp_path / "shapes.zip")) as handle:
        handle.extractall(tmp_path / "served")
    at = open_app("pages/data.py")
    at.text_input(key="data.folder_path").input(str(tmp_path / "served"))
    at.text_input(key="data.folder_name").input("served")
    at.button[1].click().run()  # the second form's "Check and add"
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "Data set **served** is ready: 24 samples, 3 classes" in texts(at)
    assert at.selectbox(key="data.browsed").value == "served"
    assert len(at.get("image")) == 3
    launch = open_app("pages/launch.py")
    assert "served" in launch.selectbox(key="launch.dataset").options


def test_a_refused_folder_shows_why(tmp_path):
    (tmp_path / "flat").mkdir()
    at = open_app("pages/data.py")
    at.text_input(key="data.folder_path").input(str(tmp_path / "flat"))
    at.text_input(key="data.folder_name").input("flat")
    at.button[1].click().run()
    assert "at least two classes" in at.error[0].value and get_user_set(default_store(), "flat") is None


def add_folder(at, path: str, name: str):
    at.text_input(key="data.folder_path").input(path)
    at.text_input(key="data.folder_name").input(name)
    return at.button[1].click().run()


def test_the_folder_tab_names_the_allowed_roots_and_refuses_a_link_out_of_them(tmp_path, monkeypatch):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "link-to-etc").symlink_to("/etc", target_is_directory=True)
    monkeypatch.setenv("DLX_DATA_ROOTS", f"{allowed}:{tmp_path / 'other'}")
    at = open_app("pages/data.py")
    assert any(f"`{allowed.resolve()}`, `{(tmp_path / 'other').resolve()}`" in c.value for c in at.caption)
    add_folder(at, str(allowed / "link-to-etc"), "etc")
    assert not at.exception
    [error] = at.error
    assert "DLX_DATA_ROOTS" in error.value and str(allowed.resolve()) in error.value
    assert "passwd" not in error.value and get_user_set(default_store(), "etc") is None


def test_an_exposed_app_without_data_roots_says_no_folder_may_be_registered(tmp_path, monkeypatch):
    with zipfile.ZipFile(image_zip(tmp_path / "shapes.zip")) as handle:
        handle.extractall(tmp_path / "served")
    monkeypatch.delenv("DLX_DATA_ROOTS")
    monkeypatch.setenv("DLX_EXPOSED", "1")
    at = open_app("pages/data.py")
    assert any("No folder on the server may be registered" in w.value for w in at.warning)
    add_folder(at, str(tmp_path / "served"), "served")
    assert not at.exception and "DLX_DATA_ROOTS is not set" in at.error[0].value
    assert get_user_set(default_store(), "served") is None


def test_table_shows_column_choices_stats_and_a_runs_mistakes():
    import_table(default_store(), table_csv(), "sizes", "label", "sizes.csv")
    run_id = train_in_process({"dataset": "sizes", "model": "mlp", "epochs": 3})
    at = open_app("pages/data.py")
    at.selectbox(key="data.browsed").select("sizes").run()
    page = texts(at)
    assert "colour: categorical, one-hot over 3 values" in page and "6 missing → median" in page
    assert f"Mistakes per class** of run {run_id}" in page


def test_text_set_shows_example_texts_with_their_lengths():
    from dlx.data.user_texts import import_text_csv
    from tests.helpers.files import texts_csv

    import_text_csv(default_store(), texts_csv(), "reviews", "review", "mood")
    at = open_app("pages/data.py")
    at.selectbox(key="data.browsed").select("reviews").run()
    examples = at.dataframe[-1].value
    assert set(examples["class"]) == {"bad", "good"} and (examples["words"] == 4).all()


def test_deleting_from_the_page_removes_the_set_and_its_files(tmp_path):
    user_set, _ = import_image_archive(default_store(), image_zip(tmp_path / "shapes.zip"), "doomed")
    at = open_app("pages/data.py")
    at.selectbox(key="data.delete_name").select("doomed")
    at.button[4].click().run()  # the delete form's button (after the four forms that add data)
    assert not user_set.path.exists() and "doomed" not in DATASETS
