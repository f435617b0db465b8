"""Tasks: each degrades and scores exactly as the authors' test scripts did."""

from __future__ import annotations

import math

import numpy as np
import pytest

from memnet.imaging import imresize, jpeg_roundtrip
from memnet.imaging.metrics import psnr, ssim
from memnet.tasks import Deblock, Denoise, SuperResolution, make_task


def clean_image(shape: tuple[int, int] = (50, 47), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    smooth = 120 + 80 * np.sin(xx / 6.0) * np.cos(yy / 9.0)
    return np.clip(smooth + 10 * rng.standard_normal(shape), 0, 255).astype(np.uint8)


def test_sr_ground_truth_is_cropped_to_the_scale() -> None:
    image = clean_image((50, 47))
    assert SuperResolution(3).ground_truth(image).shape == (48, 45)
    assert SuperResolution(4).ground_truth(image).shape == (48, 44)
    assert SuperResolution(2).ground_truth(image).shape == (50, 46)
    np.testing.assert_array_equal(SuperResolution(3).ground_truth(image), image[:48, :45])


def test_sr_input_is_bicubic_down_then_up_never_quantised() -> None:
    task = SuperResolution(3)
    truth = task.ground_truth(clean_image())
    degraded = task.degrade(truth, np.random.default_rng(0))
    low = imresize(truth.astype(np.float64) / 255, 1 / 3)
    assert low.shape == (16, 15)
    np.testing.assert_array_equal(degraded, imresize(low, 3))
    assert degraded.shape == truth.shape
    # never quantised: values between 8-bit levels survive
    assert np.any(np.abs(degraded * 255 - np.round(degraded * 255)) > 1e-3)


@pytest.mark.parametrize("scale", [1.5, 2.5, 3.5])
def test_sr_non_integer_scale_keeps_the_pixel_grid_aligned(scale: float) -> None:
    # Bicubic down then up reproduces a ramp almost exactly away from the borders, but only if
    # the way up uses the scale itself: ceil(102 / s) · s ≠ 102, and resizing to exactly 102 px
    # stretches the grid (by up to 5 levels of this ramp at the far edge for ×3.5).
    task = SuperResolution(scale)
    ramp = np.tile(np.arange(102, dtype=np.uint8) * 2, (102, 1))
    truth = task.ground_truth(ramp)
    assert truth.shape == ramp.shape  # no crop for a non-integer scale
    degraded = task.degrade(truth, np.random.default_rng(0))
    low = imresize(truth.astype(np.float64) / 255, 1 / scale)
    np.testing.assert_array_equal(degraded, imresize(low, scale)[:102, :102])
    inner = np.s_[12:-12, 12:-12]
    assert np.abs(degraded * 255 - truth)[inner].max() < 0.1


def test_sr_scores_rounded_output_with_scale_shaved() -> None:
    task = SuperResolution(4)
    truth = task.ground_truth(clean_image((60, 60)))
    assert task.border == 4
    exact = truth.astype(np.float64) / 255
    perfect = task.measure(exact, truth)
    assert perfect.psnr == math.inf
    assert perfect.ssim == pytest.approx(1.0)
    # The output is rounded to 8 bits first: errors below half a level vanish.
    assert task.measure(exact + 0.4 / 255, truth).psnr == math.inf
    # Only the shaved border differs: still a perfect score.
    bordered = exact.copy()
    bordered[:4] = 0
    bordered[:, -4:] = 1
    assert task.measure(bordered, truth).psnr == math.inf
    # One level off inside the scored region: PSNR = 10·log10(255²/MSE) over 52×52 pixels.
    off = exact.copy()
    off[10, 10] += 1 / 255
    assert task.measure(off, truth).psnr == pytest.approx(10 * math.log10(255**2 * 52 * 52))


def test_denoise_adds_seeded_unclipped_noise_and_scores_unrounded() -> None:
    task = Denoise(25)
    truth = clean_image((64, 64))
    a = task.degrade(truth, np.random.default_rng(7))
    b = task.degrade(truth, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    noise = a * 255 - truth
    assert noise.std() == pytest.approx(25, rel=0.05)
    assert task.border == 0
    # Unrounded: an error of a third of a level is measured, not rounded away.
    exact = truth.astype(np.float64) / 255
    score = task.measure(exact + (1 / 3) / 255, truth)
    assert score.psnr == pytest.approx(20 * math.log10(255 * 3))


def test_deblock_input_is_the_jpeg_of_the_ground_truth() -> None:
    task = Deblock(10)
    truth = clean_image((40, 48))
    degraded = task.degrade(truth, np.random.default_rng(0))
    np.testing.assert_array_equal(degraded * 255, jpeg_roundtrip(truth, 10).astype(np.float64))
    score = task.measure(degraded, truth)
    reference = jpeg_roundtrip(truth, 10).astype(np.float64)
    assert score.psnr == pytest.approx(psnr(reference, truth))
    assert score.ssim == pytest.approx(ssim(reference, truth))


def test_labels_and_descriptions() -> None:
    assert make_task("sr", 2).label == "x2"
    assert make_task("denoise", 50).label == "sigma50"
    assert make_task("jpeg", 10.0).label == "q10"
    assert make_task("sr", 3).describe() == "×3 SR"
    assert isinstance(make_task("jpeg", 20), Deblock)


@pytest.mark.parametrize(
    ("kind", "level", "message"),
    [
        ("sr", 1, "greater than 1"),
        ("sr", float("nan"), "greater than 1"),
        ("denoise", 0, "positive"),
        ("jpeg", 0, "1..100"),
        ("jpeg", 10.5, "integer"),
        ("blur", 2, "unknown task"),
    ],
)
def test_bad_levels_are_rejected(kind: str, level: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_task(kind, level)


def test_images_too_small_for_the_protocol_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"3x3 is too small for ×4 SR.*19x19"):
        SuperResolution(4).ground_truth(np.zeros((3, 3), np.uint8))
    # 21 px crops to 20 at ×4; 20 − 2·4 = 12 ≥ 11 still holds one SSIM window.
    assert SuperResolution(4).ground_truth(np.zeros((21, 21), np.uint8)).shape == (20, 20)
    with pytest.raises(ValueError, match="too small for σ=15 denoising"):
        Denoise(15).ground_truth(np.zeros((10, 40), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        Deblock(10).ground_truth(np.zeros((20, 20), np.float64))
