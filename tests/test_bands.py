"""Colour planes in bands of rows: the same numbers as whole planes, in float32 for files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from memnet.imaging import picture as image_picture
from memnet.imaging.picture import Picture
from memnet.imaging.reading import read_image
from memnet.imaging.resize import imresize, imresize_rows
from memnet.inference import pictures
from memnet.inference.pictures import restore_picture
from memnet.tasks import Deblock, Denoise, SuperResolution, Task

RNG = np.random.default_rng(31)


@pytest.mark.parametrize("scale", [2, 3, 4, 2.5, 1.7])
@pytest.mark.parametrize("shape", [(37, 51), (8, 8), (100, 9)])
def test_imresize_rows_is_imresize_bit_for_bit(shape: tuple[int, int], scale: float) -> None:
    image = RNG.random(shape).astype(np.float32)
    whole = imresize(image, scale)
    step = 7
    bands = [imresize_rows(image, scale, a, a + step) for a in range(0, whole.shape[0], step)]
    assert np.array_equal(np.concatenate(bands), whole)


def halve(x: np.ndarray) -> np.ndarray:
    return x * 0.5


@pytest.mark.parametrize(
    ("task", "color"),
    [
        (SuperResolution(2), "y"),
        (SuperResolution(3), "ycbcr"),
        (Denoise(25), "rgb"),
        (Deblock(10), "ycbcr"),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bands_give_the_whole_plane_result(
    monkeypatch: pytest.MonkeyPatch, task: Task, color: str, dtype: type
) -> None:
    pixels = RNG.random((23, 31, 3)).astype(dtype)
    alpha = RNG.random((23, 31)).astype(dtype)
    whole = restore_picture(Picture(pixels, alpha), task, halve, color=color)
    monkeypatch.setattr(pictures, "BAND_PIXELS", 50)  # bands of one or two rows
    banded = restore_picture(Picture(pixels, alpha), task, halve, color=color)
    assert whole.pixels.dtype == dtype
    assert np.array_equal(banded.pixels, whole.pixels)
    assert banded.alpha is not None
    assert whole.alpha is not None
    assert np.array_equal(banded.alpha, whole.alpha)


def test_integer_rounding_in_bands_matches_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    values = RNG.random((40, 30, 3))
    whole = image_picture.to_integer(values, 16)
    monkeypatch.setattr(image_picture, "WRITE_BAND_PIXELS", 100)
    assert np.array_equal(image_picture.to_integer(values, 16), whole)
    assert np.array_equal(
        image_picture.to_integer(values.astype(np.float32), 8), image_picture.to_integer(values, 8)
    )


@pytest.mark.parametrize("bits", [8, 16])
def test_files_decode_to_float32_that_round_back_exactly(tmp_path: Path, bits: int) -> None:
    dtype = np.uint16 if bits == 16 else np.uint8
    samples = RNG.integers(0, 2**bits, (9, 13), dtype=dtype)
    # every level of the depth occurs at least once
    samples.reshape(-1)[: min(samples.size, 2**bits)] = np.arange(min(samples.size, 2**bits))
    Image.fromarray(samples).save(tmp_path / "x.png")
    picture = read_image(tmp_path / "x.png")
    assert picture.pixels.dtype == np.float32
    assert np.array_equal(image_picture.to_integer(picture.pixels, bits), samples)
    exact = read_image(tmp_path / "x.png", dtype=np.float64).pixels
    assert np.array_equal(exact, samples / (2.0**bits - 1))
