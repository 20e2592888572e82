"""What gets explained: uploaded images are checked and resized; test samples are picked four ways."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from dlx.data import DatasetMeta
from dlx.errors import DlxError
from dlx.explain.image.gallery import resolve_targets
from dlx.explain.image.uploads import read_image
from dlx.explain.samples import pick_samples

GREY_8 = DatasetMeta("digits", "image", tuple("0123456789"), (1, 8, 8))
RGB_32 = DatasetMeta("cifar10", "image", tuple("abcdefghij"), (3, 32, 32))


def png(width: int, height: int, mode: str = "L", fmt: str = "PNG") -> bytes:
    rng = np.random.default_rng(0)
    shape = (height, width) if mode == "L" else (height, width, len(mode))
    image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode)
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def test_a_grey_png_is_resized_to_the_model_input_in_unit_range():
    image = read_image(png(64, 64), GREY_8, "big.png")
    x = image.tensor
    assert x.shape == (1, 1, 8, 8) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert image.changes == ["big.png (64×64) was resized to the model's 8×8."]
    assert read_image(png(8, 8), GREY_8).changes == []  # already the model's size and kind


def test_a_colour_jpeg_is_read_as_three_channels():
    x = read_image(png(48, 40, "RGB", "JPEG"), RGB_32).tensor
    assert x.shape == (1, 3, 32, 32)
    assert read_image(png(32, 32, "RGBA"), RGB_32).tensor.shape == (1, 3, 32, 32)  # alpha is dropped


def test_a_file_that_is_not_an_image_is_refused_clearly_by_its_name():
    with pytest.raises(DlxError, match="notes.txt is not an image that can be read.*PNG or JPEG") as err:
        read_image(b"these are my notes, not pixels", GREY_8, "notes.txt")
    assert err.value.field == "upload"
    assert "BytesIO" not in str(err.value)  # PIL names its in-memory buffer; the user knows the file
    truncated = png(64, 64)[:60]
    with pytest.raises(DlxError, match="not an image that can be read"):
        read_image(truncated, GREY_8, "broken.png")


def test_an_image_with_the_other_channels_is_converted_and_says_so():
    colour = png(8, 8, "RGB")
    image = read_image(colour, GREY_8, "photo.png")
    assert image.tensor.shape == (1, 1, 8, 8)
    expected = np.asarray(Image.open(io.BytesIO(colour)).convert("L"), dtype=np.float32) / 255
    assert np.allclose(image.tensor[0, 0].numpy(), expected)  # the luminance of the colour image
    assert image.changes == ["photo.png is a colour image and this model takes grayscale ones: "
                             "it was converted to grayscale."]
    scan = read_image(png(32, 32), RGB_32, "scan.png")
    assert scan.tensor.shape == (1, 3, 32, 32)
    assert torch.equal(scan.tensor[0, 0], scan.tensor[0, 2])  # grey: the same in every channel
    assert "scan.png is a grayscale image" in scan.changes[0] and "converted to colour" in scan.changes[0]


def test_an_image_of_the_wrong_shape_is_refused_clearly():
    with pytest.raises(DlxError, match="strip.png is 200×20, too far from the model's 8×8 shape"):
        read_image(png(200, 20), GREY_8, "strip.png")
    read_image(png(12, 8), GREY_8)  # a modest stretch is fine


def test_an_oversized_upload_is_refused_before_decoding():
    with pytest.raises(DlxError, match="big.png is 11.0 MB; the limit is 10 MB"):
        read_image(b"\0" * (11 * 2**20), GREY_8, "big.png")


LABELS = torch.tensor([0, 1, 2, 0, 1, 2])
PROBS = torch.tensor([[0.9, 0.05, 0.05],  # right
                      [0.7, 0.2, 0.1],  # wrong, confident
                      [0.1, 0.1, 0.8],  # right
                      [0.4, 0.35, 0.25],  # right, unsure
                      [0.1, 0.85, 0.05],  # right
                      [0.55, 0.4, 0.05]])  # wrong, less confident


def test_misclassified_samples_come_first_most_confident_first():
    assert pick_samples(LABELS, PROBS, "misclassified", 4) == [1, 5, 0, 2]


def test_samples_by_index_class_and_seeded_random():
    assert pick_samples(LABELS, PROBS, "index", 2, indices=[4, 0, 3]) == [4, 0]
    assert pick_samples(LABELS, PROBS, "class", 5, cls=2) == [2, 5]
    draw = pick_samples(LABELS, PROBS, "random", 3, seed=7)
    assert draw == pick_samples(LABELS, PROBS, "random", 3, seed=7) and len(set(draw)) == 3
    with pytest.raises(DlxError, match="index 6 is outside the test split \\(0 to 5\\)"):
        pick_samples(LABELS, PROBS, "index", 2, indices=[6])
    with pytest.raises(DlxError, match="unknown way to pick 'best'"):
        pick_samples(LABELS, PROBS, "best", 2)


def test_targets_are_the_prediction_the_truth_or_a_chosen_class():
    assert resolve_targets(PROBS, "predicted") == [0, 0, 2, 0, 1, 0]
    assert resolve_targets(PROBS, "true", LABELS) == LABELS.tolist()
    assert resolve_targets(PROBS, 2) == [2] * 6
    with pytest.raises(DlxError, match="an uploaded image has no true class"):
        resolve_targets(PROBS[:1], "true")
    with pytest.raises(DlxError, match="7 is not a class index"):
        resolve_targets(PROBS, 7)
