"""Token attributions and their scores for text models (issue 14): Layer IG's completeness, word
ablation against a by-hand ablation, deletion/insertion by word, rationale scores, and on the
generated sentiment set a trained model whose rationale words Layer IG puts in its top 3."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dlx.data.registry import DatasetMeta, load_dataset
from dlx.data.text_tokens import crop, tokenize_split
from dlx.errors import DlxError
from dlx.explain.faithfulness import (
    _kept_batch,
    average_precision,
    deletion_insertion_words,
    rationale_mask,
    recall_at_k,
)
from dlx.explain.methods import methods_for
from dlx.explain.scoring import score_text_methods
from dlx.explain.text.methods import baseline_ids, explain_text
from dlx.explain.text.tokens import encode
from dlx.models.text_transformer import transformer
from dlx.store import default_store

TEXT = DatasetMeta("sentiment", "text", ("negative", "positive"), (16,))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return transformer(TEXT, layers=2, heads=2, hidden=32, max_length=32, dropout=0.0).eval()


def logit(model, ids, target):
    with torch.no_grad():
        return float(model(ids, torch.ones_like(ids))[0, target])


def test_layer_ig_is_complete_within_tolerance(tiny):
    """Attributions add up to logit(sentence) - logit(padded baseline): |gap| <= 1e-3 + 1% of the change."""
    e = encode(tiny.tokenizer, "the ending was truly awful on the small screen", tiny.max_length)
    result = explain_text("layer_integrated_gradients", tiny, e, 0, n_steps=64)
    change = logit(tiny, e.input_ids, 0) - logit(tiny, baseline_ids(e), 0)
    assert abs(float(result.values.sum()) - change) <= 1e-3 + 0.01 * abs(change)
    assert abs(result.delta) <= 1e-3 + 0.01 * abs(change)
    assert result.values[0] == 0 and result.values[-1] == 0  # [CLS] and [SEP] are in the baseline too


def test_baseline_keeps_special_tokens_and_pads_the_rest(tiny):
    e = encode(tiny.tokenizer, "not good", tiny.max_length)
    base = baseline_ids(e)[0].tolist()
    assert base == [e.input_ids[0, 0].item(), e.pad_id, e.pad_id, e.input_ids[0, -1].item()]


def test_word_ablation_is_the_drop_when_a_words_pieces_are_padded(tiny):
    e = encode(tiny.tokenizer, "the soundtrack was unbelievably dreadful", tiny.max_length)
    words = explain_text("word_ablation", tiny, e, 1).words(e)
    full = logit(tiny, e.input_ids, 1)
    for w in range(len(e.words)):
        ids = e.input_ids.clone()
        ids[0, [i for i, word in enumerate(e.word_of_token) if word == w]] = e.pad_id
        assert float(words[w]) == pytest.approx(full - logit(tiny, ids, 1), abs=1e-5)


def test_every_method_gives_one_value_per_piece_and_zero_on_specials(tiny):
    e = encode(tiny.tokenizer, "frankly the cast seemed quite lovely", tiny.max_length)
    for name in methods_for("text"):
        result = explain_text(name, tiny, e, 1)
        assert result.values.shape == (len(e.tokens),), name
        assert result.values[0] == 0 and result.values[-1] == 0, name
        assert torch.isfinite(result.values).all(), name
    assert not explain_text("saliency", tiny, e, 1).signed
    assert explain_text("saliency", tiny, e, 1, mode="grad_dot_input").signed


def test_bad_method_parameter_or_target_is_named(tiny):
    e = encode(tiny.tokenizer, "good", tiny.max_length)
    for call, field in ((lambda: explain_text("lime", tiny, e, 0), "method"),
                        (lambda: explain_text("saliency", tiny, e, 0, mode="sq"), "saliency.mode"),
                        (lambda: explain_text("layer_integrated_gradients", tiny, e, 0, steps=3),
                         "layer_integrated_gradients.steps"),
                        (lambda: explain_text("saliency", tiny, e, 2), "target")):
        with pytest.raises(DlxError) as error:
            call()
        assert error.value.field == field


def test_removed_words_leave_the_sentence_without_their_pieces(tiny):
    e = encode(tiny.tokenizer, "not unbelievably good", tiny.max_length)
    ids, mask = _kept_batch(e, torch.tensor([[True, False, True], [False, False, False]]))
    expected = tiny.tokenizer("not good", return_tensors="pt")["input_ids"][0]
    assert ids[0, :len(expected)].tolist() == expected.tolist() and mask[0].sum() == len(expected)
    assert mask[1].sum() == 2 and ids[1, :2].tolist() == [e.input_ids[0, 0].item(), e.input_ids[0, -1].item()]


def test_deletion_and_insertion_run_from_the_sentence_to_nothing(tiny):
    e = encode(tiny.tokenizer, "the movie was good", tiny.max_length)
    curves = deletion_insertion_words(tiny, e, torch.tensor([0.1, 0.4, 0.2, 0.3]), target=1, signed=True)
    with torch.no_grad():
        full = torch.softmax(tiny(e.input_ids, e.attention_mask), -1)[0, 1].item()
        nothing = torch.softmax(tiny(e.input_ids[:, [0, -1]], torch.ones(1, 2, dtype=torch.long)), -1)[0, 1].item()
        # deleting the top word ("movie") first
        no_movie = tiny.tokenizer("the was good", return_tensors="pt")["input_ids"]
        p_no_movie = torch.softmax(tiny(no_movie, torch.ones_like(no_movie)), -1)[0, 1].item()
    np.testing.assert_allclose(curves.fractions, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(curves.deletion[[0, -1]], [full, nothing], atol=1e-5)
    np.testing.assert_allclose(curves.insertion[[0, -1]], [nothing, full], atol=1e-5)
    assert curves.deletion[1] == pytest.approx(p_no_movie, abs=1e-5)
    # of four words the 1, 5, 10 and 20% bins remove (keep) the top one, the 50% bin the top two
    assert curves.comprehensiveness == pytest.approx(full - (4 * p_no_movie + curves.deletion[2]) / 5, abs=1e-5)
    assert curves.sufficiency == pytest.approx(full - (4 * curves.insertion[1] + curves.insertion[2]) / 5, abs=1e-5)


def test_rationale_scores_on_hand_cases(tiny):
    e = encode(tiny.tokenizer, "honestly the plot was not good", tiny.max_length)
    mask = rationale_mask(e, [4, 5])
    assert mask.tolist() == [False, False, False, False, True, True]
    scores = torch.tensor([0.0, 0.3, 0.1, 0.0, -0.5, 0.2])  # ranked by magnitude: not, the, good, plot...
    assert recall_at_k(scores, mask, k=3) == 1.0
    assert recall_at_k(scores, mask, k=1) == 1.0
    assert recall_at_k(torch.tensor([0.0, 0.3, 0.1, 0.2, -0.5, 0.05]), mask, k=3) == 0.5
    # hits at ranks 1 and 3: AP = (1/1 + 2/3) / 2
    assert average_precision(scores, mask) == pytest.approx((1 + 2 / 3) / 2)


@pytest.mark.slow
def test_layer_ig_finds_the_rationale_of_a_trained_model_on_the_generated_set():
    """A small transformer trained here on `sentiment`: for >= 80% of the correctly classified test
    sentences both the cue word and its negation (the rationale) are in Layer IG's top 3 words."""
    bundle = load_dataset("sentiment", seed=0, val_fraction=0.1, test_fraction=0.1)
    torch.manual_seed(0)
    model = transformer(bundle.meta, layers=2, heads=2, hidden=32, max_length=24, dropout=0.0)
    train = tokenize_split(bundle.train, model.tokenizer, 24)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(4):  # 4 epochs: test accuracy 1.0, rationale in the top 3 for 36 of 40 (3 epochs: 33)
        for rows in torch.randperm(len(train.y)).split(64):
            ids, mask = crop(train.x[rows], train.attention_mask[rows])
            loss = torch.nn.functional.cross_entropy(model(ids, mask), train.y[rows])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()
    test = bundle.test
    sentences, targets, rationales = [], [], []
    for i in range(len(test.y)):
        e = encode(model.tokenizer, test.texts[i], 24)
        with torch.no_grad():
            if int(model(e.input_ids, e.attention_mask).argmax()) == int(test.y[i]):
                sentences.append(e)
                targets.append(int(test.y[i]))
                rationales.append(np.flatnonzero(test.extras["rationale"][i].numpy()).tolist())
        if len(sentences) == 40:
            break
    assert len(sentences) == 40 and i < 50  # trained: at least 80% of the sentences tried are right
    scores = score_text_methods(model, sentences, targets, ["layer_integrated_gradients", "attention_rollout"],
                                rationales=rationales, k=3)
    recall = scores.metrics["layer_integrated_gradients"]["rationale_recall"]
    assert np.mean(np.array(recall) == 1.0) >= 0.8
    table = {row["method"]: row for row in scores.table()}
    assert table["Layer Integrated Gradients"]["Comprehensiveness ↑"] > table["Random"]["Comprehensiveness ↑"]
    assert table["Layer Integrated Gradients"]["Rationale AUPRC ↑"] > table["Random"]["Rationale AUPRC ↑"]


# -- the Explain page for a text run and a ViT run (AppTest) ---------------------------------------
PAGE = "pages/explain.py"


def open_explain(run_id: int):
    from pathlib import Path

    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parents[2] / PAGE), default_timeout=180)
    at.query_params["run"] = str(run_id)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_text_run_page_shows_model_view_head_view_and_coloured_words(monkeypatch):
    import json

    from tests.helpers.processes import train_in_process

    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "0")
    run_id = train_in_process({"dataset": "sentiment", "model": "transformer", "epochs": 1, "batch_size": 64,
                               "model_options": {"layers": 2, "heads": 2, "hidden": 16, "max_length": 24},
                               "device": "cpu"})
    at = open_explain(run_id)
    figures = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    assert sum(trace["type"] == "heatmap" for trace in figures[0]["data"]) == 2 * 2  # the model view grid
    assert any(trace.get("name") == "head 0" for f in figures for trace in f["data"])  # the head view
    assert any("<span" in str(h.proto.body) for h in at.get("html"))  # coloured words
    # a sentence of the user's, with markup, is shown escaped
    at.radio(key="explain.text.source").set_value("my own sentence").run()
    at.text_input(key="explain.text.own").set_value("not <i>good</i>").run()
    at.radio(key="explain.text.merge").set_value("merged into words: sum").run()
    assert not at.exception, [e.value for e in at.exception]
    bodies = " ".join(str(h.proto.body) for h in at.get("html"))
    assert "&lt;i&gt;good&lt;/i&gt;" in bodies and "<i>" not in bodies
    # the methods scored on two test sentences, rationale scores included (the generated set has them)
    at.number_input(key="explain.text.n").set_value(2).run()
    at.button(key="explain.text.score").click().run()
    assert not at.exception, [e.value for e in at.exception]
    table, = [d.value for d in at.dataframe if "Rationale AUPRC ↑" in d.value.columns]
    assert "Random" in set(table["method"]) and "Layer Integrated Gradients" in set(table["method"])


def test_vit_run_page_shows_rollout_over_the_image(monkeypatch):
    import json

    from tests.helpers.processes import train_in_process

    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "0")
    run_id = train_in_process({"dataset": "digits", "model": "vit", "epochs": 1, "device": "cpu",
                               "model_options": {"layers": 2, "heads": 2, "hidden": 16, "mlp": 32}})
    at = open_explain(run_id)
    figures = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    overlays = [f for f in figures if any(t["type"] == "image" for t in f["data"])
                and any(a.get("text") == "rollout" for a in f["layout"].get("annotations", []))]
    assert overlays  # one per sample: the image under the rollout and each head's [CLS] attention
    # the rollout is a method of the grid, chosen by default for a ViT, and scored like the others
    methods = at.multiselect(key=next(w.key for w in at.multiselect if w.key.startswith("explain.methods")))
    assert "attention_rollout" in methods.value
    grid_titles = {a["text"].split("<br>")[0] for f in figures for a in f["layout"].get("annotations", [])}
    assert "Attention rollout" in grid_titles
    methods.set_value(["attention_rollout"]).run()
    at.button(key="explain.score").click().run()
    assert not at.exception, [e.value for e in at.exception]
    scored, = [d.value for d in at.dataframe if "Deletion AUC ↓" in d.value.columns]
    assert set(scored["method"]) == {"Attention rollout", "Random (reference)"}  # scored against a random map


# -- scoring over many sentences as a job on a real worker ------------------------------------------
def test_text_scoring_job_runs_on_the_worker_and_stores_its_result(worker):
    from dlx.explain.jobs import TextTask, find_job, submit_task, task_result
    from dlx.explain.models_cache import get_loaded_run
    from dlx.store import FINAL_STATES
    from tests.helpers.processes import train_in_process, wait_for

    run_id = train_in_process({"dataset": "sentiment", "model": "transformer", "epochs": 1, "batch_size": 64,
                               "model_options": {"layers": 1, "heads": 2, "hidden": 16, "max_length": 24},
                               "device": "cpu"})
    task = TextTask(run_id=run_id, methods=["word_ablation", "attention_rollout"], n_samples=3)
    job_id = submit_task(default_store(), task)
    job = wait_for(lambda: (j := default_store().queue.get_job(job_id)).status in FINAL_STATES and j, timeout=180,
                   message="the explain_text job to end")
    assert job.status == "succeeded" and job.progress == 1.0
    assert find_job(default_store(), task).id == job_id
    scores = task_result(get_loaded_run(default_store(), run_id), task)
    assert set(scores.metrics) == {"word_ablation", "attention_rollout", "random"}
    assert all(len(values) == 3 for values in scores.metrics["word_ablation"].values())
    assert len(scores.deletion["word_ablation"]) == 3  # one curve per sentence, lengths kept
    assert {row["method"] for row in scores.table()} == {"Feature Ablation (words)", "Attention rollout", "Random"}


def test_text_task_is_checked_before_it_is_queued():
    from dlx.explain.jobs import TextTask, submit_task

    with pytest.raises(DlxError) as error:
        submit_task(default_store(),
                         TextTask(run_id=1, methods=["saliency"], params={"saliency": {"mode": "cube"}}))
    assert error.value.field == "saliency.mode"


def test_a_sentence_explained_twice_is_read_back_from_the_cache():
    from dlx.explain.cache import explain_text_cached
    from dlx.explain.models_cache import get_loaded_run
    from tests.helpers.processes import train_in_process

    run_id = train_in_process({"dataset": "sentiment", "model": "transformer", "epochs": 1, "batch_size": 64,
                               "model_options": {"layers": 1, "heads": 2, "hidden": 16, "max_length": 24},
                               "device": "cpu"})
    loaded = get_loaded_run(default_store(), run_id)
    e = encode(loaded.model.tokenizer, "the plot was never dull", 24)
    first = explain_text_cached(loaded, e, "layer_integrated_gradients", 1, n_steps=20)
    loaded.model.head.weight.data.zero_()  # were it recomputed, every attribution would now be 0
    second = explain_text_cached(loaded, e, "layer_integrated_gradients", 1, n_steps=20)
    assert torch.equal(first.values, second.values) and first.values.abs().sum() > 0
    assert second.delta == pytest.approx(first.delta) and second.seconds == pytest.approx(first.seconds)
    other = explain_text_cached(loaded, e, "layer_integrated_gradients", 0, n_steps=20)  # another target
    assert other.values.abs().sum() == 0
