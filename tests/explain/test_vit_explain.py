"""ViT attention (rollout, last-layer [CLS] attention) as image methods of the registry: offered only
for a ViT, the patch grid upsampled to the pixels, scored and cached by an explain job like the rest."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dlx import settings
from dlx.data.registry import DatasetMeta
from dlx.errors import DlxError
from dlx.explain import METHODS, available_methods, explain
from dlx.explain.attention.rollout import rollout
from dlx.explain.cache import explain_cached
from dlx.explain.jobs import ExplainTask, submit_task, task_result, task_samples
from dlx.explain.models_cache import get_loaded_run
from dlx.models.cnn import cnn
from dlx.models.vit import vit
from dlx.store import FINAL_STATES, default_store
from dlx.views.charts.explain import method_colour
from tests.helpers.processes import train_in_process, wait_for

DIGITS = DatasetMeta("digits", "image", tuple("0123456789"), (1, 8, 8))
ATTENTION = ["attention_rollout", "cls_attention"]


def pixels_of(grids: torch.Tensor, patch: int) -> torch.Tensor:
    """(N, g, g) -> (N, 1, g*patch, g*patch), each patch's value over its pixels (written out by hand)."""
    return grids.repeat_interleave(patch, dim=1).repeat_interleave(patch, dim=2)[:, None]


def test_the_attention_methods_are_the_models_own_attention_upsampled_to_the_pixels():
    torch.manual_seed(0)
    model = vit(DIGITS, layers=3).eval()  # 2×2 patches: a 4×4 grid
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        maps = torch.stack(model.attentions(x), dim=1)  # (N, L, heads, 17, 17)
    flows = torch.stack([rollout(one)[0, 1:] for one in maps]).reshape(3, 4, 4)
    last = maps[:, -1].mean(dim=1)[:, 0, 1:].reshape(3, 4, 4)

    got = explain("attention_rollout", model, x, [0, 1, 2])
    torch.testing.assert_close(got.values, pixels_of(flows, 2))
    assert not got.signed and got.delta is None and got.params == {"head_fusion": "mean"}
    torch.testing.assert_close(explain("cls_attention", model, x, 0).values, pixels_of(last, 2))
    torch.testing.assert_close(explain("attention_rollout", model, x, 0, head_fusion="max").values,
                               pixels_of(torch.stack([rollout(one, "max")[0, 1:] for one in maps]).reshape(3, 4, 4), 2))
    with pytest.raises(DlxError, match=r"attention_rollout.head_fusion: 'sum' is not one of"):
        explain("attention_rollout", model, x, 0, head_fusion="sum")


def test_the_attention_methods_are_offered_only_for_a_vit_with_their_own_colours():
    image_vit, image_cnn = vit(DIGITS).eval(), cnn(DIGITS).eval()
    assert set(ATTENTION) <= set(available_methods(image_vit, "image"))
    assert {"saliency", "integrated_gradients"} <= set(available_methods(image_vit, "image"))
    assert not set(ATTENTION) & set(available_methods(image_cnn, "image"))
    with pytest.raises(DlxError, match="attention_rollout needs a vision transformer") as err:
        explain("attention_rollout", image_cnn, torch.rand(1, 1, 8, 8), 0)
    assert err.value.field == "method"
    colours = [method_colour(m) for m in METHODS]
    assert len(set(colours)) == len(colours)  # no method shares another's colour


def test_an_explain_job_on_a_real_worker_scores_and_caches_rollout_with_the_other_methods(worker):
    store = default_store()
    run_id = train_in_process({"dataset": "patterns", "model": "vit", "epochs": 1})
    task = ExplainTask(run_id=run_id, task="faithfulness", methods=["saliency", *ATTENTION], n_samples=6)
    job_id = submit_task(store, task)
    job = wait_for(lambda: (j := store.queue.get_job(job_id)).status in FINAL_STATES and j, timeout=180,
                   message=f"explain job {job_id} to end")
    assert job.status == "succeeded", (settings.logs_dir() / f"job-{job_id}.log").read_text()

    loaded = get_loaded_run(store, run_id)
    scores = task_result(loaded, task)
    assert {row["method"] for row in scores.table()} == {"Saliency", "Attention rollout", "CLS attention, last layer",
                                                         "Random (reference)"}
    for method in ATTENTION:
        found = scores.metrics[method]
        assert set(found) == {"deletion_auc", "insertion_auc", "infidelity", "max_sensitivity", "mask_mass",
                              "pointing_game"}
        assert all(values.shape == (6,) and np.isfinite(values).all() for values in found.values())
    # the worker's maps are in the explanation cache: read back, not recomputed, and equal to a fresh one
    inputs, targets, _ = task_samples(loaded, task)
    cached = explain_cached(loaded, inputs, targets, "attention_rollout")
    assert cached.cached and cached.values.shape == (6, 1, 16, 16)
    torch.testing.assert_close(cached.values, explain("attention_rollout", loaded.model, inputs, targets).values)
