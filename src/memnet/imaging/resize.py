"""Bicubic resizing identical to MATLAB's `imresize(image, scale, 'bicubic')`.

MATLAB resizes one dimension at a time with a separable Keys cubic kernel (a = -0.5). When
shrinking it stretches the kernel by 1/scale (antialiasing); out-of-range taps are mirrored
(symmetric padding, edge pixel repeated); the output size is ceil(input · scale); dimensions are
processed in order of increasing scale, rows first on a tie. Everything here is float64 so that
the SR test protocol (down then up, never quantised in between) matches the authors' numbers.
"""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

ScalarT = TypeVar("ScalarT", bound=np.generic)

__all__ = ["cubic", "imresize", "imresize_rows", "modcrop", "resize_weights"]

KERNEL_WIDTH = 4.0  # support of the Keys cubic, in input pixels, at scale 1


def cubic(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Keys (1981) cubic convolution kernel with a = -0.5, as MATLAB's `cubic`."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def resize_weights(
    in_length: int, out_length: int, scale: float, antialias: bool = True
) -> tuple[NDArray[np.float64], NDArray[np.intp]]:
    """Per-output-pixel kernel weights and (mirrored, 0-based) input indices for one dimension.

    Returns `(weights, indices)`, both of shape (out_length, taps).
    """
    if scale < 1 and antialias:
        width = KERNEL_WIDTH / scale

        def kernel(x: NDArray[np.float64]) -> NDArray[np.float64]:
            return scale * cubic(scale * x)
    else:
        width = KERNEL_WIDTH
        kernel = cubic

    # 1-based output coordinates mapped into input space, as MATLAB's `contributions`.
    out_coords = np.arange(1, out_length + 1, dtype=np.float64)
    centres = out_coords / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(centres - width / 2.0)
    taps = math.ceil(width) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    weights = kernel(centres[:, None] - indices)
    weights /= weights.sum(axis=1, keepdims=True)

    # Symmetric padding: 1..n, n..1, repeated.
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    index0 = indices.astype(np.int64) - 1
    mirrored = mirror[np.mod(index0, 2 * in_length)]

    # MATLAB drops tap columns whose weight is zero for every output pixel.
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], mirrored[:, keep]


def _resize_axis(
    image: NDArray[np.float64], axis: int, out_length: int, scale: float, antialias: bool
) -> NDArray[np.float64]:
    weights, indices = resize_weights(image.shape[axis], out_length, scale, antialias)
    moved = np.moveaxis(image, axis, 0)
    shape = (out_length,) + (1,) * (moved.ndim - 1)
    out = np.zeros((out_length, *moved.shape[1:]), dtype=np.float64)
    # One tap at a time keeps memory at one output-sized buffer whatever the kernel width.
    for tap in range(weights.shape[1]):
        out += weights[:, tap].reshape(shape) * moved[indices[:, tap]]
    return np.moveaxis(out, 0, axis)


def imresize(
    image: NDArray[np.generic],
    scale: float | None = None,
    *,
    output_shape: tuple[int, int] | None = None,
    antialias: bool = True,
) -> NDArray[np.float64]:
    """Resize an (H, W) or (H, W, C) array like MATLAB `imresize(..., 'bicubic')`, in float64.

    Give either `scale` (output size ceil(in · scale)) or `output_shape` (H, W). Integer input is
    converted to float64 without rescaling; the result is never rounded or clipped.
    """
    if (scale is None) == (output_shape is None):
        raise ValueError("imresize needs exactly one of scale or output_shape")
    array = np.asarray(image, dtype=np.float64)
    if array.ndim not in (2, 3):
        raise ValueError(f"imresize expects an (H, W) or (H, W, C) array, got shape {array.shape}")
    in_h, in_w = array.shape[:2]
    if in_h < 1 or in_w < 1:
        raise ValueError(f"cannot resize an empty image of shape {array.shape}")

    if scale is not None:
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"resize scale must be a positive number, got {scale}")
        scales = (float(scale), float(scale))
        out_h, out_w = math.ceil(in_h * scale), math.ceil(in_w * scale)
    else:
        assert output_shape is not None
        out_h, out_w = (int(v) for v in output_shape)
        if out_h < 1 or out_w < 1:
            raise ValueError(f"output shape must be positive, got {output_shape}")
        scales = (out_h / in_h, out_w / in_w)

    out_lengths = (out_h, out_w)
    # MATLAB resizes the dimension with the smaller scale first; on a tie, rows first.
    for axis in sorted((0, 1), key=lambda a: scales[a]):
        array = _resize_axis(array, axis, out_lengths[axis], scales[axis], antialias)
    return array


def imresize_rows(
    image: NDArray[np.generic], scale: float, start: int, stop: int
) -> NDArray[np.float64]:
    """Rows start .. stop of `imresize(image, scale)` for a 2-D image, bit for bit.

    With one scale for both axes MATLAB resizes rows first, so a band of output rows needs
    only the input rows under its kernels: a large image is resized a band at a time in the
    memory of one band (same weights, same taps in the same order as `imresize`).
    """
    if image.ndim != 2:
        raise ValueError(f"imresize_rows expects an (H, W) array, got shape {image.shape}")
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"resize scale must be a positive number, got {scale}")
    in_h, in_w = image.shape
    out_h, out_w = math.ceil(in_h * scale), math.ceil(in_w * scale)
    start, stop = max(0, start), min(stop, out_h)
    weights, indices = resize_weights(in_h, out_h, float(scale))
    weights, indices = weights[start:stop], indices[start:stop]
    out = np.zeros((max(0, stop - start), in_w), dtype=np.float64)
    for tap in range(weights.shape[1]):
        out += weights[:, tap, None] * np.asarray(image[indices[:, tap]], dtype=np.float64)
    return _resize_axis(out, 1, out_w, float(scale), True)


def modcrop(image: NDArray[ScalarT], modulus: int) -> NDArray[ScalarT]:
    """Crop the bottom/right so that height and width are multiples of `modulus`."""
    if modulus < 1:
        raise ValueError(f"modcrop modulus must be positive, got {modulus}")
    h, w = image.shape[:2]
    return image[: h - h % modulus, : w - w % modulus]
