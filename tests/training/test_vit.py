"""The small ViT: patches to fit the image, attention weights readable per layer, trains through a worker."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dlx.data import DatasetMeta
from dlx.errors import DlxError
from dlx.models import build_model
from dlx.models.vit import auto_patch
from dlx.store import FINAL_STATES, default_store
from dlx.training.fits import launch_config
from tests.helpers.processes import wait_for

DIGITS = DatasetMeta("digits", "image", tuple("0123456789"), (1, 8, 8))


def test_patch_size_fits_8_to_32_pixel_images():
    assert [auto_patch(side) for side in (8, 16, 28, 32)] == [2, 2, 4, 4]
    model = build_model("vit", DatasetMeta("cifar10", "image", tuple("0123456789"), (3, 32, 32)))
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10) and model.grid == 8
    with pytest.raises(DlxError, match="patch_size: 3 does not divide the 8-pixel side") as caught:
        launch_config({"dataset": "digits", "model": "vit", "model_options": {"patch_size": 3}})
    assert caught.value.field == "model_options"


def test_attentions_are_the_blocks_softmax_weights_including_cls():
    torch.manual_seed(0)
    model = build_model("vit", DIGITS, layers=2).eval()
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        plain = model(x)
        attentions = model.attentions(x)
        assert len(attentions) == 2
        # Recompute layer 1's weights by hand from its input (CLS + 16 patches) and in-projection.
        tokens = model._process_input(x)
        tokens = torch.cat([model.class_token.expand(3, -1, -1), tokens], dim=1) + model.encoder.pos_embedding
        block = model.encoder.layers[0]
        h = block.ln_1(tokens)
        attention: nn.MultiheadAttention = block.self_attention
        q, k, _ = nn.functional.linear(h, attention.in_proj_weight, attention.in_proj_bias).chunk(3, dim=-1)
        heads, width = attention.num_heads, attention.head_dim
        q, k = (t.view(3, 17, heads, width).transpose(1, 2) for t in (q, k))
        expected = torch.softmax(q @ k.transpose(-1, -2) / width**0.5, dim=-1)
    assert attentions[0].shape == (3, 4, 17, 17)
    torch.testing.assert_close(attentions[0], expected)
    torch.testing.assert_close(attentions[1].sum(-1), torch.ones(3, 4, 17))
    with torch.no_grad():
        torch.testing.assert_close(model(x), plain)  # reading attention changes nothing, hooks are gone
    assert not block.self_attention._forward_hooks and not block.self_attention._forward_pre_hooks


def test_vit_trains_on_digits_through_the_worker(worker):
    store = default_store()
    run_id, _ = store.queue.submit(launch_config({"dataset": "digits", "model": "vit", "model_options": {"hidden": 32},
                                     "epochs": 4, "lr": 3e-3, "batch_size": 32}))
    run = wait_for(lambda: (r := store.get_run(run_id)).status in FINAL_STATES and r,
                   timeout=300, message=f"run {run_id} to end")
    assert run.status == "succeeded", run.error
    assert run.summary["test_acc"] > 0.3  # ten classes: chance is 0.1 (10 epochs, 64 wide: 0.85)
