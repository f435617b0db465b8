"""MATLAB-compatible pixel math checked against values worked out by hand."""

from __future__ import annotations

import io
import math
import zlib

import numpy as np
import pytest
from PIL import Image

from memnet.imaging import (
    imresize,
    jpeg_decode,
    jpeg_encode,
    jpeg_roundtrip,
    modcrop,
    rgb2ycbcr,
    ycbcr2rgb,
)
from memnet.imaging.color import round_to_uint8, ycbcr_channel
from memnet.imaging.noise import add_gaussian_noise, noise_generator
from memnet.imaging.resize import cubic, resize_weights


def test_keys_kernel_values() -> None:
    x = np.array([0.0, 0.25, 0.75, 1.0, 1.25, 1.75, 2.0, 2.5])
    # a = -0.5: 1.5|x|³ − 2.5|x|² + 1 inside 1, −0.5|x|³ + 2.5|x|² − 4|x| + 2 up to 2
    expected = [1.0, 0.8671875, 0.2265625, 0.0, -0.0703125, -0.0234375, 0.0, 0.0]
    # the expected values are exact binary fractions; float64 evaluation is exact up to ~1 ulp
    np.testing.assert_allclose(cubic(x), expected, atol=1e-15)


def test_upscale_by_two_matches_hand_computed_taps() -> None:
    # Output pixel 1 of a ×2 upscale sits at input coordinate 0.75: taps at -1, 0, 1, 2 (1-based)
    # with weights c(1.75), c(0.75), c(0.25), c(1.25); taps -1 and 0 mirror onto pixels 2 and 1.
    row = np.array([[1.0, 0.0, 0.0, 0.0]])
    out = imresize(row, output_shape=(1, 8))
    assert out[0, 0] == pytest.approx(0.2265625 + 0.8671875)
    # Output 2 sits at 1.25: taps 0 (→ 1), 1, 2, 3 with c(1.25), c(0.25), c(0.75), c(1.75).
    assert out[0, 1] == pytest.approx(-0.0703125 + 0.8671875)
    impulse = np.array([[0.0, 1.0, 0.0, 0.0]])
    # Output 1 sees pixel 2 through the mirrored tap (-1 → 2) and directly: c(1.75) + c(1.25).
    assert imresize(impulse, output_shape=(1, 8))[0, 0] == pytest.approx(-0.0234375 - 0.0703125)


def test_upscale_weights_interior_pixel() -> None:
    # Output pixel 5 (1-based) of ×2 maps to 2.75: taps 1..4 at distances 1.75, 0.75, 0.25, 1.25.
    weights, indices = resize_weights(8, 16, 2.0)
    row = dict(zip(indices[4].tolist(), weights[4].tolist(), strict=True))
    assert row[0] == pytest.approx(-0.0234375)
    assert row[1] == pytest.approx(0.2265625)
    assert row[2] == pytest.approx(0.8671875)
    assert row[3] == pytest.approx(-0.0703125)


def test_downscale_uses_stretched_normalised_kernel() -> None:
    # ×1/2: output 1 sits at 1.5 with kernel (1/2)·c(x/2), 8 taps from -2 to 5 (weights sum to 1).
    weights, _ = resize_weights(8, 4, 0.5)
    assert weights.sum(axis=1) == pytest.approx(np.ones(4))
    raw = 0.5 * cubic(0.5 * (1.5 - np.arange(-2, 6, dtype=np.float64)))
    expected = raw / raw.sum()
    # weights in [0, 1] from a handful of float64 operations: a few ulps at most
    np.testing.assert_allclose(weights[0], expected[raw != 0], atol=1e-15)


def test_constant_image_is_preserved() -> None:
    image = np.full((13, 7), 0.3)
    for scale in (0.25, 1 / 3, 0.5, 2, 3, 4, 1.7):
        # weights summing to 1 in float64: ~(taps) ulps of 0.3, far below 1e-12
        np.testing.assert_allclose(imresize(image, scale), 0.3, atol=1e-12)


@pytest.mark.parametrize(
    ("shape", "scale"), [((7, 9), 2), ((11, 13), 3), ((17, 5), 4), ((9, 10), 3)]
)
def test_down_then_up_shapes_for_odd_sizes(shape: tuple[int, int], scale: int) -> None:
    image = np.random.default_rng(0).random(shape)
    small = imresize(image, 1 / scale)
    assert small.shape == (math.ceil(shape[0] / scale), math.ceil(shape[1] / scale))
    big = imresize(small, scale)
    assert big.shape == (small.shape[0] * scale, small.shape[1] * scale)
    cropped = modcrop(image, scale)
    assert cropped.shape == (shape[0] - shape[0] % scale, shape[1] - shape[1] % scale)


def test_colour_channels_resize_independently() -> None:
    rng = np.random.default_rng(1)
    image = rng.random((10, 12, 3))
    out = imresize(image, 1 / 3)
    for c in range(3):
        # the same float64 weights applied per channel; only the summation order may differ
        np.testing.assert_allclose(out[..., c], imresize(image[..., c], 1 / 3), atol=1e-14)


def test_resize_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        imresize(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="positive"):
        imresize(np.zeros((4, 4)), -2)
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        imresize(np.zeros(4), 2)


def test_rgb2ycbcr_matches_matlab_reference_pixels() -> None:
    # MATLAB: rgb2ycbcr(uint8([255 0 0; 0 255 0; 0 0 255; 255 255 255; 0 0 0]))
    rgb = np.array(
        [[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255], [0, 0, 0]]], dtype=np.uint8
    )
    expected = np.array(
        [[[81, 90, 240], [145, 54, 34], [41, 240, 110], [235, 128, 128], [16, 128, 128]]]
    )
    np.testing.assert_array_equal(rgb2ycbcr(rgb), expected)


def test_rgb2ycbcr_rounds_half_levels_in_matlab_order() -> None:
    # (0, 204, 68) gives exactly Y = 125.5 in exact arithmetic. MATLAB scales its matrix by 1/255
    # first and sums T1·R + T2·G + T3·B + 16 left to right (imlincomb), landing just below the
    # half: 125. Dividing the pixel by 255 first would land on or above it and give 126.
    rgb = np.array([[[0, 204, 68]]], dtype=np.uint8)
    assert rgb2ycbcr(rgb)[0, 0, 0] == 125
    assert round(16 + (128.553 * 204 + 24.966 * 68) / 255, 10) == 125.5


def test_one_ycbcr_channel_is_that_channel_of_rgb2ycbcr_bit_for_bit() -> None:
    # restoring converts one plane at a time; it must give exactly what the whole conversion does
    rgb = np.random.default_rng(5).random((17, 23, 3)).astype(np.float32)
    whole = rgb2ycbcr(np.asarray(rgb, dtype=np.float64))
    for c in range(3):
        np.testing.assert_array_equal(ycbcr_channel(rgb, c), whole[..., c])


def test_colour_round_trip_is_within_one_level() -> None:
    rgb = np.random.default_rng(2).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    # memnet keeps YCbCr in float between the split and the merge: back to 8 bits exactly.
    as_float = rgb.astype(np.float64) / 255
    back = round_to_uint8(ycbcr2rgb(rgb2ycbcr(as_float)) * 255)
    assert np.abs(back.astype(int) - rgb.astype(int)).max() <= 1
    # a 3x3 matrix and its inverse in float64: the round trip is exact to ~1e-15
    np.testing.assert_allclose(ycbcr2rgb(rgb2ycbcr(as_float)), as_float, atol=1e-12)
    # Through 8-bit YCbCr (MATLAB's uint8 path) studio range has fewer levels than RGB; the
    # inverse matrix (gain up to 1.164 + 2.017 per half level) bounds the error by 2 levels.
    via_uint8 = ycbcr2rgb(rgb2ycbcr(rgb))
    assert np.abs(via_uint8.astype(int) - rgb.astype(int)).max() <= 2


def test_round_to_uint8_rounds_half_away_and_saturates() -> None:
    np.testing.assert_array_equal(
        round_to_uint8(np.array([-3.0, 0.49, 0.5, 1.5, 254.5, 300.0])), [0, 0, 1, 2, 255, 255]
    )


def test_jpeg_round_trip_is_lossy_and_quality_ordered() -> None:
    rng = np.random.default_rng(3)
    xx = np.mgrid[0:64, 0:64][1]
    image = np.clip(128 + 60 * np.sin(xx / 5) + 20 * rng.standard_normal((64, 64)), 0, 255).astype(
        np.uint8
    )
    low, high = jpeg_roundtrip(image, 10), jpeg_roundtrip(image, 90)
    assert low.shape == image.shape
    assert low.dtype == np.uint8
    err = lambda a: np.abs(a.astype(int) - image.astype(int)).mean()  # noqa: E731
    assert err(low) > err(high) > 0
    with pytest.raises(ValueError, match="quality"):
        jpeg_roundtrip(image, 0)


# ITU-T T.81 Annex K luminance quantisation table, natural (row-major) order.
ANNEX_K_LUMINANCE = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ]
)


@pytest.mark.parametrize("quality", [10, 20, 30, 40, 75])
def test_jpeg_uses_the_ijg_quality_tables(quality: int) -> None:
    # IJG jpeg_set_quality: percentage 5000/q below 50, 200 - 2q from there; baseline clamp.
    percent = 5000 // quality if quality < 50 else 200 - 2 * quality
    expected = np.clip((ANNEX_K_LUMINANCE * percent + 50) // 100, 1, 255)
    data = jpeg_encode(np.full((16, 16), 128, np.uint8), quality)
    with Image.open(io.BytesIO(data)) as encoded:
        assert encoded.mode == "L"
        tables = encoded.quantization
    assert list(tables) == [0]  # one channel: one table, no chroma
    np.testing.assert_array_equal(np.array(tables[0]).reshape(8, 8), expected)
    np.testing.assert_array_equal(
        jpeg_decode(data), jpeg_roundtrip(np.full((16, 16), 128, np.uint8), quality)
    )


def test_gaussian_noise_is_seeded_and_unclipped() -> None:
    clean = np.zeros((200, 200))
    a = add_gaussian_noise(clean, 50, np.random.default_rng(5))
    b = add_gaussian_noise(clean, 50, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert a.min() < 0  # not clipped
    assert a.std() == pytest.approx(50 / 255, rel=0.02)


def test_noise_generator_draws_the_pinned_stream() -> None:
    # The first draws of the noise of three images, as `memnet eval` and the validation of
    # `memnet train` made them before they shared this one generator: the seed sequence is
    # (seed, CRC-32 of the name), so the numbers of earlier runs and tables stay valid.
    pinned = {
        (0, "baby.png"): [-0.3896039708566009, 0.12724227376974484, -0.13535340323538797],
        (7, "synthetic/0"): [1.6593101101747139, 0.6217944584732317, 0.482711169807288],
        (0, "Set12/01.png"): [1.0779483693271803, 0.703217421624524, -0.731789668036863],
    }
    for (seed, name), values in pinned.items():
        assert noise_generator(seed, name).standard_normal(3).tolist() == values
        formula = np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])
        np.testing.assert_array_equal(
            noise_generator(seed, name).standard_normal((4, 5)), formula.standard_normal((4, 5))
        )


def test_evaluation_and_training_share_one_noise_generator() -> None:
    # training validates through `evaluate`, so this generator is the only one: no module of
    # memnet defines another
    import ast
    from pathlib import Path

    import memnet
    from memnet.evaluation import benchmark

    assert benchmark.noise_generator is noise_generator
    defined = [
        path.relative_to(Path(memnet.__file__).parent).as_posix()
        for path in Path(memnet.__file__).parent.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef) and node.name == "noise_generator"
    ]
    assert defined == ["imaging/noise.py"]
