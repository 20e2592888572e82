"""Layers for attribution: find the conv layer Grad-CAM looks at, and make a model safe for Captum.

Captum's DeepLift and Guided Backprop hook every ReLU module and keep one input/output per
module; a ReLU module called twice in one forward pass (torchvision's ResNet blocks reuse
`self.relu`, and it is in-place) breaks them. `explainable_copy` gives the explanation copy of
a model a fresh, non-in-place ReLU for every use: plain ReLUs are swapped, ResNet blocks get a
forward that calls a second ReLU after the residual sum.
"""
from __future__ import annotations

import copy

from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from dlx.errors import DlxError


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """Every Conv2d by qualified name, in registration order (which is forward order here)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def find_layer(model: nn.Module, name: str = "auto") -> nn.Module:
    """A conv layer by name; "auto" is the last Conv2d, the one Grad-CAM usually reads."""
    layers = conv_layers(model)
    if not layers:
        raise DlxError(f"grad_cam: the model ({type(model).__name__}) has no Conv2d layer; "
                       "Grad-CAM needs one, pick another method", field="grad_cam.layer")
    if name == "auto":
        return layers[-1][1]
    named = dict(layers)
    if name not in named:
        raise DlxError(f"grad_cam.layer: no conv layer named {name!r}; this model has "
                       f"{[n for n, _ in layers]}", field="grad_cam.layer")
    return named[name]


class _ExplainableBasicBlock(BasicBlock):
    """torchvision's BasicBlock with its second ReLU as its own module and no in-place sum."""

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu_out(out + identity)


class _ExplainableBottleneck(Bottleneck):
    """torchvision's Bottleneck with one ReLU module per use."""

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu_mid(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu_out(out + identity)


def explainable_copy(model: nn.Module) -> nn.Module:
    """A deep copy in eval mode whose every ReLU is a distinct, non-in-place module."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if type(module) is BasicBlock:
            module.__class__ = _ExplainableBasicBlock
            module.relu_out = nn.ReLU()
        elif type(module) is Bottleneck:
            module.__class__ = _ExplainableBottleneck
            module.relu_mid, module.relu_out = nn.ReLU(), nn.ReLU()
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.ReLU) and child.inplace:
                setattr(parent, name, nn.ReLU())
    return model

