"""Property-based tests of the Python API: memnet.load(...)(array or PIL image) over sizes, layouts,
modes and levels, with the baselines and with a tiny identity-initialised network.

The identity baseline and an identity network must give the input back (what a lossless
pipeline owes); SR must give the output size ceil(h·s) × ceil(w·s); every layout and dtype comes
back as it went in; a level outside the task's range is refused with a MemNetError, never run.
Examples are generated from a fixed seed (derandomize), so CI runs the same cases every time.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import memnet
from memnet.errors import MemNetError
from memnet.model import PRESETS, MemNet
from memnet.weights.files import save_weights

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
DTYPES = (np.uint8, np.uint16, np.float32, np.float64)
CHANNELS = (0, 1, 2, 3, 4)  # 0: an (H, W) array
# PIL mode in → PIL mode out (Pillow holds 16 bits only for gray without alpha)
PIL_MODES = {"1": "L", "L": "L", "LA": "LA", "P": "RGB", "RGB": "RGB", "RGBA": "RGBA",
             "CMYK": "RGB", "I;16": "I;16", "I": "I;16", "F": "I;16"}  # fmt: skip

sizes = st.integers(min_value=8, max_value=33)
scales = st.floats(min_value=1.05, max_value=4.0, allow_nan=False)
sigmas = st.floats(min_value=0.5, max_value=100.0, allow_nan=False)
qualities = st.integers(min_value=1, max_value=100)


@functools.cache
def tiny_weights() -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="memnet-api-")) / "tiny.safetensors"
    save_weights(MemNet.from_config(PRESETS["tiny"], identity_init=True).eval(), path)
    return path


@functools.cache
def restorer(engine: str, task: str) -> memnet.ImageRestorer:
    if engine == "network":
        return memnet.load(str(tiny_weights()), "cpu", task=task, tile=0)
    return memnet.load("bicubic" if task == "sr" else "identity", "cpu", task=task)


def random_array(
    rng: np.random.Generator, h: int, w: int, dtype: type, channels: int
) -> np.ndarray:
    shape = (h, w) if channels == 0 else (h, w, channels)
    if dtype in (np.uint8, np.uint16):
        return rng.integers(0, np.iinfo(dtype).max + 1, shape).astype(dtype)
    return rng.random(shape).astype(dtype)


def step(dtype: type) -> float:
    """One step of the dtype's value grid in [0, 1] units; float outputs are float64."""
    return 1 / 255 if dtype == np.uint8 else 1 / 65535 if dtype == np.uint16 else 1e-6


@SETTINGS
@given(
    h=sizes,
    w=sizes,
    dtype=st.sampled_from(DTYPES),
    channels=st.sampled_from(CHANNELS),
    engine=st.sampled_from(("baseline", "network")),
    task=st.sampled_from(("denoise", "jpeg")),
    seed=st.integers(0, 2**16),
)
def test_identity_gives_every_array_layout_back(
    h: int, w: int, dtype: type, channels: int, engine: str, task: str, seed: int
) -> None:
    image = random_array(np.random.default_rng(seed), h, w, dtype, channels)
    out = restorer(engine, task)(image)
    assert out.shape == image.shape
    assert out.dtype == (image.dtype if dtype in (np.uint8, np.uint16) else np.float64)
    if engine == "baseline":
        assert np.array_equal(out, image if dtype in (np.uint8, np.uint16) else image.astype(float))
    else:
        # float32 network: the identity moves a value by far less than half a step of 8 or 16 bits
        scale = 255.0 if dtype == np.uint8 else 65535.0 if dtype == np.uint16 else 1.0
        difference = np.abs(out.astype(float) - image.astype(float)) / scale
        assert difference.max() <= step(dtype)


@SETTINGS
@given(
    h=sizes,
    w=sizes,
    dtype=st.sampled_from(DTYPES),
    channels=st.sampled_from(CHANNELS),
    scale=scales,
    engine=st.sampled_from(("baseline", "network")),
)
def test_sr_gives_the_scaled_size_in_the_same_layout(
    h: int, w: int, dtype: type, channels: int, scale: float, engine: str
) -> None:
    image = random_array(np.random.default_rng(h * 100 + w), h, w, dtype, channels)
    out = restorer(engine, "sr")(image, scale=scale)
    size = (math.ceil(h * scale), math.ceil(w * scale))
    assert out.shape == size + image.shape[2:]
    assert out.dtype == (image.dtype if dtype in (np.uint8, np.uint16) else np.float64)
    if dtype not in (np.uint8, np.uint16):
        assert out.min() >= 0.0
        assert out.max() <= 1.0


@SETTINGS
@given(
    h=sizes,
    w=sizes,
    mode=st.sampled_from(tuple(PIL_MODES)),
    task=st.sampled_from(("sr", "denoise", "jpeg")),
    scale=scales,
)
def test_pil_images_come_back_in_the_matching_mode(
    h: int, w: int, mode: str, task: str, scale: float
) -> None:
    rng = np.random.default_rng(h * 7 + w)
    image = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode)
    out = restorer("baseline", task)(image, **({"scale": scale} if task == "sr" else {}))
    assert isinstance(out, Image.Image)
    assert out.mode == PIL_MODES[mode]
    factor = scale if task == "sr" else 1.0
    assert out.size == (math.ceil(w * factor), math.ceil(h * factor))


@SETTINGS
@given(
    level=st.one_of(
        st.tuples(st.just("sr"), st.floats(max_value=1.0) | st.just(math.inf)),
        st.tuples(st.just("denoise"), st.floats(max_value=0.0) | st.just(math.inf)),
        st.tuples(
            st.just("jpeg"),
            st.integers(max_value=0)
            | st.integers(min_value=101)
            | st.floats(1.01, 99.99).filter(lambda q: q != int(q)),
        ),
    )
)
def test_a_level_outside_the_task_is_refused_at_load(level: tuple[str, float]) -> None:
    task, value = level
    name = {"sr": "scale", "denoise": "sigma", "jpeg": "quality"}[task]
    if isinstance(value, float) and math.isnan(value):
        return  # NaN means "not given" at load
    with pytest.raises(MemNetError):
        memnet.load("bicubic" if task == "sr" else "identity", "cpu", task=task, **{name: value})


@SETTINGS
@given(h=st.integers(1, 7), w=st.integers(1, 40), task=st.sampled_from(("sr", "denoise")))
def test_pictures_under_8_px_are_refused(h: int, w: int, task: str) -> None:
    image = np.zeros((h, w) if h % 2 else (w, h), dtype=np.uint8)
    with pytest.raises(MemNetError, match="at least 8x8"):
        restorer("baseline", task)(image, **({"scale": 2} if task == "sr" else {}))
