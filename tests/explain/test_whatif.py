"""What-if: an edited input's prediction is the model's own on it (table, text, image), the nearest
counterfactual flips the prediction and is minimal as documented, bad edits name their field, and the
Explain page's What-if tab for a table run and a text run."""
from __future__ import annotations

import pytest
import torch

from dlx.errors import DlxError
from dlx.explain.counterfactual import nearest_counterfactual
from dlx.explain.models_cache import get_loaded_run
from dlx.explain.text.tokens import encode, text_forward
from dlx.explain.whatif import (
    box_mask,
    delete_word,
    feature_ranges,
    image_whatif,
    replace_word,
    table_whatif,
    text_whatif,
    to_own_units,
)
from dlx.store import default_store
from tests.helpers.explain_page import charts, open_page, traces
from tests.helpers.processes import train_in_process


@pytest.fixture
def dlx_home(shared_home):
    """Overrides conftest's per-test directory: the tests here share the module's trained runs."""
    return shared_home


@pytest.fixture(scope="module")
def table_run(shared_home) -> int:
    return train_in_process({"dataset": "breast_cancer", "model": "mlp", "epochs": 2})


@pytest.fixture(scope="module")
def text_run(shared_home) -> int:
    return train_in_process({"dataset": "sentiment", "model": "transformer", "epochs": 1, "batch_size": 64,
                             "model_options": {"layers": 2, "heads": 2, "hidden": 16, "max_length": 24},
                             "device": "cpu", "val_fraction": 0.45, "test_fraction": 0.45})  # 10% to train: fast


@pytest.fixture(scope="module")
def image_run(shared_home) -> int:
    return train_in_process({"dataset": "digits", "model": "mlp", "epochs": 1})


def own_prediction(model, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.softmax(model(x[None]), -1)[0]


def test_table_edit_predicts_what_the_model_predicts_on_the_edited_row(table_run):
    loaded = get_loaded_run(default_store(), table_run)
    row = loaded.bundle.test.x[0]
    first = feature_ranges(loaded.bundle)[0]
    result = table_whatif(loaded, row, {first.name: first.high}, ["integrated_gradients"])
    edited = result.gallery.inputs[1]
    assert to_own_units(loaded.bundle, edited[None])[0, 0] == pytest.approx(first.high, rel=1e-5)
    assert torch.equal(edited[1:], row[1:])  # the other features untouched
    assert torch.allclose(result.edited.probs, own_prediction(loaded.model, edited), atol=1e-6)
    assert torch.allclose(result.original.probs, own_prediction(loaded.model, row), atol=1e-6)
    assert result.edited.attributions["integrated_gradients"].shape == (row.shape[0],)
    assert not torch.equal(torch.as_tensor(result.edited.attributions["integrated_gradients"]),
                           torch.as_tensor(result.original.attributions["integrated_gradients"]))


def test_bad_table_edits_name_the_field(table_run):
    loaded = get_loaded_run(default_store(), table_run)
    row = loaded.bundle.test.x[0]
    with pytest.raises(DlxError, match="'height' is not a feature") as err:
        table_whatif(loaded, row, {"height": 1.0}, [])
    assert err.value.field == "height"
    first = feature_ranges(loaded.bundle)[0]
    with pytest.raises(DlxError, match="outside the training data's range") as err:
        table_whatif(loaded, row, {first.name: first.high + 100}, [])
    assert err.value.field == first.name and first.name in str(err.value)


def test_counterfactual_flips_the_prediction_and_no_smaller_one_feature_step_does(table_run):
    loaded = get_loaded_run(default_store(), table_run)
    probs = loaded.test_probs()
    row = loaded.bundle.test.x[int(probs.max(1).values.argmin())]  # the least confident: a flip is near
    original = int(loaded.predict(row[None])[0].argmax())
    found = nearest_counterfactual(loaded, row)
    assert found is not None and "line search" in found.way
    assert found.predicted != original
    assert int(own_prediction(loaded.model, found.row).argmax()) == found.predicted
    assert torch.count_nonzero(found.row != row) == 1 and found.row[found.index] != row[found.index]
    # minimal as documented: no single feature moved by fewer standard deviations on the 0.02 grid flips it
    train = loaded.bundle.train.x
    sd, low, high = train.std(0), train.min(0).values, train.max(0).values
    steps = torch.arange(0.02, found.change_std - 0.02 + 1e-9, 0.02)
    for feature in range(row.shape[0]):
        for sign in (1, -1):
            values = row[feature] + sign * steps * sd[feature]
            values = values[(values >= low[feature]) & (values <= high[feature])]
            probes = row.repeat(len(values), 1)
            probes[:, feature] = values
            if len(probes):
                assert (loaded.predict(probes).argmax(1) == original).all(), (feature, sign)


def test_text_edit_predicts_what_the_model_predicts_on_the_edited_sentence(text_run):
    loaded = get_loaded_run(default_store(), text_run)
    sentence = loaded.bundle.test.texts[0]
    edited = replace_word(sentence, 0, "terrible") + " awful boring"
    result = text_whatif(loaded, sentence, edited, ["word_ablation"])
    e = encode(loaded.model.tokenizer, edited, 24)
    with torch.no_grad():
        logits = text_forward(loaded.model, e.input_ids, e.attention_mask)[0]
    assert torch.allclose(result.edited.probs, torch.softmax(logits, -1)[0], atol=1e-6)
    assert result.edited.words == e.words and len(result.edited.attributions["word_ablation"]) == len(e.words)
    assert delete_word("a b c", 1) == "a c"
    with pytest.raises(DlxError) as err:
        text_whatif(loaded, sentence, "   ", ["word_ablation"])
    assert err.value.field == "sentence"
    with pytest.raises(DlxError) as err:
        delete_word(sentence, 99)
    assert err.value.field == "position"


def test_image_mask_predicts_what_the_model_predicts_on_the_masked_image(image_run):
    loaded = get_loaded_run(default_store(), image_run)
    image = loaded.bundle.test.x[0]
    mask = box_mask(image.shape, 2, 1, 4, 5)
    result = image_whatif(loaded, image, mask, ["saliency"])
    edited = result.gallery.inputs[1]
    assert torch.equal(edited[:, 1:6, 2:6], torch.zeros(1, 5, 4)) and torch.equal(edited[:, 0], image[:, 0])
    assert torch.allclose(result.edited.probs, own_prediction(loaded.model, edited), atol=1e-6)
    brush = torch.zeros(8, 8, dtype=torch.bool)
    brush[3, 2:7] = True
    brushed = image_whatif(loaded, image, brush.numpy(), ["saliency"], baseline="mean").gallery.inputs[1]
    assert torch.equal(brushed[:, ~brush], image[:, ~brush]) and not torch.equal(brushed, image)
    with pytest.raises(DlxError) as err:
        box_mask(image.shape, 6, 0, 5, 1)
    assert err.value.field == "w"


def test_whatif_tab_of_a_table_run_edits_a_feature_and_finds_a_counterfactual(table_run):
    loaded = get_loaded_run(default_store(), table_run)
    least_sure = int(loaded.test_probs().max(1).values.argmin())  # a single feature can flip it (test above)
    at = open_page(run=str(table_run))
    at.selectbox(key="explain.pick").set_value("index").run()
    at.text_input(key="explain.indices").set_value(str(least_sure)).run()
    first = feature_ranges(loaded.bundle)[0]
    assert "What-if" in [t.label for t in at.tabs]
    assert not [s for s in at.slider if str(s.key).startswith("whatif.")]  # nothing computed until asked
    at.toggle(key="whatif.on").set_value(True).run()
    slider = at.slider(key=f"whatif.table.{first.name}")
    assert (slider.min, slider.max) == (pytest.approx(first.low), pytest.approx(first.high))
    slider.set_value(first.high).run()
    assert not at.exception, [e.value for e in at.exception]
    said = "\n".join(m.value for m in at.markdown)
    assert f"{first.name} = {first.high:.4g}" in said and "Edited" in said
    at.button(key="whatif.counterfactual").click().run()
    assert not at.exception
    assert any("one-feature line search" in c.value for c in at.caption)
    assert "flips the prediction to" in at.success[0].value
    at.button(key="whatif.apply").click().run()  # the sliders at the counterfactual: the edit flips it
    said = "\n".join(m.value for m in at.markdown)
    assert "the prediction flips" in said and f"{first.name} = {first.high:.4g}" not in said


def test_whatif_tab_of_a_text_run_colours_both_sentences(text_run):
    at = open_page(run=str(text_run))
    at.toggle(key="whatif.text.on").set_value(True).run()
    sentence = at.text_area(key="whatif.text.edited")
    assert sentence.value == get_loaded_run(default_store(), text_run).bundle.test.texts[0]
    sentence.set_value("").run()
    assert any("sentence: the edited sentence is empty" in e.value for e in at.error)
    sentence.set_value("awful terrible boring").run()
    assert not at.exception, [e.value for e in at.exception]
    coloured = [h.proto.body for h in at.get("html") if "span title" in h.proto.body]
    whatif = coloured[-4:]  # after the Token attributions tab's sentences: original and edited, per method
    assert [">awful<" in body for body in whatif] == [False, True, False, True]
    assert sum(">awful<" in body for body in coloured) == 2
    word = next(s for s in at.selectbox if s.label == "Word")
    assert word.options == ["0: awful", "1: terrible", "2: boring"]
    word.set_value(1).run()
    at.button(key="whatif.text.delete").click().run()
    assert at.text_area(key="whatif.text.edited").value == "awful boring"
    at.text_input(key="whatif.text.replacement").set_value("great")
    at.button(key="whatif.text.replace").click().run()  # word 0: the word picker starts afresh on each edit
    assert at.text_area(key="whatif.text.edited").value == "great boring" and not at.exception
    assert any(">great<" in h.proto.body for h in at.get("html"))


def test_whatif_tab_of_an_image_run_masks_a_box_or_shows_another_sample(image_run):
    at = open_page(run=str(image_run))
    at.toggle(key="whatif.on").set_value(True).run()
    at.slider(key="whatif.image.w").set_value(3).run()  # the box at (2, 2), 3 wide and 4 high on the 8×8 digit
    assert not at.exception, [e.value for e in at.exception]
    grid = charts(at)[-1]
    assert traces(grid, "heatmap") == 2 * 2  # original and masked, each with Saliency and IG (an MLP: no Grad-CAM)
    titles = " ".join(a["text"].replace("<br>", " ") for a in grid["layout"]["annotations"])
    assert "edited: 12 pixels masked (zeros)" in titles
    at.radio(key="whatif.image.how").set_value("another test sample").run()
    at.number_input(key="whatif.image.other").set_value(5).run()
    assert not at.exception and any("test sample #5" in m.value for m in at.markdown)
