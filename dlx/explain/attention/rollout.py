"""Attention rollout and gradient-weighted relevance: pure functions of the maps (text and ViT alike),
so a hand-computed case can check them."""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from dlx.errors import DlxError


def rollout(maps: Tensor, head_fusion: Literal["mean", "max", "min"] = "mean", residual: float = 1.0) -> Tensor:
    """Attention rollout (Abnar & Zuidema 2020): (T, T) flow from each token to each input token.

    Per layer the heads are fused (mean by default), the identity is added for the residual
    connection (`residual` times I; 1.0 is the paper's 0.5 A + 0.5 I after renormalising), rows
    are renormalised to sum to 1, and the layers are multiplied, the last one on the left.
    """
    if head_fusion not in ("mean", "max", "min"):
        raise DlxError(f"head_fusion: {head_fusion!r} is not 'mean', 'max' or 'min'", field="head_fusion")
    fused = getattr(maps, {"mean": "mean", "max": "amax", "min": "amin"}[head_fusion])(dim=1)
    eye = torch.eye(maps.shape[-1], dtype=maps.dtype)
    result = eye
    for layer in fused:
        a = layer + residual * eye
        a = a / a.sum(dim=-1, keepdim=True)
        result = a @ result
    return result


def relevance(maps: Tensor, grads: Tensor) -> Tensor:
    """Gradient-weighted attention relevance (Chefer et al. 2021, generic rule for encoders): (T, T).

    R = I; for each layer from the first, R += mean over heads of max(grad * A, 0) @ R.
    """
    r = torch.eye(maps.shape[-1], dtype=maps.dtype)
    for a, g in zip(maps, grads):
        r = r + (g * a).clamp(min=0).mean(dim=0) @ r
    return r
