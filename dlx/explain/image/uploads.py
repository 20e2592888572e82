"""An uploaded image, checked (format, size, shape), converted to the model's channels and resized to its input."""
from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from dlx.data.image_folders import GREY_MODES, MAX_PIXELS
from dlx.data.registry import DatasetMeta
from dlx.data.user_sets import registered_set
from dlx.errors import DlxError

MAX_BYTES = 10 * 1024 * 1024
MAX_ASPECT_CHANGE = 2.0  # resizing may stretch an image by at most this factor
FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")


@dataclass
class UploadedImage:
    """The model's input made from an upload, and what was done to the file to get there."""

    tensor: Tensor  # (1, C, H, W) at the model's input size: [0, 1], or normalised as the set was in training
    changes: list[str] = field(default_factory=list)  # sentences for the user, e.g. a colour conversion


def read_image(data: bytes, meta: DatasetMeta, name: str = "upload") -> UploadedImage:
    """The upload as the model's input, converted and resized as needed, or a DlxError saying what is wrong.

    A colour image for a grayscale model (or the reverse) is converted, not refused: a photo of a
    digit is a fair question to ask a digits model, and the user is told it was converted.
    """
    if len(data) > MAX_BYTES:
        raise DlxError(f"upload: {name} is {len(data) / 2**20:.1f} MB; the limit is "
                       f"{MAX_BYTES // 2**20} MB", field="upload")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise DlxError(f"upload: {name} has too many pixels to open safely; the limit is {MAX_PIXELS:,}",
                       field="upload") from None
    except UnidentifiedImageError:  # its message names the in-memory buffer, not the file
        raise DlxError(f"upload: {name} is not an image that can be read (not a known image format); "
                       "upload a PNG or JPEG", field="upload") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise DlxError(f"upload: {name} is not an image that can be read ({err}); upload a PNG or JPEG",
                       field="upload") from None
    if image.format not in FORMATS:
        raise DlxError(f"upload: {name} is a {image.format} file; use one of {', '.join(FORMATS)}",
                       field="upload")
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise DlxError(f"upload: {name} has {width}×{height} pixels; the limit is {MAX_PIXELS:,}",
                       field="upload")
    channels, model_h, model_w = meta.input_shape
    changes = []
    image_channels = 1 if image.mode in GREY_MODES else 3
    if image_channels != channels:
        changes.append(f"{name} is a {'grayscale' if image_channels == 1 else 'colour'} image and this model "
                       f"takes {'grayscale' if channels == 1 else 'colour'} ones: it was converted to "
                       f"{'grayscale' if channels == 1 else 'colour'}.")
    stretch = (width / height) / (model_w / model_h)
    if max(stretch, 1 / stretch) > MAX_ASPECT_CHANGE:
        raise DlxError(f"upload: {name} is {width}×{height}, too far from the model's {model_w}×{model_h} "
                       "shape to resize without distorting it; crop it closer to that shape first",
                       field="upload")
    if (width, height) != (model_w, model_h):
        changes.append(f"{name} ({width}×{height}) was resized to the model's {model_w}×{model_h}.")
    resized = image.convert("L" if channels == 1 else "RGB").resize((model_w, model_h), Image.Resampling.BILINEAR)
    array = np.asarray(resized, dtype=np.float32) / 255.0
    array = array[None] if channels == 1 else array.transpose(2, 0, 1)
    tensor = torch.from_numpy(np.ascontiguousarray(array))[None]
    stats = normalisation(meta)
    if stats is not None:  # the model never saw raw pixels: same normalisation as its training inputs
        mean, std = stats
        tensor = (tensor - mean) / std
        changes.append(f"{name} was normalised with {meta.name}'s own per-channel mean "
                       f"({', '.join(f'{m:.3f}' for m in mean.flatten().tolist())}) and std "
                       f"({', '.join(f'{s:.3f}' for s in std.flatten().tolist())}), as in training.")
    return UploadedImage(tensor, changes)


def normalisation(meta: DatasetMeta) -> tuple[Tensor, Tensor] | None:
    """The (C, 1, 1) mean and std a user image set's inputs are normalised with, or None for raw pixels.

    Built-in image sets feed [0, 1] pixels; a user's set is normalised with the statistics stored
    at import (dlx.data.streaming), so uploads and displayed samples must apply or undo them.
    """
    if meta.kind != "image":
        return None
    user_set = registered_set(meta.name)
    if user_set is None or user_set.kind != "image":
        return None
    mean, std = (torch.tensor(user_set.details[key], dtype=torch.float32).view(-1, 1, 1) for key in ("mean", "std"))
    return mean, std


def for_display(meta: DatasetMeta, inputs: Tensor) -> Tensor:
    """Model inputs as [0, 1] pixels to show: a normalised user set's samples denormalised."""
    stats = normalisation(meta)
    if stats is None:
        return inputs
    mean, std = stats
    return (inputs * std + mean).clamp(0.0, 1.0)
