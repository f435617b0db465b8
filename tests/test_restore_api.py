"""The colour pipeline and the Python API (`memnet.load`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import memnet
from memnet.errors import MemNetError
from memnet.imaging import imresize, rgb2ycbcr, ycbcr2rgb
from memnet.imaging.picture import Picture, picture_from_array
from memnet.imaging.reading import read_image
from memnet.inference.pictures import restore_picture
from memnet.model import MemNet, MemNetConfig
from memnet.tasks import Deblock, Denoise, SuperResolution
from memnet.weights import zoo
from memnet.weights.files import save_weights
from rounding import inference_bound

RNG = np.random.default_rng(11)


def halve(x: np.ndarray) -> np.ndarray:
    """A stand-in network whose effect is easy to see."""
    return x * 0.5


def test_sr_sends_y_through_the_network_and_bicubic_cb_cr() -> None:
    rgb = RNG.random((10, 12, 3))
    out = restore_picture(Picture(rgb), SuperResolution(2), halve).pixels
    ycc = rgb2ycbcr(rgb)
    expected = np.dstack(
        [0.5 * imresize(ycc[..., 0], 2), imresize(ycc[..., 1], 2), imresize(ycc[..., 2], 2)]
    )
    assert out.shape == (20, 24, 3)
    assert np.allclose(out, np.clip(ycbcr2rgb(expected), 0, 1))


def test_bicubic_method_equals_matlab_bicubic_per_channel() -> None:
    rgb = RNG.random((10, 12, 3)) * 0.6 + 0.2  # stays inside [0, 1] after resizing
    out = restore_picture(Picture(rgb), SuperResolution(3), None).pixels
    assert np.allclose(out, imresize(rgb, 3), atol=1e-9)  # YCbCr is linear: same as RGB bicubic


def test_denoise_defaults_to_rgb_and_jpeg_to_ycbcr() -> None:
    rgb = RNG.random((9, 9, 3))
    denoised = restore_picture(Picture(rgb), Denoise(50), halve).pixels
    assert np.allclose(denoised, rgb * 0.5)
    deblocked = restore_picture(Picture(rgb), Deblock(10), halve).pixels
    assert np.allclose(deblocked, np.clip(ycbcr2rgb(rgb2ycbcr(rgb) * 0.5), 0, 1))
    only_y = restore_picture(Picture(rgb), Deblock(10), halve, color="y").pixels
    ycc = rgb2ycbcr(rgb)
    ycc[..., 0] *= 0.5
    assert np.allclose(only_y, np.clip(ycbcr2rgb(ycc), 0, 1))


def test_gray_goes_through_directly_and_alpha_is_resized_and_kept() -> None:
    gray = RNG.random((10, 11))
    alpha = RNG.random((10, 11))
    out = restore_picture(Picture(gray, alpha=alpha, bit_depth=16), SuperResolution(2), halve)
    assert np.allclose(out.pixels, np.clip(0.5 * imresize(gray, 2), 0, 1))
    assert out.alpha is not None
    assert out.alpha.shape == (20, 22)
    assert np.allclose(out.alpha, np.clip(imresize(alpha, 2), 0, 1))
    assert out.bit_depth == 16


def test_identity_method_never_modifies_the_input() -> None:
    gray = RNG.random((12, 12)) * 1.2 - 0.1
    before = gray.copy()
    out = restore_picture(Picture(gray), Denoise(25), None)
    assert np.array_equal(gray, before)
    assert out.pixels.min() >= 0
    assert out.pixels.max() <= 1


def test_too_small_and_too_large_outputs_are_refused() -> None:
    with pytest.raises(MemNetError, match="at least 8x8"):
        restore_picture(Picture(np.zeros((5, 40))), SuperResolution(2), None)
    with pytest.raises(MemNetError, match="pixel limit"):
        restore_picture(Picture(np.zeros((9000, 9000))), SuperResolution(4), None)


@pytest.fixture
def tiny_weights(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    model = MemNet(blocks=2, recursions=2, channels=8, identity_init=True)
    path = tmp_path / "tiny-denoise.safetensors"
    save_weights(model, path, {"task": "denoise"})
    return path


def test_load_returns_the_same_kind_it_gets(tiny_weights: Path, tmp_path: Path) -> None:
    restorer = memnet.load(tiny_weights, device="cpu")
    assert restorer.task == "denoise"
    u8 = RNG.integers(0, 256, (16, 20, 3), dtype=np.uint8)
    out = restorer(u8)
    assert out.dtype == np.uint8
    assert out.shape == u8.shape
    # identity-initialised network: the image comes back (up to rounding)
    assert np.abs(out.astype(int) - u8.astype(int)).max() <= 1
    u16 = RNG.integers(0, 65536, (16, 20), dtype=np.uint16)
    assert restorer(u16).dtype == np.uint16
    floats = RNG.random((16, 20, 1)).astype(np.float32)
    assert restorer(floats).shape == (16, 20, 1)
    rgba = np.dstack([u8, u8[..., 0]])
    assert restorer(rgba).shape == (16, 20, 4)
    pil = restorer(Image.fromarray(u8).convert("L"))
    assert isinstance(pil, Image.Image)
    assert pil.mode == "L"
    Image.fromarray(u8).save(tmp_path / "in.png")
    picture = restorer(tmp_path / "in.png")
    assert isinstance(picture, Picture)
    written = restorer.restore_file(tmp_path / "in.png", tmp_path / "out.png")
    assert read_image(written).pixels.shape == (16, 20, 3)
    with pytest.raises(MemNetError, match="already exists"):
        restorer.restore_file(tmp_path / "in.png", tmp_path / "out.png")
    with pytest.raises(MemNetError, match="input image"):
        restorer.restore_file(tmp_path / "in.png", tmp_path / "in.png", overwrite=True)
    with pytest.raises(TypeError, match="numpy array"):
        restorer(42)  # type: ignore[call-overload]


def test_task_levels_at_load_or_at_call() -> None:
    image = RNG.integers(0, 256, (10, 14), dtype=np.uint8)
    at_load = memnet.load("bicubic", task="sr", scale=3)
    assert at_load(image).shape == (30, 42)
    assert at_load(image, scale=2).shape == (20, 28)
    at_call = memnet.load("bicubic", task="sr")
    with pytest.raises(MemNetError, match="needs a scale"):
        at_call(image)
    assert at_call(image, scale=4).shape == (40, 56)
    with pytest.raises(MemNetError, match="greater than 1"):
        memnet.load("bicubic", task="sr", scale=0.5)


def test_load_errors_are_clear(
    tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(MemNetError, match="neither a released model"):
        memnet.load("no-such-model")
    with pytest.raises(MemNetError, match="trained for 'denoise', not 'sr'"):
        memnet.load(tiny_weights, task="sr")
    with pytest.raises(MemNetError, match="task"):
        memnet.load("bicubic")
    with monkeypatch.context() as empty:
        empty.setattr(zoo, "REGISTRY", {})
        with pytest.raises(MemNetError, match="no released model"):
            memnet.load(task="jpeg")
    with pytest.raises(MemNetError, match="colour mode"):
        memnet.load("identity", task="jpeg", color="lab")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(MemNetError, match="safetensors"):
        memnet.load(bad, task="sr")


def test_load_network_output_is_tiled_exactly(tiny_weights: Path) -> None:
    model_restorer = memnet.load(tiny_weights, device="cpu", tile=0)
    tiled_restorer = memnet.load(tiny_weights, device="cpu", tile=12)
    image = RNG.random((40, 50))
    whole = model_restorer(image)
    bound = inference_bound(MemNetConfig(blocks=2, recursions=2, channels=8), np.abs(whole).max())
    assert np.abs(whole - tiled_restorer(image)).max() <= bound
    assert tiled_restorer.windows(picture_from_array(image)) > 1


def test_baseline_refuses_a_device_or_dtype_that_cannot_work() -> None:
    with pytest.raises(MemNetError, match="half precision"):
        memnet.load("bicubic", device="cpu", task="sr", scale=2, dtype="bf16")
    if not torch.cuda.is_available():
        with pytest.raises(MemNetError, match="CUDA is not available"):
            memnet.load("identity", device="cuda", task="denoise")


def test_weights_of_a_run_carry_their_trained_levels(tmp_path: Path) -> None:
    path = tmp_path / "run.safetensors"
    meta = {"memnet.task": "denoise", "memnet.levels": "[30, 50, 70]"}
    save_weights(MemNet(blocks=2, recursions=2, channels=8), path, meta)
    restorer = memnet.load(path, device="cpu")
    assert restorer.loaded.levels == (30.0, 50.0, 70.0)
    # By default the usual level (sigma 50) when the model covers it, else its first level.
    assert restorer.make_task().label == "sigma50"
    assert restorer.make_task(sigma=30).label == "sigma30"
    for levels, expected in (("[0, 75]", "sigma50"), ("[60, 70]", "sigma60")):
        save_weights(
            MemNet(blocks=2, recursions=2, channels=8), path, {**meta, "memnet.levels": levels}
        )
        assert memnet.load(path, device="cpu").make_task().label == expected
