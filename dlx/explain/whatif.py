"""What-if: edit one input and see the model's prediction and explanation beside the original's.

A table row's features (set in the data's own units, within the training data's range), a sentence's
words (typed, deleted or replaced by position), an image (a region masked by a box or a brush mask,
filled with the page's baseline; or another sample). Both sides are explained for the same class (the
original's prediction unless another is chosen), so their colours compare. Usable without Streamlit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dlx.data.registry import DataBundle
from dlx.errors import DlxError
from dlx.explain.cache import explain_text_cached
from dlx.explain.image.baselines import make_baseline
from dlx.explain.image.gallery import Gallery, build_gallery
from dlx.explain.models_cache import LoadedRun
from dlx.explain.text.tokens import Encoded, encode, text_forward


@dataclass
class Side:
    """One input's prediction and explanation: `attributions` per method, one value per feature, pixel
    map or word (text: `words`)."""

    probs: Tensor  # (classes,)
    attributions: dict[str, np.ndarray] = field(default_factory=dict)
    signed: dict[str, bool] = field(default_factory=dict)
    words: list[str] = field(default_factory=list)

    @property
    def predicted(self) -> int:
        return int(self.probs.argmax())


@dataclass
class WhatIf:
    """The original and the edited input side by side, explained for the same class `target`.
    Image and table what-ifs keep the two-row `gallery` (row 0 original, row 1 edited) the Explain
    page draws; a text what-if keeps both sentences' `encoded` word pieces."""

    original: Side
    edited: Side
    target: int
    edit: str  # what changed, in words
    gallery: Gallery | None = None
    encoded: tuple[Encoded, Encoded] | None = None

    @property
    def flipped(self) -> bool:
        return self.original.predicted != self.edited.predicted


# -- tables --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FeatureRange:
    """A feature's name and the training data's range of it, in its own units."""

    name: str
    low: float
    high: float


def feature_names(bundle: DataBundle) -> list[str]:
    width = bundle.train.x.shape[1]
    return list(bundle.meta.feature_names) or [f"feature {i}" for i in range(width)]


def to_own_units(bundle: DataBundle, x: Tensor) -> np.ndarray:
    """Model inputs (N, F) in the data's own units (a standardised table scaled back), float64."""
    mean, std = bundle.meta.units
    values = x.detach().double().cpu().numpy()
    return values * np.asarray(std) + np.asarray(mean) if mean else values


def to_model_units(bundle: DataBundle, values: np.ndarray) -> Tensor:
    """Rows in the data's own units as the model's inputs (standardised with the training statistics)."""
    mean, std = bundle.meta.units
    values = np.asarray(values, dtype=np.float64)
    scaled = (values - np.asarray(mean)) / np.asarray(std) if mean else values
    return torch.as_tensor(scaled, dtype=bundle.train.x.dtype)


def feature_ranges(bundle: DataBundle) -> list[FeatureRange]:
    """Each feature's minimum and maximum over the training split, in its own units."""
    train = to_own_units(bundle, bundle.train.x)
    return [FeatureRange(name, float(lo), float(hi))
            for name, lo, hi in zip(feature_names(bundle), train.min(0), train.max(0))]


def edit_row(bundle: DataBundle, row: Tensor, changes: dict[str, float]) -> Tensor:
    """`row` (F,) in model units with some features set to new values in their own units; each value
    must be a known feature's and within the training data's range."""
    ranges = {r.name: (i, r) for i, r in enumerate(feature_ranges(bundle))}
    own = to_own_units(bundle, row[None])[0]
    for name, value in changes.items():
        if name not in ranges:
            raise DlxError(f"feature: {name!r} is not a feature of {bundle.meta.name}; choose one of "
                           f"{', '.join(list(ranges)[:8])}{'...' if len(ranges) > 8 else ''}", field=name)
        i, r = ranges[name]
        if not np.isfinite(value) or not r.low <= value <= r.high:
            raise DlxError(f"{name}: {value!r} is outside the training data's range ({r.low:.4g} to {r.high:.4g})",
                           field=name)
        own[i] = value
    edited = to_model_units(bundle, own[None])[0]
    unchanged = [i for n, (i, _) in ranges.items() if n not in changes]
    edited[unchanged] = row[unchanged].to(edited.dtype)  # untouched features keep their exact inputs
    return edited


def tensor_whatif(loaded: LoadedRun, original: Tensor, edited: Tensor, edit: str, methods: list[str],
                  baseline: str = "zeros", params: dict[str, dict[str, Any]] | None = None,
                  target: int | None = None) -> WhatIf:
    """An image or table input and its edit, predicted and explained with `methods` (through the
    explanation cache) for `target`, by default the original's predicted class."""
    inputs = torch.stack([original, edited.to(original.dtype)])
    if target is None:
        target = int(loaded.predict(inputs[:1])[0].argmax())
    if not 0 <= target < loaded.meta.num_classes:
        raise DlxError(f"target: {target!r} is not a class index (0 to {loaded.meta.num_classes - 1})", field="target")
    gallery = build_gallery(loaded, inputs, ["original", f"edited: {edit}"], methods, baseline, params, target)
    sides = [Side(gallery.probs[i], {m: a.values[i].numpy() for m, a in gallery.attributions.items()},
                  {m: a.signed for m, a in gallery.attributions.items()}) for i in range(2)]
    return WhatIf(sides[0], sides[1], target, edit, gallery=gallery)


def table_whatif(loaded: LoadedRun, row: Tensor, changes: dict[str, float], methods: list[str],
                 baseline: str = "zeros", params: dict[str, dict[str, Any]] | None = None,
                 target: int | None = None) -> WhatIf:
    """A table row with `changes` (feature name -> value in its own units) beside the row as it is."""
    bundle = loaded.bundle
    if bundle.meta.kind != "table":
        raise DlxError(f"run: run #{loaded.run_id} is a {bundle.meta.kind} run, not a table run", field="run")
    edited = edit_row(bundle, row, changes)
    said = ", ".join(f"{name} = {value:.4g}" for name, value in changes.items()) or "no change"
    return tensor_whatif(loaded, row, edited, said, methods, baseline, params, target)


# -- images --------------------------------------------------------------------------------------
def box_mask(shape: tuple[int, ...], x: int, y: int, w: int, h: int) -> Tensor:
    """(H, W) bool mask of a box whose top-left pixel is (x, y), `w` wide and `h` high, inside the image."""
    height, width = shape[-2:]
    for name, value, top in (("x", x, width - 1), ("y", y, height - 1), ("w", w, width - x), ("h", h, height - y)):
        low = 1 if name in ("w", "h") else 0
        if not low <= int(value) <= max(top, low):
            raise DlxError(f"{name}: {value} puts the box outside the {width}×{height} image "
                           f"(allowed {low} to {max(top, low)})", field=name)
    mask = torch.zeros(height, width, dtype=torch.bool)
    mask[y:y + h, x:x + w] = True
    return mask


def mask_image(image: Tensor, mask: Tensor | np.ndarray, fill: str = "zeros", mean: tuple[float, ...] = ()) -> Tensor:
    """`image` (C, H, W) with the pixels where `mask` (H, W, a box's or a brush's) is true replaced by
    the baseline `fill` (the Explain page's baselines: zeros, the training mean, or blurred)."""
    mask = torch.as_tensor(np.asarray(mask), dtype=torch.bool)
    if mask.shape != image.shape[-2:]:
        raise DlxError(f"mask: its shape {tuple(mask.shape)} is not the image's {tuple(image.shape[-2:])}",
                       field="mask")
    if not mask.any():
        raise DlxError("mask: it covers no pixel; draw a box or brush over part of the image", field="mask")
    base = make_baseline(fill, image[None], mean)[0]
    return torch.where(mask, base, image)


def image_whatif(loaded: LoadedRun, image: Tensor, mask: Tensor | np.ndarray, methods: list[str],
                 baseline: str = "zeros", params: dict[str, dict[str, Any]] | None = None,
                 target: int | None = None) -> WhatIf:
    """An image beside itself with the masked region filled with `baseline`."""
    edited = mask_image(image, mask, baseline, loaded.meta.mean)
    covered = int(torch.as_tensor(np.asarray(mask)).sum())
    return tensor_whatif(loaded, image, edited, f"{covered} pixels masked ({baseline})", methods, baseline,
                         params, target)


# -- text ----------------------------------------------------------------------------------------
def delete_word(text: str, position: int) -> str:
    """The sentence without its word at `position` (0-based, words split on whitespace)."""
    words = _words(text, position)
    return " ".join(words[:position] + words[position + 1:])


def replace_word(text: str, position: int, word: str) -> str:
    """The sentence with its word at `position` replaced by `word` (one or more words)."""
    if not word.strip():
        raise DlxError("word: the replacement is empty; type a word, or delete the word instead", field="word")
    words = _words(text, position)
    return " ".join(words[:position] + [word.strip()] + words[position + 1:])


def _words(text: str, position: int) -> list[str]:
    words = text.split()
    if not 0 <= position < len(words):
        raise DlxError(f"position: {position} is not a word of the sentence (0 to {len(words) - 1})",
                       field="position")
    return words


def text_probs(loaded: LoadedRun, encoded: Encoded) -> Tensor:
    """The text model's class probabilities for one tokenised sentence."""
    device = loaded.device
    with loaded.lock, torch.no_grad():
        logits = text_forward(loaded.model, encoded.input_ids.to(device), encoded.attention_mask.to(device))[0]
    return torch.softmax(logits.float(), -1)[0].cpu()


def text_whatif(loaded: LoadedRun, original: str, edited: str, methods: list[str],
                target: int | None = None) -> WhatIf:
    """Two sentences (the edit typed, or made by delete_word / replace_word), each predicted and its
    words coloured by every method (through the explanation cache) for the same class."""
    model = loaded.model
    length = getattr(model, "max_length", 128)
    if not isinstance(edited, str) or not edited.strip():
        raise DlxError("sentence: the edited sentence is empty; type a few words", field="sentence")
    encodings = (encode(model.tokenizer, original, length), encode(model.tokenizer, edited, length))
    sides = [Side(text_probs(loaded, e), words=list(e.words)) for e in encodings]
    if target is None:
        target = sides[0].predicted
    if not 0 <= target < len(sides[0].probs):
        raise DlxError(f"target: {target!r} is not a class index (0 to {len(sides[0].probs) - 1})", field="target")
    for side, e in zip(sides, encodings):
        for method in methods:
            result = explain_text_cached(loaded, e, method, target)
            side.attributions[method] = result.words(e).numpy()
            side.signed[method] = result.signed
    return WhatIf(sides[0], sides[1], target, "same sentence" if original == edited else f"edited to {edited!r}",
                  encoded=encodings)
