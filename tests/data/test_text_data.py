"""Text data: the generated sentiment set's known answer, the checked CSV loader, tokenisation."""
from __future__ import annotations

import pytest
import torch

from dlx.data import DATASETS, load_dataset
from dlx.data.text_csv import load_text_csv, read_text_csv
from dlx.data.text_sentiment import NEGATIONS, NEGATIVE, POSITIVE, generate
from dlx.data.text_tokens import crop, tokenize_split
from dlx.errors import DlxError
from dlx.models.text_pretrained import tokenizer


def test_sentiment_label_is_its_cue_word_flipped_by_negation_and_the_rationale_marks_them():
    texts, labels, rationale = generate(seed=3, per_class=300)
    assert labels.tolist().count(0) == labels.tolist().count(1) == 300
    negated = 0
    for text, label, marks in zip(texts, labels, rationale):
        words = text.split()
        marked = [w for w, m in zip(words, marks) if m]
        cue = marked[-1]
        assert cue in POSITIVE + NEGATIVE
        assert not [w for w in words if w in POSITIVE + NEGATIVE and w != cue]  # one cue per sentence
        flipped = len(marked) == 2
        if flipped:
            assert marked[0] in NEGATIONS and words.index(marked[0]) < words.index(cue)
            negated += 1
        assert label == int((cue in POSITIVE) != flipped), text
    assert 0.3 < negated / len(texts) < 0.5  # negation is common enough to have to be learnt


def test_sentiment_splits_hold_sentences_and_rationales_and_are_seeded():
    bundle = load_dataset("sentiment", seed=1)
    assert DATASETS["sentiment"].kind == "text" and bundle.meta.classes == ("negative", "positive")
    total = len(bundle.train) + len(bundle.val) + len(bundle.test)
    assert total == DATASETS["sentiment"].rows == 3000
    test = bundle.test
    assert len(test.texts) == len(test) and test.x.shape == (len(test), 0)
    assert test.extras["rationale"].shape == (len(test), bundle.meta.input_shape[0])
    assert load_dataset.__wrapped__("sentiment", seed=1).test.texts == test.texts
    assert load_dataset.__wrapped__("sentiment", seed=2).test.texts != test.texts


def write(tmp_path, content: bytes | str, name: str = "reviews.csv"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def test_csv_loads_classes_sorted_with_quoted_commas_and_a_bom(tmp_path):
    rows = "".join(f'"film {i}, said {i}",{"pos" if i % 2 else "neg"}\n' for i in range(40))
    path = write(tmp_path, "\ufeffreview,label\n" + rows)
    table = read_text_csv(path, "review", "label")
    assert table.classes == ("neg", "pos") and table.texts[1] == "film 1, said 1" and table.labels[1] == 1
    bundle = load_text_csv(path, "review", "label", seed=0)
    assert bundle.meta.kind == "text" and len(bundle.train) + len(bundle.val) + len(bundle.test) == 40


@pytest.mark.parametrize(("content", "label_column", "field", "words"), [
    ("review,label\ngood,1\nbad,0\n", "sentiment", "label_column",
     ["no column 'sentiment'", "'review', 'label'"]),
    ("review,label\ngood,1\n  ,0\nbad,0\n", "label", "text_column", ["empty text", "'review'", "line 3"]),
    ("review,label\ngood,1\nbad,\n", "label", "label_column", ["empty label", "line 3"]),
    ("review,label\ngood,1\nbad,1\n", "label", "label_column", ["only '1'", "two classes"]),
    ("review,label\n", "label", "label_column", ["no rows"]),
    (b"review,label\ngood,1\nna\xefve,0\n", "label", "file", ["not UTF-8", "line 3"]),
])
def test_each_bad_csv_gets_a_message_naming_the_column_or_line(tmp_path, content, label_column, field, words):
    path = write(tmp_path, content)
    with pytest.raises(DlxError) as caught:
        read_text_csv(path, "review", label_column)
    assert caught.value.field == field
    for word in words:
        assert word in str(caught.value)


def test_csv_missing_text_column_is_named(tmp_path):
    path = write(tmp_path, "body,label\ngood,1\nbad,0\n")
    with pytest.raises(DlxError, match="no column 'review'; its columns are 'body', 'label'") as caught:
        read_text_csv(path, "review", "label")
    assert caught.value.field == "text_column"


def test_tokens_map_back_to_their_words_and_batches_are_cropped_to_their_longest():
    bundle = load_dataset("sentiment", seed=0)
    words = tokenizer()
    split = tokenize_split(bundle.test, words, max_length=64)
    assert split.x.dtype == torch.int64 and split.x.shape == split.attention_mask.shape
    for i in range(20):
        ids, word_ids = split.x[i], split.extras["word_ids"][i]
        sentence = split.texts[i].split()
        for w, word in enumerate(sentence):
            pieces = words.convert_tokens_to_string(words.convert_ids_to_tokens(ids[word_ids == w].tolist()))
            assert pieces.replace(" ", "") == word
        assert int(split.attention_mask[i].sum()) == int((word_ids >= 0).sum()) + 2  # [CLS] and [SEP]
    assert tokenize_split(bundle.test, words, max_length=64).x is split.x  # tokenised once, cached
    short = tokenize_split(bundle.test, words, max_length=6)
    assert short.x.shape[1] == 6 and (short.x[:, -1][short.attention_mask[:, -1] == 1] == words.sep_token_id).all()
    shortest = split.attention_mask.sum(1).argsort()[:4]  # the four shortest sentences
    ids, mask = crop(split.x[shortest], split.attention_mask[shortest])
    assert ids.shape[1] == int(split.attention_mask[shortest].sum(1).max()) < split.x.shape[1]
    assert mask[:, -1].any() and (ids[mask == 0] == words.pad_token_id).all()
