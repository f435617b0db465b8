"""MATLAB `rgb2ycbcr` / `ycbcr2rgb` (ITU-R BT.601, studio range: Y in 16..235) and `rgb2gray`.

Arrays are (H, W, 3). For uint8 input MATLAB rounds the result to uint8 (half away from zero,
saturating); float input in [0, 1] gives float output in [0, 1] units, unrounded. Both are kept
here because the test protocol takes Y from uint8 images exactly as MATLAB does.

The arithmetic follows MATLAB's own code step by step, because the order of the floating-point
operations decides the rounding of pixels that land (almost) exactly on a half level: the matrix
is scaled first (`T = (1/255) · origT` for uint8 input) and each output channel is then
`T1·R + T2·G + T3·B + offset`, accumulated left to right in double (MATLAB's `imlincomb`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["rgb2gray", "rgb2ycbcr", "round_to_uint8", "ycbcr2rgb", "ycbcr_channel"]

# Rows give Y, Cb, Cr in 0..255 units from R, G, B in 0..1 (MATLAB's `origT`, `origOffset`).
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

# MATLAB rgb2gray: the first row of inv(NTSC RGB -> YIQ), full range (no 16..235 offset).
RGB_TO_GRAY = np.array([0.298936021293776, 0.587043074451121, 0.114020904255103])


def round_to_uint8(values: NDArray[np.floating]) -> NDArray[np.uint8]:
    """MATLAB's conversion of 0..255 doubles to uint8: round half away from zero, saturate."""
    return np.clip(np.floor(np.asarray(values, dtype=np.float64) + 0.5), 0, 255).astype(np.uint8)


def _check_rgb(image: NDArray[np.generic]) -> None:
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")


def _linear_combination(
    image: NDArray[np.generic], matrix: NDArray[np.floating], offset: NDArray[np.floating]
) -> NDArray[np.float64]:
    # MATLAB's imlincomb: val = k1·A1 + k2·A2 + k3·A3 + offset, in this order, in double.
    planes = [np.asarray(image[..., c], dtype=np.float64) for c in range(3)]
    out = np.empty(image.shape, dtype=np.float64)
    for p in range(3):
        out[..., p] = _combine(planes, matrix[p], offset[p])
    return out


def _combine(
    planes: list[NDArray[np.float64]], row: NDArray[np.floating], offset: float
) -> NDArray[np.float64]:
    value = row[0] * planes[0]
    value = value + row[1] * planes[1]
    value = value + row[2] * planes[2]
    return value + offset


def ycbcr_channel(image: NDArray[np.floating], channel: int) -> NDArray[np.float64]:
    """Channel 0, 1 or 2 (Y, Cb, Cr) of `rgb2ycbcr` of a float RGB image, alone: the same
    arithmetic, bit for bit, without computing the other two."""
    _check_rgb(image)
    planes = [np.asarray(image[..., c], dtype=np.float64) for c in range(3)]
    matrix, offset = (1 / 255) * RGB_TO_YCBCR, (1 / 255) * YCBCR_OFFSET
    return _combine(planes, matrix[channel], float(offset[channel]))


def rgb2ycbcr(image: NDArray[np.generic]) -> NDArray[np.generic]:
    """RGB → YCbCr like MATLAB: uint8 in → uint8 out; float in [0, 1] → float in [0, 1]."""
    _check_rgb(image)
    if image.dtype == np.uint8:
        return round_to_uint8(_linear_combination(image, (1 / 255) * RGB_TO_YCBCR, YCBCR_OFFSET))
    return _linear_combination(image, (1 / 255) * RGB_TO_YCBCR, (1 / 255) * YCBCR_OFFSET)


def ycbcr2rgb(image: NDArray[np.generic]) -> NDArray[np.generic]:
    """YCbCr → RGB like MATLAB: uint8 in → uint8 out; float in [0, 1] → float (unclipped)."""
    _check_rgb(image)
    matrix = 255.0 * YCBCR_TO_RGB
    if image.dtype == np.uint8:
        offset = (255.0 * YCBCR_TO_RGB) @ YCBCR_OFFSET
        return round_to_uint8(_linear_combination(image, matrix, -offset))
    return _linear_combination(image, matrix, -(YCBCR_TO_RGB @ YCBCR_OFFSET))


def rgb2gray(image: NDArray[np.generic]) -> NDArray[np.generic]:
    """RGB → gray like MATLAB's rgb2gray: uint8 in → uint8 out; float in → float (unclipped).

    The weighted sum R·c1 + G·c2 + B·c3 is taken in double, in this order, on the values of
    the input class, and (uint8) rounded half away from zero, as MATLAB's `imapplymatrix` does.
    """
    _check_rgb(image)
    planes = [np.asarray(image[..., c], dtype=np.float64) for c in range(3)]
    gray = RGB_TO_GRAY[0] * planes[0]
    gray = gray + RGB_TO_GRAY[1] * planes[1]
    gray = gray + RGB_TO_GRAY[2] * planes[2]
    if image.dtype == np.uint8:
        return round_to_uint8(gray)
    return gray
