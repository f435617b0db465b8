"""MATLAB `rgb2ycbcr` / `ycbcr2rgb` (ITU-R BT.601, studio range: Y in 16..235).

Arrays are (H, W, 3). For uint8 input MATLAB rounds the result to uint8 (half away from zero,
saturating); float input in [0, 1] gives float output in [0, 1] units, unrounded. Both are kept
here because the test protocol takes Y from uint8 images exactly as MATLAB does.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["rgb2ycbcr", "round_to_uint8", "ycbcr2rgb"]

# Rows give Y, Cb, Cr in 0..255 units from R, G, B in 0..1.
RGB_TO_YCBCR = np.array(
    [
        [65.481, 128.553, 24.966],
        [-37.797, -74.203, 112.0],
        [112.0, -93.786, -18.214],
    ],
    dtype=np.float64,
)
YCBCR_OFFSET = np.array([16.0, 128.0, 128.0], dtype=np.float64)
YCBCR_TO_RGB = np.linalg.inv(RGB_TO_YCBCR)


def round_to_uint8(values: NDArray[np.floating]) -> NDArray[np.uint8]:
    """MATLAB's conversion of 0..255 doubles to uint8: round half away from zero, saturate."""
    return np.clip(np.floor(np.asarray(values, dtype=np.float64) + 0.5), 0, 255).astype(np.uint8)


def _check_rgb(image: NDArray[np.generic]) -> None:
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")


def rgb2ycbcr(image: NDArray[np.generic]) -> NDArray[np.generic]:
    """RGB → YCbCr like MATLAB: uint8 in → uint8 out; float in [0, 1] → float in [0, 1]."""
    _check_rgb(image)
    if image.dtype == np.uint8:
        ycbcr = np.asarray(image, dtype=np.float64) / 255.0 @ RGB_TO_YCBCR.T + YCBCR_OFFSET
        return round_to_uint8(ycbcr)
    rgb = np.asarray(image, dtype=np.float64)
    return (rgb @ RGB_TO_YCBCR.T + YCBCR_OFFSET) / 255.0


def ycbcr2rgb(image: NDArray[np.generic]) -> NDArray[np.generic]:
    """YCbCr → RGB like MATLAB: uint8 in → uint8 out; float in [0, 1] → float (unclipped)."""
    _check_rgb(image)
    if image.dtype == np.uint8:
        rgb = (np.asarray(image, dtype=np.float64) - YCBCR_OFFSET) @ YCBCR_TO_RGB.T
        return round_to_uint8(rgb * 255.0)
    ycbcr = np.asarray(image, dtype=np.float64) * 255.0
    return (ycbcr - YCBCR_OFFSET) @ YCBCR_TO_RGB.T
