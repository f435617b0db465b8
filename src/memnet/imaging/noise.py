"""Additive white Gaussian noise, as in the denoising protocol: unclipped and unquantised.

`noise_generator` is the one rule for which noise an image gets, shared by `memnet eval` and
the validation of `memnet train`, so that a run's validation scores are the evaluation's.
"""

from __future__ import annotations

import zlib

import numpy as np
from numpy.typing import NDArray

__all__ = ["add_gaussian_noise", "noise_generator"]


def add_gaussian_noise(
    clean: NDArray[np.floating], sigma: float, rng: np.random.Generator
) -> NDArray[np.float64]:
    """clean + σ/255 · N(0, 1) for an image in [0, 1]; σ is given on the 0..255 scale."""
    if sigma < 0:
        raise ValueError(f"noise sigma must be non-negative, got {sigma}")
    clean64 = np.asarray(clean, dtype=np.float64)
    return clean64 + (sigma / 255.0) * rng.standard_normal(clean64.shape)


def noise_generator(seed: int, image_name: str) -> np.random.Generator:
    """The generator that draws the noise of one image, seeded by (seed, the image's name).

    Seeded by the name rather than by the position in a set, so an image's noise does not
    depend on which other files a folder holds, and is the same run to run.
    """
    return np.random.default_rng([int(seed), zlib.crc32(image_name.encode("utf-8"))])
