"""Colour planes in bands of rows: the same numbers as whole planes, in float32 for files."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from memnet.imaging import bands
from memnet.imaging import picture as image_picture
from memnet.imaging.picture import Picture
from memnet.imaging.reading import read_image
from memnet.imaging.resize import imresize, imresize_rows
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
    monkeypatch.setattr(bands, "BAND_PIXELS", 50)  # bands of one or two rows
    banded = restore_picture(Picture(pixels, alpha), task, halve, color=color)
    assert whole.pixels.dtype == dtype
    assert np.array_equal(banded.pixels, whole.pixels)
    assert banded.alpha is not None
    assert whole.alpha is not None
    assert np.array_equal(banded.alpha, whole.alpha)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_bands_on_threads_give_the_result_of_one(
    monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    pixels = RNG.integers(0, 256, (41, 29, 3), dtype=np.uint8)
    monkeypatch.setattr(bands, "BAND_PIXELS", 120)
    monkeypatch.setattr(bands, "available_cores", lambda: 1)
    alone = restore_picture(Picture(pixels), SuperResolution(3), stretch, color="y", depth=8)
    monkeypatch.setattr(bands, "available_cores", lambda: threads)
    shared = restore_picture(Picture(pixels), SuperResolution(3), stretch, color="y", depth=8)
    assert np.array_equal(shared.pixels, alone.pixels)


def test_band_rows_cover_the_image_once() -> None:
    for height, width, pixels in [(1, 1, 1), (10, 3, 7), (100, 1000, 4096), (5, 10**6, 100)]:
        rows = bands.band_rows(height, width, pixels)
        assert rows[0][0] == 0
        assert rows[-1][1] == height
        assert all(a[1] == b[0] and a[0] < a[1] for a, b in itertools.pairwise(rows))
        assert all(stop - start <= max(1, pixels // width) for start, stop in rows)


def test_a_failing_band_is_raised_and_later_bands_are_not_begun(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading
    import time

    monkeypatch.setattr(bands, "available_cores", lambda: 2)
    monkeypatch.setattr(bands, "BAND_PIXELS", 2)  # one-row bands on each of the 2 threads
    begun: list[int] = []
    lock = threading.Lock()

    def work(start: int, stop: int) -> None:
        with lock:
            begun.append(start)
        if start == 0:
            raise ValueError("band 0 failed")
        time.sleep(0.002)  # the other bands take a while, so most are still queued

    with pytest.raises(ValueError, match="band 0 failed"):
        bands.for_each_band(1000, 1, work)
    assert len(begun) < 1000


def test_integer_rounding_in_bands_matches_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    values = RNG.random((40, 30, 3))
    whole = image_picture.to_integer(values, 16)
    monkeypatch.setattr(image_picture, "BAND_PIXELS", 100)
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


def stretch(x: np.ndarray) -> np.ndarray:
    return x * 1.3 - 0.1  # a new plane, and values outside [0, 1] to clip


COLOURED = [
    (SuperResolution(2), "y"),
    (SuperResolution(3), "rgb"),
    (SuperResolution(2), "ycbcr"),
    (Denoise(25), "rgb"),
    (Denoise(25), "y"),
    (Deblock(10), "ycbcr"),
]


@pytest.mark.parametrize(("task", "color"), COLOURED)
@pytest.mark.parametrize("layout", ["gray", "rgb", "rgba"])
def test_integer_samples_in_and_out_match_the_float_path_written(
    monkeypatch: pytest.MonkeyPatch, task: Task, color: str, layout: str
) -> None:
    # What `memnet restore` wrote before: float32 pixels decoded from 8-bit samples, restored,
    # then rounded by the writer. Now: the samples themselves, rounded in the restore.
    shape = (23, 31) if layout == "gray" else (23, 31, 3)
    samples = RNG.integers(0, 256, shape, dtype=np.uint8)
    alpha = RNG.random((23, 31)).astype(np.float32) if layout == "rgba" else None
    floats = image_picture.unit_samples(samples, 255.0, np.float32)
    before = restore_picture(Picture(floats, alpha), task, stretch, color=color)
    monkeypatch.setattr(bands, "BAND_PIXELS", 50)  # bands of one or two rows
    after = restore_picture(Picture(samples, alpha), task, stretch, color=color, depth=8)
    assert after.pixels.dtype == np.uint8
    assert np.array_equal(after.pixels, image_picture.to_integer(before.pixels, 8))
    if alpha is not None:
        assert before.alpha is not None
        assert after.alpha is not None
        assert np.array_equal(after.alpha, image_picture.to_integer(before.alpha, 8))
    # the float result from samples is the float result from their floats
    floats_out = restore_picture(Picture(samples, alpha), task, stretch, color=color)
    assert np.array_equal(floats_out.pixels, before.pixels)


@pytest.mark.parametrize(("task", "color"), [*COLOURED, (Denoise(25), "gray")])
def test_the_planes_counted_bound_what_a_restore_holds(
    monkeypatch: pytest.MonkeyPatch, task: Task, color: str
) -> None:
    import tracemalloc

    from memnet.inference.memory import picture_plane_bytes

    band = 4096
    monkeypatch.setattr(bands, "BAND_PIXELS", band)
    shape = (200, 300) if color == "gray" else (200, 300, 3)
    samples = RNG.integers(0, 256, shape, dtype=np.uint8)
    picture = Picture(samples)
    out_shape = task.output_shape(200, 300)
    counted = picture_plane_bytes(
        samples, None, out_shape, color, resamples=task.resamples, depth=8
    )
    tracemalloc.start()
    held = tracemalloc.get_traced_memory()[0]
    restored = restore_picture(picture, task, stretch, color=color, depth=8)
    peak = tracemalloc.get_traced_memory()[1] - held
    tracemalloc.stop()
    del restored
    # Beyond the planes: the bands of rows being converted, a few float64 copies of a
    # three-channel band (24 bytes per pixel each) at the input's or the output's width; SR's
    # bicubic bands span the input rows under their kernels too. 64 such copies are ample.
    slack = 64 * 24 * band
    assert samples.nbytes < peak <= counted + slack
    # and the count is not a loose guess: the planes are most of it
    assert peak >= counted // 2
