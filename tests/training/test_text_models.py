"""Text models: the common interface explainers use, freezing, padding, and training through a worker."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from dlx.data import DatasetMeta, load_dataset
from dlx.errors import DlxError
from dlx.models import build_model
from dlx.store import FINAL_STATES, default_store
from dlx.training.checkpoints import load_run_model
from dlx.training.fits import launch_config
from dlx.training.train import evaluate, tokenize_bundle
from tests.helpers.processes import train_in_process, wait_for

META = DatasetMeta("sentiment", "text", ("negative", "positive"), (16,))
TINY = {"layers": 2, "heads": 2, "hidden": 16, "max_length": 32}
SENTENCES = [["the", "movie", "was", "not", "unbelievably", "good"], ["dull"]]


@pytest.fixture(scope="module")
def minilm():
    return build_model("minilm", META, freeze_layers=2).eval()


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return build_model("transformer", META, **TINY).eval()


@pytest.mark.parametrize("name", ["minilm", "small"])
def test_attentions_are_transformers_output_attentions_with_rows_summing_to_one(name, request):
    model = request.getfixturevalue(name)
    batch = model.encode(SENTENCES)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    with torch.no_grad():
        attentions = model.attentions(ids, mask)
        direct = model.encoder(input_ids=ids, attention_mask=mask, output_attentions=True).attentions
    config = model.encoder.config
    assert len(attentions) == config.num_hidden_layers
    for ours, theirs in zip(attentions, direct):
        assert ours.shape == (2, config.num_attention_heads, ids.shape[1], ids.shape[1])
        torch.testing.assert_close(ours, theirs)
        torch.testing.assert_close(ours.sum(-1), torch.ones(ours.shape[:-1]))
        assert (ours[1][..., mask[1] == 0] == 0).all()  # no attention to padding
    assert model.embeddings is model.encoder.embeddings and model.tokenizer is not None


@pytest.mark.parametrize("name", ["minilm", "small"])
def test_padding_does_not_change_a_sentences_logits(name, request):
    """Dynamic padding is only correct if the mask hides padding from attention and pooling."""
    model = request.getfixturevalue(name)
    batch = model.encode(SENTENCES)
    alone = model.encode(SENTENCES[1:])
    with torch.no_grad():
        padded = model(batch["input_ids"], batch["attention_mask"])[1]
        single = model(alone["input_ids"], alone["attention_mask"])[0]
    assert batch["input_ids"].shape[1] > alone["input_ids"].shape[1]
    torch.testing.assert_close(padded, single, atol=1e-5, rtol=1e-4)
    assert [w for w in batch.word_ids(0) if w is not None][-2:] == [4, 5]  # "unbelievably" is pieces


def test_frozen_minilm_layers_do_not_train_and_bad_options_name_the_field(minilm):
    frozen = [name for name, p in minilm.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith(("encoder.embeddings", "encoder.encoder.layer.0.", "encoder.encoder.layer.1."))
                          for n in frozen)
    assert all(p.requires_grad for n, p in minilm.named_parameters() if "layer.2." in n or n.startswith("head"))
    with pytest.raises(DlxError, match="freeze_layers: 7 is not between 0 and 6") as caught:
        launch_config({"dataset": "sentiment", "model": "minilm", "model_options": {"freeze_layers": 7}})
    assert caught.value.field == "model_options"
    with pytest.raises(DlxError, match="does not take text data"):
        launch_config({"dataset": "sentiment", "model": "cnn"})
    with pytest.raises(DlxError, match="hidden: 30 is not a multiple of heads"):
        launch_config({"dataset": "sentiment", "model": "transformer", "model_options": {"hidden": 30}})


def test_small_transformer_trains_through_the_worker_and_reloads_from_safetensors(worker):
    store = default_store()
    config = launch_config({"dataset": "sentiment", "model": "transformer", "model_options": TINY,
                           "epochs": 1, "batch_size": 64, "lr": 3e-3})
    run_id, _ = store.queue.submit(config)
    run = wait_for(lambda: (r := store.get_run(run_id)).status in FINAL_STATES and r,
                   timeout=300, message=f"run {run_id} to end")
    assert run.status == "succeeded", run.error
    assert run.summary["train_size"] == 1950 and run.summary["epochs_run"] == 1
    model, config = load_run_model(store, run_id)  # rebuilt from the registry, weights from safetensors
    torch.testing.assert_close(model.head.weight, load_file(str(store.checkpoint_path(run_id, "best")))["head.weight"])
    bundle = tokenize_bundle(load_dataset("sentiment", 0), model)
    _, accuracy, _ = evaluate(model, bundle.test, torch.device("cpu"), config, 2)
    assert accuracy == run.summary["test_acc"]  # same tokens, same padding handling after reload


@pytest.mark.slow
def test_minilm_fine_tune_reaches_90_percent_on_sentiment():
    """The Launch form's defaults for MiniLM (4 lower layers frozen, AdamW 3e-4, one epoch)."""
    from dlx.views.launch import defaults_for

    run_id = train_in_process(defaults_for("sentiment", "minilm"))
    assert default_store().get_run(run_id).summary["test_acc"] >= 0.9
