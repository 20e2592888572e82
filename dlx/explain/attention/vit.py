"""Attention of vision transformers (torchvision's ViT): per-head [CLS] attention and rollout as patch grids."""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from dlx.errors import DlxError
from dlx.explain.attention.rollout import rollout


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def vit_attention(model: nn.Module, images: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
    """Logits and each encoder layer's per-head attention (B, heads, 1 + patches, same).

    torchvision's `VisionTransformer` asks its `nn.MultiheadAttention` for no weights; for this
    call each one is asked for per-head weights instead (same output), then given back as it was.
    """
    layers = [m for m in model.modules() if isinstance(m, nn.MultiheadAttention)]
    if not layers:
        raise DlxError("model: it has no attention layers to show", field="model")
    captured: list[Tensor] = []
    handles = []
    for layer in layers:
        handles.append(layer.register_forward_pre_hook(
            lambda m, args, kwargs: (args, {**kwargs, "need_weights": True, "average_attn_weights": False}),
            with_kwargs=True))
        handles.append(layer.register_forward_hook(lambda m, args, out: captured.append(out[1])))
    try:
        logits = model(images)
    finally:
        for handle in handles:
            handle.remove()
    return logits, tuple(captured)


def patch_grid(scores: Tensor, side: int | None = None) -> Tensor:
    """(1 + patches,) scores from [CLS]'s row -> (side, side) grid of the patches, [CLS] dropped."""
    patches = scores[1:]
    side = side or int(round(patches.numel() ** 0.5))
    if side * side != patches.numel():
        raise DlxError(f"model: {patches.numel()} patches do not make a square grid", field="model")
    return patches.reshape(side, side)


def vit_maps(model: nn.Module, image: Tensor) -> dict[str, Tensor]:
    """For one image (C, H, W): every layer's per-head [CLS] attention and the rollout of [CLS]
    (what torchvision's ViT classifies from), as patch grids, plus the logits.

    Keys: "heads" (L, H, g, g), "rollout" (g, g), "logits" (classes,). No gradient-weighted
    relevance here: nn.MultiheadAttention hands out a reshaped copy of its weights, not the
    tensor its output was computed from, so their gradient cannot be taken.
    """
    device = _device(model)
    with torch.no_grad():
        logits, maps = vit_attention(model, image[None].to(device, torch.float32))
    a = torch.stack([m[0] for m in maps]).float().cpu()
    side = int(round((a.shape[-1] - 1) ** 0.5))
    heads = a[:, :, 0, 1:].reshape(*a.shape[:2], side, side)
    return {"heads": heads, "rollout": patch_grid(rollout(a)[0], side), "logits": logits[0].float().cpu()}


def vit_cls_grids(model: nn.Module, images: Tensor, which: Literal["rollout", "last_layer"] = "rollout",
                  head_fusion: Literal["mean", "max", "min"] = "mean") -> Tensor:
    """(N, g, g): per image, what [CLS] takes from each patch: the rollout over all layers, or the
    last layer's attention with its heads fused (`head_fusion`)."""
    device = _device(model)
    with torch.no_grad():
        _, maps = vit_attention(model, images.to(device, torch.float32))
    stacked = torch.stack(maps, dim=1).float().cpu()  # (N, L, heads, T, T)
    side = int(round((stacked.shape[-1] - 1) ** 0.5))
    if which == "rollout":
        rows = [rollout(one, head_fusion)[0] for one in stacked]
    else:
        rows = [rollout(one[-1:], head_fusion, residual=0.0)[0] for one in stacked]  # no residual: the raw heads
    return torch.stack([patch_grid(row, side) for row in rows])


def vit_rollout_pixels(model: nn.Module, images: Tensor, which: Literal["rollout", "last_layer"] = "rollout",
                       head_fusion: Literal["mean", "max", "min"] = "mean") -> Tensor:
    """(N, 1, H, W): `vit_cls_grids` upsampled to the image (each patch's value over its pixels),
    so the image metrics (deletion/insertion, mask mass, pointing game) score it like a Captum map."""
    grids = vit_cls_grids(model, images, which, head_fusion)
    return F.interpolate(grids[:, None], size=tuple(images.shape[-2:]), mode="nearest")
