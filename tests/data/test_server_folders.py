"""Folders on the server: only inside DLX_DATA_ROOTS, never through a link that leaves them, capped in
files and time, refused without listing what they hold, and read back only from where they were."""
from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dlx import settings
from dlx.data import load_dataset
from dlx.data.image_folders import ScanLimits, load_image, scan_image_folder
from dlx.data.user_sets import get_user_set, import_image_folder
from dlx.errors import DlxError
from dlx.store import default_store
from tests.helpers.files import png_folder


def pngs(folder: Path, count: int, names: str = "{}.png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        pixels = np.full((8, 8), 40 + 20 * n, dtype=np.uint8)
        Image.fromarray(pixels).save(folder / names.format(n))
    return folder


@pytest.fixture
def roots(tmp_path, monkeypatch) -> Path:
    """An allowed root (`DLX_DATA_ROOTS`) and, beside it, a folder outside every root."""
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    monkeypatch.setenv("DLX_DATA_ROOTS", str(allowed))
    monkeypatch.delenv("DLX_EXPOSED", raising=False)
    return allowed


def test_links_leaving_the_folder_are_skipped_not_followed(roots, tmp_path):
    mine = png_folder(roots / "mine", classes=2, per_class=6)
    outside = pngs(tmp_path / "outside" / "private", 8)
    (mine / "escape").symlink_to(outside, target_is_directory=True)  # a class folder leading out
    (mine / "class0" / "deeper").symlink_to(outside.parent, target_is_directory=True)
    (mine / "class1" / "secret.png").symlink_to(outside / "0.png")  # a file leading out
    (mine / "class1" / "inner.png").symlink_to(mine / "class1" / "0.png")  # inside: followed
    user_set, notes = import_image_folder(default_store(), mine, "linked")
    assert user_set.classes == ("class0", "class1")
    files = [relative for relative, _ in user_set.details["files"]]
    assert len(files) == 13 and "class1/inner.png" in files
    assert not any("escape" in f or "deeper" in f or "secret" in f for f in files)
    skipped = dict(user_set.details["skipped"])
    for link in ("escape", "class0/deeper", "class1/secret.png"):
        assert skipped[link] == "a link leading outside the folder; not followed"
    assert "escape (a link leading outside the folder; not followed)" in notes[0]
    assert str(outside) not in " ".join(notes)  # where a link points is not told


def test_a_link_to_a_parent_does_not_loop(roots):
    mine = png_folder(roots / "mine", classes=2, per_class=5)
    (mine / "class0" / "again").symlink_to(mine, target_is_directory=True)
    user_set, _ = import_image_folder(default_store(), mine, "looped")
    assert user_set.rows == 10


def test_the_scan_is_capped_in_files_naming_the_folder_and_the_setting(roots, monkeypatch):
    mine = png_folder(roots / "big", classes=2, per_class=15)
    monkeypatch.setenv("DLX_UPLOAD_MAX_FILES", "20")
    with pytest.raises(DlxError, match="DLX_UPLOAD_MAX_FILES") as caught:
        import_image_folder(default_store(), mine, "big")
    assert str(mine) in str(caught.value) and "more than 20 files" in str(caught.value)
    assert caught.value.field == "folder" and get_user_set(default_store(), "big") is None


def test_the_scan_is_capped_in_time_naming_the_folder_and_the_setting(roots):
    mine = png_folder(roots / "slow", classes=2, per_class=5)
    with pytest.raises(DlxError, match="took longer than 0 s \\(DLX_FOLDER_SCAN_SECONDS\\)") as caught:
        scan_image_folder(mine, shown=str(mine), field="folder", limits=ScanLimits(1000, 0.0))
    assert str(mine) in str(caught.value)


def test_a_refused_folder_lists_none_of_its_contents(roots):
    confs = roots / "confs"
    for sub in ("sshsecret", "pamstuff"):
        (confs / sub).mkdir(parents=True)
        for n in range(3):
            (confs / sub / f"hidden-name-{sub}-{n}.conf").write_text("x = 1\n")
    pngs(confs / "lonely", 2)
    with pytest.raises(DlxError, match="fewer than two classes") as caught:
        import_image_folder(default_store(), confs, "confs")
    message = str(caught.value)
    assert "hidden-name" not in message and "sshsecret" not in message and "lonely" not in message


def test_a_pixel_bomb_in_a_folder_is_refused_without_its_name(roots):
    mine = png_folder(roots / "bombed", classes=2, per_class=5)
    Image.new("1", (9000, 5000)).save(mine / "class1" / "huge-secret-name.png")
    with pytest.raises(DlxError, match="decompression bomb") as caught:
        import_image_folder(default_store(), mine, "bombed")
    assert "huge-secret-name" not in str(caught.value) and str(mine) in str(caught.value)


def test_a_folder_outside_every_root_is_refused_naming_the_setting_and_the_roots(roots, tmp_path):
    elsewhere = png_folder(tmp_path / "elsewhere", classes=2, per_class=5)
    (roots / "link-to-elsewhere").symlink_to(elsewhere, target_is_directory=True)
    for folder in (elsewhere, roots / "link-to-elsewhere", roots / ".." / "elsewhere", Path("/etc"),
                   Path("/no/such/folder")):
        with pytest.raises(DlxError) as caught:
            import_image_folder(default_store(), folder, "outside")
        message = str(caught.value)
        assert f"DLX_DATA_ROOTS = {roots.resolve()}" in message and caught.value.field == "folder", message
        assert "passwd" not in message and "class0" not in message
    assert get_user_set(default_store(), "outside") is None


def test_a_relative_or_empty_path_is_refused(roots):
    for folder in ("", "allowed/mine", "."):
        with pytest.raises(DlxError, match="not an absolute path"):
            import_image_folder(default_store(), folder, "relative")


def test_the_default_root_is_the_users_home_and_none_when_exposed(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("DLX_DATA_ROOTS", raising=False)
    monkeypatch.delenv("DLX_EXPOSED", raising=False)
    inside = png_folder(home / "pictures", classes=2, per_class=5)
    outside = png_folder(tmp_path / "elsewhere", classes=2, per_class=5)
    assert settings.data_roots() == [home.resolve()]
    with pytest.raises(DlxError, match=f"DLX_DATA_ROOTS = {home.resolve()}"):
        import_image_folder(default_store(), outside, "outside")
    import_image_folder(default_store(), inside, "at-home")

    monkeypatch.setenv("DLX_EXPOSED", "1")
    assert settings.data_roots() == []
    with pytest.raises(DlxError, match="open to the network and DLX_DATA_ROOTS is not set"):
        import_image_folder(default_store(), inside, "exposed")
    monkeypatch.setenv("DLX_DATA_ROOTS", f"{tmp_path / 'elsewhere'}:{home / 'none-yet'}")
    assert settings.data_roots() == [outside.resolve(), (home / "none-yet").resolve()]
    import_image_folder(default_store(), outside, "allowed-when-set")


def test_data_roots_naming_no_folder_allow_none(monkeypatch):
    monkeypatch.delenv("DLX_EXPOSED", raising=False)
    monkeypatch.setenv("DLX_DATA_ROOTS", ":")
    with pytest.raises(DlxError, match="folder: DLX_DATA_ROOTS names no folder, so no folder on the server"):
        import_image_folder(default_store(), "/tmp", "none")


def test_data_roots_must_be_absolute(monkeypatch):
    monkeypatch.setenv("DLX_DATA_ROOTS", "relative/folder")
    with pytest.raises(DlxError, match="DLX_DATA_ROOTS: 'relative/folder' is not an absolute path"):
        settings.data_roots()


def test_a_link_put_in_a_registered_folder_later_is_not_read(roots, tmp_path):
    mine = png_folder(roots / "mine", classes=2, per_class=6)
    import_image_folder(default_store(), mine, "changed")
    private = pngs(tmp_path / "private", 1, "secret.png") / "secret.png"
    (mine / "class0" / "0.png").unlink()
    (mine / "class0" / "0.png").symlink_to(private)
    with pytest.raises(DlxError, match="class0/0.png in 'changed' now leads outside its folder"):
        load_dataset("changed")


def test_a_registered_folder_replaced_by_a_link_is_not_read(roots, tmp_path):
    mine = png_folder(roots / "mine", classes=2, per_class=6)
    import_image_folder(default_store(), mine, "moved")
    copy = png_folder(tmp_path / "copy", classes=2, per_class=6)
    mine.rename(roots / "moved-away")
    mine.symlink_to(copy, target_is_directory=True)
    with pytest.raises(DlxError, match="is now a link elsewhere"):
        load_dataset("moved")


def test_an_image_swapped_for_a_link_after_loading_is_not_read_through(tmp_path):
    image = pngs(tmp_path / "real", 1) / "0.png"
    assert load_image(image, 8, 1).shape == (1, 8, 8)
    link = tmp_path / "link.png"
    link.symlink_to(image)
    with pytest.raises(OSError) as caught:
        load_image(link, 8, 1)
    assert caught.value.errno == errno.ELOOP
