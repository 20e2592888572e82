"""Baselines: the "absence of signal" that IG, DeepLift, GradientSHAP, Occlusion and ablation compare against."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from dlx.errors import DlxError

BASELINES: dict[str, str] = {
    "zeros": "all zeros (black image, or every standardized feature at its mean)",
    "blur": "the input itself, Gaussian-blurred (keeps colours, removes shapes; images only)",
    "mean": "the training set's mean, per channel (images) or per feature (tables)",
}


def baselines_for(kind: str) -> list[str]:
    """The baselines that make sense for a kind of data (blurring a table means nothing)."""
    return [name for name in BASELINES if kind == "image" or name != "blur"]


def make_baseline(kind: str, inputs: Tensor, mean: Sequence[float] = ()) -> Tensor:
    """A baseline of the inputs' shape; `mean` is the data set's per-channel or per-feature mean."""
    if kind == "zeros":
        return torch.zeros_like(inputs)
    if kind == "mean":
        if not len(mean):
            raise DlxError("baseline: this data set has no recorded mean; use zeros or blur",
                           field="baseline")
        values = torch.as_tensor(mean, dtype=inputs.dtype, device=inputs.device)
        shape = (1, -1) + (1,) * (inputs.ndim - 2)  # per channel (images) or per feature (tables)
        return values.view(shape).expand_as(inputs).clone()
    if kind == "blur":
        if inputs.ndim != 4:
            raise DlxError("baseline: blur is for images; use zeros or mean for tables",
                           field="baseline")
        return blur(inputs)
    raise DlxError(f"baseline: unknown baseline {kind!r}; choose one of {sorted(BASELINES)}",
                   field="baseline")


def blur(images: Tensor) -> Tensor:
    """Gaussian blur with a sigma of an eighth of the image side (strong enough to erase shapes)."""
    from torchvision.transforms.functional import gaussian_blur

    side = min(images.shape[-2:])
    sigma = max(side / 8, 0.5)
    kernel = min(2 * math.ceil(2 * sigma) + 1, side if side % 2 else side - 1)
    return gaussian_blur(images, [kernel, kernel], [sigma, sigma])
