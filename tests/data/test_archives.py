"""Uploaded archives: refused entry by entry (slip, absolute, links, bombs), nothing left behind on disk."""
from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from dlx.data.user_sets import get_user_set, import_image_archive
from dlx.errors import DlxError
from dlx.store import default_store
from tests.helpers.files import image_zip, png


def left_on_disk(home: Path) -> list[Path]:
    """Every file under the data directory other than the database (nothing an upload kept)."""
    if not home.exists():
        return []
    return [p for p in home.rglob("*") if p.is_file() and not p.name.startswith("dlx.sqlite")]


def refused(archive: Path, home: Path, match: str) -> DlxError:
    with pytest.raises(DlxError, match=match) as caught:
        import_image_archive(default_store(), archive, "mine")
    assert caught.value.field == "upload"
    assert left_on_disk(home) == []
    assert get_user_set(default_store(), "mine") is None
    return caught.value


def test_image_zip_is_extracted_checked_and_kept(dlx_home, tmp_path):
    user_set, notes = import_image_archive(default_store(), image_zip(tmp_path / "shapes.zip"), "shapes")
    assert user_set.classes == ("class0", "class1", "class2") and user_set.rows == 24
    assert user_set.path == dlx_home / "user_datasets" / "shapes"
    assert sorted(p.name for p in user_set.path.iterdir()) == ["class0", "class1", "class2"]
    assert notes == []
    assert not any((dlx_home / "tmp").iterdir())


def test_zip_slip_is_refused_and_nothing_written(dlx_home, tmp_path):
    archive = image_zip(tmp_path / "slip.zip", extra={"shapes/../../evil.png": b"x"})
    refused(archive, dlx_home, r"climbs out .*'\.\.'")
    assert not (tmp_path / "evil.png").exists() and not (dlx_home / "evil.png").exists()


def test_absolute_path_is_refused(dlx_home, tmp_path):
    target = tmp_path / "absolute.png"
    archive = image_zip(tmp_path / "abs.zip", extra={str(target): b"x"})
    refused(archive, dlx_home, "absolute path")
    assert not target.exists()


def test_symlink_in_zip_is_refused(dlx_home, tmp_path):
    archive = image_zip(tmp_path / "link.zip")
    info = zipfile.ZipInfo("shapes/class0/link.png")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(archive, "a") as handle:
        handle.writestr(info, "/etc/passwd")
    refused(archive, dlx_home, "symbolic link")


def test_symlink_and_device_in_tar_are_refused(dlx_home, tmp_path):
    for kind, match in ((tarfile.SYMTYPE, "is a link"), (tarfile.CHRTYPE, "device")):
        archive = tmp_path / f"set-{kind!r}.tar.gz"
        with tarfile.open(archive, "w:gz") as handle:
            data = png(1, 100)
            member = tarfile.TarInfo("shapes/class0/0.png")
            member.size = len(data)
            handle.addfile(member, io.BytesIO(data))
            odd = tarfile.TarInfo("shapes/class0/odd.png")
            odd.type, odd.linkname = kind, "/etc/passwd"
            handle.addfile(odd)
        refused(archive, dlx_home, match)


def test_oversize_archive_is_refused_naming_the_setting(dlx_home, tmp_path, monkeypatch):
    monkeypatch.setenv("DLX_UPLOAD_MAX_BYTES", "5000")
    refused(image_zip(tmp_path / "big.zip"), dlx_home, "DLX_UPLOAD_MAX_BYTES")


def test_too_many_entries_are_refused_naming_the_setting(dlx_home, tmp_path, monkeypatch):
    monkeypatch.setenv("DLX_UPLOAD_MAX_FILES", "10")
    refused(image_zip(tmp_path / "many.zip"), dlx_home, "DLX_UPLOAD_MAX_FILES")


def test_high_ratio_archive_is_refused(dlx_home, tmp_path):
    archive = image_zip(tmp_path / "bomb.zip")
    with zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("shapes/class0/zeros.png", b"\0" * (20 * 2**20))
    refused(archive, dlx_home, "DLX_UPLOAD_MAX_RATIO")


def test_high_ratio_tar_is_refused_as_a_whole(dlx_home, tmp_path):
    archive = tmp_path / "bomb.tar.gz"
    with tarfile.open(archive, "w:gz") as handle:
        data = b"\0" * (20 * 2**20)
        member = tarfile.TarInfo("shapes/class0/zeros.png")
        member.size = len(data)
        handle.addfile(member, io.BytesIO(data))
    refused(archive, dlx_home, "DLX_UPLOAD_MAX_RATIO")


def test_pixel_bomb_png_is_refused_before_decoding(dlx_home, tmp_path):
    buffer = io.BytesIO()
    Image.new("1", (9000, 5000)).save(buffer, format="PNG")  # 45 million pixels, a few kB on disk
    archive = image_zip(tmp_path / "pixels.zip", extra={"shapes/class1/huge.png": buffer.getvalue()})
    refused(archive, dlx_home, "decompression bomb")


def test_corrupt_png_is_skipped_and_reported(dlx_home, tmp_path):
    broken = png(5, 100)[:40]
    archive = image_zip(tmp_path / "broken.zip", extra={"shapes/class1/broken.png": broken,
                                                        "shapes/class2/notes.txt": b"hello"})
    user_set, notes = import_image_archive(default_store(), archive, "broken")
    assert user_set.rows == 24
    assert dict(map(tuple, user_set.details["skipped"])) == {"class1/broken.png": user_set.details["skipped"][0][1],
                                                             "class2/notes.txt": "not an image"}
    assert "class1/broken.png" in notes[0] and "2 file(s) skipped" in notes[0]


def test_class_with_too_few_images_is_left_out_and_reported(dlx_home, tmp_path):
    archive = image_zip(tmp_path / "thin.zip", extra={"shapes/lonely/0.png": png(9, 200)})
    user_set, notes = import_image_archive(default_store(), archive, "thin")
    assert user_set.classes == ("class0", "class1", "class2")
    assert any("lonely (1)" in note for note in notes)


def test_not_an_archive_is_refused(dlx_home, tmp_path):
    path = tmp_path / "plain.zip"
    path.write_bytes(b"not a zip at all")
    refused(path, dlx_home, "neither a zip nor a tar")


def test_refused_upload_from_the_page_leaves_neither_the_upload_nor_its_files(dlx_home, tmp_path):
    from dlx.data.user_sets import import_uploaded_images

    data = image_zip(tmp_path / "slip.zip", extra={"../evil.png": b"x"}).read_bytes()
    with pytest.raises(DlxError, match="climbs out"):
        import_uploaded_images(default_store(), data, "slip.zip", "mine")
    assert left_on_disk(dlx_home) == [] and get_user_set(default_store(), "mine") is None
    user_set, _ = import_uploaded_images(default_store(), image_zip(tmp_path / "ok.zip").read_bytes(), "ok.zip", "mine")
    assert user_set.source == "ok.zip"
    assert {p.parent.parent for p in left_on_disk(dlx_home)} == {user_set.path}  # only the kept images
