"""torchvision's ResNet-18 with a stem for small images (3×3 conv, no max-pool)."""
from __future__ import annotations

from torch import nn

from dlx.data.registry import DatasetMeta


def resnet18(meta: DatasetMeta) -> nn.Module:
    from torchvision.models import resnet18 as tv_resnet18

    model = tv_resnet18(weights=None, num_classes=meta.num_classes)
    model.conv1 = nn.Conv2d(meta.input_shape[0], 64, 3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model
