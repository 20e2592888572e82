"""Explanations over training: each kept checkpoint's maps are Captum's on its own weights, cached, scored
against the epoch, computed as a real worker job."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import Saliency
from safetensors.torch import load_file

from dlx import settings
from dlx.config import RunConfig
from dlx.data import load_dataset
from dlx.errors import DlxError
from dlx.explain.cache import explain_cached_many
from dlx.explain.models_cache import get_loaded_run
from dlx.explain.over_training import OverTrainingTask, find_job, over_training, submit_task, task_result
from dlx.models import build_model
from dlx.store import FINAL_STATES, default_store
from dlx.training.kept import kept_checkpoints
from tests.helpers.processes import train_in_process, wait_for

INDICES = [0, 1, 2]


@pytest.fixture
def kept_run(dlx_home) -> int:
    return train_in_process({"dataset": "digits", "model": "cnn", "epochs": 2, "checkpoint_every": 1})


def test_maps_per_checkpoint_equal_captums_on_that_checkpoints_weights(kept_run):
    store = default_store()
    task = OverTrainingTask(run_id=kept_run, methods=["saliency"], indices=INDICES)
    seen = []
    result = over_training(store, task, progress=seen.append)
    assert seen == [0.5, 1.0] and result.epochs == [1, 2]
    config = RunConfig(**store.get_run(kept_run).config)
    bundle = load_dataset(config.dataset, config.seed, config.val_fraction, config.test_fraction)
    inputs = bundle.test.x[INDICES]
    for c, kept in enumerate(kept_checkpoints(store, kept_run)):
        model = build_model(config.model, bundle.meta)
        model.load_state_dict(load_file(str(kept.path)))
        model.eval()
        expected = Saliency(model).attribute(inputs, target=torch.tensor(result.targets), abs=True)
        torch.testing.assert_close(torch.stack(result.maps["saliency"][c]), expected)
        probs = torch.softmax(model(inputs), 1).detach().numpy()
        np.testing.assert_allclose(result.probs[c], probs, rtol=1e-5, atol=1e-6)
    assert result.targets == torch.tensor(probs).argmax(1).tolist()  # the final checkpoint's prediction
    np.testing.assert_allclose(result.metrics["saliency"]["spearman"][-1], 1.0)
    assert result.curve("saliency", "spearman")[-1] == pytest.approx(1.0)
    assert result.metrics["saliency"]["deletion_auc"].shape == (2, 3)
    # Each checkpoint's maps are in the explanation cache (keyed with its id): not computed again.
    loaded = get_loaded_run(store, kept_run, "epoch-0001")
    again = explain_cached_many(loaded, inputs, result.targets, ["saliency"])
    assert again["saliency"].cached
    stored = task_result(store, task)
    np.testing.assert_allclose(stored.metrics["saliency"]["insertion_auc"],
                               result.metrics["saliency"]["insertion_auc"])


def test_localisation_is_scored_on_patterns_and_the_job_runs_on_a_real_worker(worker):
    run_id = train_in_process({"dataset": "patterns", "model": "cnn", "epochs": 2, "checkpoint_every": 1})
    store = default_store()
    task = OverTrainingTask(run_id=run_id, methods=["saliency", "integrated_gradients"], indices=INDICES)
    job_id = submit_task(store, task)
    assert find_job(store, task).id == job_id
    job = wait_for(lambda: (j := store.queue.get_job(job_id)).status in FINAL_STATES and j, timeout=180,
                   message="the over-training job to end")
    assert job.status == "succeeded", (settings.logs_dir() / f"job-{job_id}.log").read_text()
    assert job.progress == 1.0
    result = task_result(store, task)
    assert set(result.metrics["integrated_gradients"]) == {"deletion_auc", "insertion_auc", "mask_mass", "spearman"}
    assert np.isfinite(result.curve("integrated_gradients", "mask_mass")).all()


def test_a_run_without_kept_checkpoints_is_refused_with_the_option_to_use(trained_run):
    with pytest.raises(DlxError, match="kept no checkpoints over training; launch it with checkpoint_every=1"):
        submit_task(default_store(), OverTrainingTask(run_id=trained_run, methods=["saliency"], indices=[0]))


def test_text_runs_token_attributions_and_attention_per_checkpoint(dlx_home):
    """A text run over training: each checkpoint's token attributions are the text method's on that
    checkpoint's model, its last layer's attention is there, and the final one agrees with itself."""
    from dlx.explain.attention.text import attention_maps
    from dlx.explain.text.methods import explain_text
    from dlx.explain.text.tokens import encode

    run_id = train_in_process({"dataset": "sentiment", "model": "transformer", "epochs": 2, "batch_size": 64,
                               "checkpoint_every": 1, "device": "cpu",
                               "model_options": {"layers": 2, "heads": 2, "hidden": 16, "max_length": 24}})
    store = default_store()
    task = OverTrainingTask(run_id=run_id, methods=["saliency", "attention_rollout"], indices=[0, 1], text=True)
    result = over_training(store, task)
    kept = kept_checkpoints(store, run_id)
    assert result.epochs == [1, 2] and result.names == [k.name for k in kept]
    assert result.attention is not None and result.tokens is not None
    for c, checkpoint in enumerate(kept):
        loaded = get_loaded_run(store, run_id, checkpoint.name)
        for i, index in enumerate(task.indices):
            encoded = encode(loaded.model.tokenizer, loaded.bundle.test.texts[index], loaded.model.max_length)
            assert result.tokens[i] == list(encoded.tokens)
            target = result.targets[i]
            for method in task.methods:
                expected = explain_text(method, loaded.model, encoded, target).values
                assert torch.allclose(result.maps[method][c][i], expected, atol=1e-5), (method, c, i)
            assert torch.allclose(result.attention[c][i], attention_maps(loaded.model, encoded)[-1].mean(0))
    for method in task.methods:
        assert np.allclose(result.metrics[method]["spearman"][-1], 1.0)
    stored = task_result(store, task)
    assert stored is not None and stored.tokens == result.tokens
