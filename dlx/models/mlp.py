"""A multi-layer perceptron for tables (and flattened images)."""
from __future__ import annotations

import math

from torch import nn

from dlx.data.registry import DatasetMeta


def mlp(meta: DatasetMeta, hidden: int = 64, layers: int = 2, dropout: float = 0.1) -> nn.Module:
    blocks: list[nn.Module] = [nn.Flatten()]
    width = math.prod(meta.input_shape)
    for _ in range(layers):
        # A fresh ReLU per layer: Captum's DeepLift and Guided Backprop hook each module once.
        blocks += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
        width = hidden
    blocks.append(nn.Linear(width, meta.num_classes))
    return nn.Sequential(*blocks)
