"""The Explain page's What-if tab in Chromium for a text run: a sentence edited in the text area is predicted
and its words coloured beside the original's, with no exception box."""
from __future__ import annotations

import pytest

from tests.helpers.browser import open_page, snapshot
from tests.helpers.processes import train_in_process

pytestmark = [pytest.mark.browser, pytest.mark.slow]

EDITED = "awful dreadful boring mess"
COLOURS = """els => els.map(div => [...div.querySelectorAll('span[title]')].map(
    s => [s.textContent, getComputedStyle(s).backgroundColor]))"""


def test_editing_a_sentence_recolours_its_words_beside_the_original(dlx_home, app_server, browser_page,
                                                                    artifacts_dir):
    run_id = train_in_process({"dataset": "sentiment", "model": "transformer", "epochs": 1, "batch_size": 64,
                               "model_options": {"layers": 2, "heads": 2, "hidden": 16, "max_length": 24},
                               "device": "cpu", "val_fraction": 0.45, "test_fraction": 0.45})  # 10% to train: fast
    page = browser_page
    open_page(page, app_server.url, "Launch a training run")
    open_page(page, f"{app_server.url}/explain?run={run_id}", "Explain")
    page.get_by_role("tab", name="What-if").click()
    page.get_by_text("Edit the sentence").click()
    box = page.get_by_label("Edited sentence")
    box.wait_for(timeout=120_000)
    original = box.input_value()
    sentences = page.locator("div:has(> span[title])").filter(visible=True)  # original, edited per method
    sentences.nth(3).wait_for(timeout=60_000)
    before = sentences.evaluate_all(COLOURS)
    assert before[0] == before[1] and [w for w, _ in before[0]] == original.split()  # nothing edited yet

    box.fill(EDITED)
    box.press("Control+Enter")
    page.locator("span[title]", has_text="dreadful").filter(visible=True).first.wait_for(timeout=60_000)
    after = sentences.evaluate_all(COLOURS)
    assert len(after) == 4  # two methods, each the original and the edited sentence
    for original_side, edited_side in (after[0:2], after[2:4]):
        assert [w for w, _ in original_side] == original.split()
        assert [w for w, _ in edited_side] == EDITED.split()
        assert original_side == before[0] or original_side == before[2]  # the original kept its colours
        coloured = {colour for _, colour in edited_side}
        assert coloured != {"rgba(0, 0, 0, 0)"} and edited_side != original_side
    captions = page.get_by_text("Edited:").filter(visible=True)
    assert captions.count() == 2 and "%" in captions.first.inner_text()
    assert page.get_by_test_id("stException").count() == 0
    snapshot(page, artifacts_dir / "explain-whatif-text.png")
