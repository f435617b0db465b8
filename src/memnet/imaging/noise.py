"""Additive white Gaussian noise, as in the denoising protocol: unclipped and unquantised."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["add_gaussian_noise"]


def add_gaussian_noise(
    clean: NDArray[np.floating], sigma: float, rng: np.random.Generator
) -> NDArray[np.float64]:
    """clean + σ/255 · N(0, 1) for an image in [0, 1]; σ is given on the 0..255 scale."""
    if sigma < 0:
        raise ValueError(f"noise sigma must be non-negative, got {sigma}")
    clean64 = np.asarray(clean, dtype=np.float64)
    return clean64 + (sigma / 255.0) * rng.standard_normal(clean64.shape)
