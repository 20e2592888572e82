"""In Chromium: a zip uploaded through the real Data page shows its samples and is offered on Launch."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.helpers.browser import open_page, snapshot
from tests.helpers.files import image_zip

pytestmark = [pytest.mark.browser]


def test_uploaded_zip_shows_its_samples_and_is_offered_on_launch(app_server, browser_page, artifacts_dir, tmp_path):
    page = browser_page
    archive = image_zip(tmp_path / "shapes.zip", classes=3, per_class=12)
    open_page(page, f"{app_server.url}/data", "Data")
    page.get_by_test_id("stFileUploaderDropzoneInput").first.set_input_files(str(archive))
    page.get_by_text("shapes.zip").wait_for()
    page.get_by_role("textbox", name="Name").first.fill("shapes")
    page.get_by_role("button", name="Check and add").first.click()
    page.get_by_text("is ready: 36 samples, 3 classes").wait_for(timeout=60_000)
    # Visible ones: the class table's cells hold the names too, in hidden accessibility cells.
    # The first look at a data set imports torch into the server (the app holds none before): a
    # loaded machine takes a while, hence the longer wait than the page default.
    for class_name in ("class0", "class1", "class2"):
        page.get_by_text(class_name, exact=True).filter(visible=True).first.wait_for(timeout=90_000)
    page.get_by_text("your images from shapes.zip").first.wait_for()
    # The sample grid: six per class (the digits grid drawn before the upload fades out as the page reruns).
    expect(page.locator("[data-testid='stImage'] img")).to_have_count(18, timeout=30_000)
    snapshot(page, artifacts_dir / "data-page-uploaded.png")

    open_page(page, app_server.url, "Launch a training run")
    page.get_by_test_id("stSelectbox").first.click()
    page.get_by_role("option", name="shapes").wait_for()
    assert (app_server.home / "user_datasets" / "shapes" / "class0").is_dir()
