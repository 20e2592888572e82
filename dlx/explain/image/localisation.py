"""Localisation against a ground-truth mask: does a map put its evidence where the answer is?"""
from __future__ import annotations

import torch
from torch import Tensor


def attribution_map(values: Tensor) -> Tensor:
    """(N, H, W): attributions summed over channels, the map a person looks at."""
    return values.sum(dim=1) if values.ndim == 4 else values


def mask_mass(values: Tensor, masks: Tensor) -> Tensor:
    """Per sample, the share of positive attribution mass inside the mask (0 when there is none)."""
    positive = attribution_map(values).clamp(min=0).flatten(1)
    inside = (positive * masks.flatten(1).to(positive.dtype)).sum(1)
    total = positive.sum(1)
    return torch.where(total > 0, inside / total.clamp(min=1e-12), torch.zeros_like(total))


def pointing_game(values: Tensor, masks: Tensor) -> Tensor:
    """Per sample, 1.0 when the map's highest point lies inside the mask, else 0.0."""
    flat = attribution_map(values).flatten(1)
    top = flat.argmax(dim=1, keepdim=True)
    return masks.flatten(1).gather(1, top).squeeze(1).to(torch.float32)
