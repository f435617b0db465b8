"""PSNR and SSIM with the conventions of the MemNet/VDSR test scripts.

Both work in float64 on images scaled to 0..255. SSIM is Wang et al. (2003): an 11×11 Gaussian
window with σ = 1.5, K1 = 0.01, K2 = 0.03, statistics over the 'valid' region only, no
downsampling, mean of the SSIM map.
"""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import correlate1d

ScalarT = TypeVar("ScalarT", bound=np.generic)

__all__ = ["gaussian_window_1d", "psnr", "shave", "ssim"]

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _pair(
    a: NDArray[np.generic], b: NDArray[np.generic]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"images differ in size: {x.shape} vs {y.shape}")
    if x.ndim != 2:
        raise ValueError(f"metrics work on one channel (H, W), got shape {x.shape}")
    return x, y


def shave(image: NDArray[ScalarT], border: int) -> NDArray[ScalarT]:
    """Remove `border` pixels from every side (the SR protocol shaves `scale` pixels)."""
    if border < 0:
        raise ValueError(f"shave border must be non-negative, got {border}")
    if border == 0:
        return image
    h, w = image.shape[:2]
    if h <= 2 * border or w <= 2 * border:
        raise ValueError(f"image of size {h}x{w} is too small to shave {border} px per side")
    return image[border:-border, border:-border]


def psnr(a: NDArray[np.generic], b: NDArray[np.generic], data_range: float = 255.0) -> float:
    """10·log10(range² / MSE); identical images give +inf."""
    x, y = _pair(a, b)
    mse = float(np.mean((x - y) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def gaussian_window_1d(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> NDArray[np.float64]:
    """Normalised 1-D Gaussian; its outer product is MATLAB's fspecial('gaussian', size, sigma)."""
    half = (size - 1) / 2.0
    x = np.arange(size, dtype=np.float64) - half
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(image: NDArray[np.float64], window: NDArray[np.float64]) -> NDArray[np.float64]:
    # The 2-D Gaussian is separable: two 1-D passes, then keep only the 'valid' part.
    filtered = correlate1d(
        correlate1d(image, window, axis=0, mode="constant"), window, axis=1, mode="constant"
    )
    r = len(window) // 2
    return filtered[r:-r, r:-r]


def ssim(a: NDArray[np.generic], b: NDArray[np.generic], data_range: float = 255.0) -> float:
    """Mean SSIM (Wang et al. 2003) over the valid region of an 11×11 Gaussian window."""
    x, y = _pair(a, b)
    if min(x.shape) < SSIM_WINDOW:
        raise ValueError(
            f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {x.shape}"
        )
    window = gaussian_window_1d()
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    mu_x = _filter_valid(x, window)
    mu_y = _filter_valid(y, window)
    var_x = _filter_valid(x * x, window) - mu_x * mu_x
    var_y = _filter_valid(y * y, window) - mu_y * mu_y
    cov = _filter_valid(x * y, window) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    )
    return float(ssim_map.mean())
