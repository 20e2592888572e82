"""Attention maps, rollout, gradient-weighted relevance, word merging and agreement (issue 14).

Models are dlx's own text and ViT models (random weights, tiny) and the bundled pretrained MiniLM;
the hand-computed cases pin the formulas down with numbers worked out on paper.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dlx.data.registry import DatasetMeta
from dlx.errors import DlxError
from dlx.explain.attention.rollout import relevance, rollout
from dlx.explain.attention.text import (
    agreement,
    attention_and_gradients,
    attention_maps,
    merge_attention,
    spearman,
    token_scores,
)
from dlx.explain.attention.vit import vit_attention, vit_maps
from dlx.explain.text.tokens import encode, merge_tokens, text_forward
from dlx.models.text_transformer import transformer
from dlx.models.vit import vit
from dlx.views.charts.attention import coloured_sentence, head_view, model_view, vit_overlays

TEXT = DatasetMeta("sentiment", "text", ("negative", "positive"), (16,))


@pytest.fixture(scope="module")
def tiny():
    """dlx's from-scratch text model: 2 layers, 2 heads, random weights."""
    torch.manual_seed(0)
    return transformer(TEXT, layers=2, heads=2, hidden=32, max_length=32, dropout=0.0).eval()


def test_attention_maps_equal_transformers_output_attentions(tiny):
    e = encode(tiny.tokenizer, "the plot was not very good", tiny.max_length)
    maps = attention_maps(tiny, e)
    with torch.no_grad():
        reference = tiny.encoder(input_ids=e.input_ids, attention_mask=e.attention_mask,
                                 output_attentions=True).attentions
    assert maps.shape == (2, 2, len(e.tokens), len(e.tokens))
    assert torch.equal(maps, torch.stack([a[0] for a in reference]))
    torch.testing.assert_close(maps.sum(-1), torch.ones(maps.shape[:-1]))
    # and the logits that come with them are the model's own
    logits, _ = text_forward(tiny, e.input_ids, e.attention_mask, attentions=True)
    torch.testing.assert_close(logits, tiny(e.input_ids, e.attention_mask))


def test_minilm_gives_all_72_maps_equal_to_output_attentions():
    from transformers import AutoModelForSequenceClassification

    from dlx.models.text_pretrained import minilm_dir, quiet_transformers, tokenizer

    with quiet_transformers():
        model = AutoModelForSequenceClassification.from_pretrained(
            str(minilm_dir()), local_files_only=True, attn_implementation="eager", num_labels=2).eval()
    e = encode(tokenizer(), "Honestly, the soundtrack wasn't unbelievably good!")
    maps = attention_maps(model, e)
    with torch.no_grad():
        reference = model(input_ids=e.input_ids, attention_mask=e.attention_mask, output_attentions=True).attentions
    assert maps.shape[:2] == (6, 12)
    assert torch.equal(maps, torch.stack([a[0] for a in reference]))
    torch.testing.assert_close(maps.sum(-1), torch.ones(maps.shape[:-1]))


def _hf_classifier(tiny):
    """A transformers classifier (BertForSequenceClassification) with the tiny model's encoder weights."""
    from transformers import BertForSequenceClassification

    model = BertForSequenceClassification(tiny.encoder.config).eval()
    model.bert.load_state_dict(tiny.encoder.state_dict(), strict=False)
    return model


@pytest.mark.parametrize("kind", ["dlx", "transformers"])
def test_gradients_of_attention_need_no_parameter_gradients(tiny, kind):
    """Frozen embeddings and lower layers (MiniLM's default) or a model with no parameter requiring
    grad: the attention maps' gradients are those of the unfrozen model, and its flags stay as they were."""
    import copy

    model = tiny if kind == "dlx" else _hf_classifier(tiny)
    e = encode(tiny.tokenizer, "the plot was not very good", tiny.max_length)
    reference = attention_and_gradients(model, e, target=1)
    partly = copy.deepcopy(model)
    encoder = getattr(partly, "encoder" if kind == "dlx" else "bert")
    for module in (encoder.embeddings, encoder.encoder.layer[0]):
        module.requires_grad_(False)
    for frozen in (partly, copy.deepcopy(model).requires_grad_(False)):
        flags = [p.requires_grad for p in frozen.parameters()]
        for ours, theirs in zip(attention_and_gradients(frozen, e, target=1), reference):
            torch.testing.assert_close(ours, theirs)
        assert [p.requires_grad for p in frozen.parameters()] == flags
        assert all(p.grad is None for p in frozen.parameters())
    assert all(p.requires_grad for p in model.parameters())


# Two layers, two heads, two tokens. Layer 1's heads average to [[1, 0], [.5, .5]], layer 2's to [[0, 1], [1, 0]].
MAPS = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]],
                     [[[0.0, 1.0], [1.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]]]])
GRADS = torch.tensor([[[[1.0, -1.0], [2.0, 1.0]], [[-1.0, 0.0], [1.0, 0.0]]],
                      [[[0.0, 2.0], [1.0, 0.0]], [[0.0, -2.0], [3.0, 0.0]]]])


def test_rollout_matches_the_hand_computed_case():
    # layer 1: (A + I) renormalised = [[1, 0], [.25, .75]]; layer 2: [[.5, .5], [.5, .5]]; product, layer 2 left
    torch.testing.assert_close(rollout(MAPS), torch.tensor([[0.625, 0.375], [0.625, 0.375]]))


def test_relevance_matches_the_hand_computed_case():
    # layer 1: mean_h max(G*A, 0) = [[.5, 0], [.5, .5]], R = I + that = [[1.5, 0], [.5, 1.5]]
    # layer 2: mean_h max(G*A, 0) = [[0, 1], [2, 0]], R += that @ R = [[.5, 1.5], [3, 0]]
    torch.testing.assert_close(relevance(MAPS, GRADS), torch.tensor([[2.0, 1.5], [3.5, 1.5]]))


def test_rollout_and_relevance_on_a_two_layer_model_follow_the_formulas(tiny):
    e = encode(tiny.tokenizer, "never boring", tiny.max_length)
    maps, grads, logits = attention_and_gradients(tiny, e, target=1)
    # independently: transformers' attentions, .backward() and retained gradients
    out = tiny.encoder(input_ids=e.input_ids, attention_mask=e.attention_mask, output_attentions=True)
    for a in out.attentions:
        a.retain_grad()
    tiny.head(tiny.pool(out.last_hidden_state, e.attention_mask))[0, 1].backward()
    a1, a2 = (a[0].detach() for a in out.attentions)
    g1, g2 = (a.grad[0] for a in out.attentions)
    eye = torch.eye(len(e.tokens))
    step = [(a.mean(0) + eye) / (a.mean(0) + eye).sum(-1, keepdim=True) for a in (a1, a2)]
    torch.testing.assert_close(rollout(maps), step[1] @ step[0])
    r1 = eye + (g1 * a1).clamp(min=0).mean(0)
    torch.testing.assert_close(relevance(maps, grads), r1 + (g2 * a2).clamp(min=0).mean(0) @ r1)
    # mean pooling reads every row; special tokens get nothing
    scores = token_scores(rollout(maps), e, "mean")
    assert scores[0] == 0 and scores[-1] == 0
    torch.testing.assert_close(scores[1:-1], rollout(maps).mean(0)[1:-1])


def test_word_pieces_map_to_their_words():
    from dlx.models.text_pretrained import tokenizer

    e = encode(tokenizer(), "The  movie wasn't unbelievably good, honestly!")
    assert e.words == ["The", "movie", "wasn't", "unbelievably", "good,", "honestly!"]
    pieces = {}
    for token, word in zip(e.tokens, e.word_of_token):
        pieces.setdefault(word, []).append(token)
    assert pieces[None] == ["[CLS]", "[SEP]"]
    assert pieces[2] == ["wasn", "'", "t"]
    assert pieces[3] == ["un", "##bel", "##ie", "##va", "##bly"]
    assert pieces[4] == ["good", ","]
    assert e.split_index == [0, 1, 2, 3, 4, 5]
    values = torch.arange(len(e.tokens), dtype=torch.float)  # piece i has value i
    torch.testing.assert_close(merge_tokens(values, e.word_of_token, len(e.words), "sum"),
                               torch.tensor([1.0, 2.0, 3 + 4 + 5, 6 + 7 + 8 + 9 + 10, 11 + 12, 13 + 14]))
    torch.testing.assert_close(merge_tokens(values, e.word_of_token, len(e.words), "mean"),
                               torch.tensor([1.0, 2.0, 4.0, 8.0, 11.5, 13.5]))
    with pytest.raises(DlxError) as error:
        merge_tokens(values, e.word_of_token, len(e.words), "max")
    assert error.value.field == "merge"


def test_merged_attention_keeps_rows_summing_to_one(tiny):
    e = encode(tiny.tokenizer, "the acting wasn't unbelievably good", tiny.max_length)
    merged, labels = merge_attention(attention_maps(tiny, e), e)
    assert labels == ["[CLS]", "the", "acting", "wasn't", "unbelievably", "good", "[SEP]"]
    assert merged.shape == (2, 2, 7, 7)
    torch.testing.assert_close(merged.sum(-1), torch.ones(2, 2, 7))


def test_empty_sentence_is_refused_by_name(tiny):
    with pytest.raises(DlxError) as error:
        encode(tiny.tokenizer, "   ")
    assert error.value.field == "text"


def test_agreement_is_one_for_a_head_looking_where_the_attributions_point(tiny):
    e = encode(tiny.tokenizer, "a b c d", tiny.max_length)  # [CLS] a b c d [SEP]
    attributions = torch.tensor([0.0, 0.1, -0.4, 0.3, 0.2, 0.0])
    maps = torch.full((1, 2, 6, 6), 1 / 6)
    maps[0, 0, 0] = torch.tensor([0.2, 0.05, 0.4, 0.2, 0.1, 0.05])  # same order as |attributions|
    maps[0, 1, 0] = torch.tensor([0.2, 0.4, 0.05, 0.1, 0.2, 0.05])  # the reverse
    matrix, _ = agreement(maps, attributions, e, source="cls")
    assert matrix[0, 0] == pytest.approx(1.0)
    assert matrix[0, 1] == pytest.approx(-1.0)
    assert np.isnan(spearman(np.ones(4), np.arange(4.0)))


def test_vit_attention_equals_the_models_own_and_rolls_out_on_the_patch_grid():
    torch.manual_seed(0)
    model = vit(DatasetMeta("digits", "image", tuple("0123456789"), (1, 8, 8)), layers=4).eval()
    x = torch.rand(1, 1, 8, 8)
    logits, maps = vit_attention(model, x)
    with torch.no_grad():
        reference = model.attentions(x)
        torch.testing.assert_close(logits, model(x))
    assert len(maps) == 4 and maps[0].shape == (1, 4, 17, 17)
    for ours, theirs in zip(maps, reference):
        assert torch.equal(ours, theirs)
        torch.testing.assert_close(ours.sum(-1), torch.ones(ours.shape[:-1]))
    shown = vit_maps(model, x[0])
    assert shown["heads"].shape == (4, 4, 4, 4) and shown["rollout"].shape == (4, 4)
    torch.testing.assert_close(shown["rollout"].flatten(), rollout(torch.stack([m[0] for m in reference]))[0, 1:])
    fig = vit_overlays(x[0].numpy(), {"rollout": shown["rollout"].numpy(), "L0 H0": shown["heads"][0, 0].numpy()})
    assert len(fig.data) == 4  # an image and a heatmap per panel


def test_charts_draw_every_head_and_escape_the_sentence(tiny):
    e = encode(tiny.tokenizer, "not <b>good</b>", tiny.max_length)
    maps = attention_maps(tiny, e).numpy()
    assert len(model_view(maps, e.tokens).data) == 2 * 2
    assert {t.name for t in head_view(maps, e.tokens, layer=1, heads=[0, 1]).data if t.name} == {"head 0", "head 1"}
    snippet = coloured_sentence(e.words, np.array([-1.0, 0.5]))
    assert "&lt;b&gt;good&lt;/b&gt;" in snippet and "<b>" not in snippet
    assert "rgba(33,102,172,0.850)" in snippet  # the strongest word, against the target: full blue


def test_vit_rollout_spreads_each_patch_over_its_pixels_for_the_image_metrics():
    from dlx.explain.attention.vit import vit_rollout_pixels
    from dlx.explain.faithfulness import deletion_insertion
    from dlx.explain.image.localisation import mask_mass

    torch.manual_seed(0)
    model = vit(DatasetMeta("digits", "image", tuple("0123456789"), (1, 8, 8)), layers=4).eval()
    images = torch.rand(3, 1, 8, 8)
    pixels = vit_rollout_pixels(model, images)
    assert pixels.shape == (3, 1, 8, 8)
    grid = vit_maps(model, images[1])["rollout"]
    torch.testing.assert_close(pixels[1, 0, 2:4, 4:6], grid[1, 2].expand(2, 2))  # patch (1, 2): 2x2 pixels
    curves = deletion_insertion(model, images, pixels, torch.zeros(3, dtype=torch.long), torch.zeros_like(images),
                                steps=4)
    assert curves.deletion.shape == (3, 5)
    assert mask_mass(pixels, torch.ones(3, 8, 8, dtype=torch.bool)).tolist() == pytest.approx([1.0] * 3)


def test_unsigned_scores_are_coloured_from_their_smallest_to_their_largest():
    snippet = coloured_sentence(["a", "b", "c"], np.array([0.30, 0.31, 0.32]), signed=False)
    assert "rgba(178,24,43,0.000)" in snippet and "rgba(178,24,43,0.850)" in snippet
    assert "rgba(33,102,172" not in snippet
