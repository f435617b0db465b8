"""Pictures in memory: pixels as floats in [0, 1], alpha apart, and what is needed to save alike.

(H, W) is gray, (H, W, 3) colour. Decoded files are float32 (`PIXEL_DTYPE`): exact for 8- and
16-bit samples and half the memory of float64; pictures made from float64 arrays stay float64.
A picture may instead hold its integer samples (uint8 or uint16 of `bit_depth`): files read for
restoring keep 8-bit samples as decoded (a quarter of float32's memory) and a restore rounds its
result straight to what the file will hold; `unit_rows` gives any rows as floats in [0, 1].
This module has no Pillow: reading.py and writing.py turn files and Pillow images into pictures
and back, and share the sample arithmetic here (integer samples to [0, 1] and back).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import cast

import numpy as np
from numpy.typing import NDArray

from memnet.errors import MemNetError
from memnet.imaging.bands import BAND_PIXELS, band_rows
from memnet.imaging.planes import copied_plane, new_plane

__all__ = [
    "BAND_PIXELS",
    "MAX_PIXELS",
    "PIXEL_DTYPE",
    "Picture",
    "picture_from_array",
    "picture_to_array",
    "split_channels",
    "to_integer",
    "unit_rows",
    "unit_samples",
]

# Refuse absurd sizes (decompression bombs) before decoding: 16k × 16k is far beyond any photo
# MemNet can process in reasonable time on a CPU anyway.
MAX_PIXELS = 16384 * 16384
# Decoded samples: float32 holds every 8- and 16-bit level exactly enough to round back to it
# (its relative error, 6e-8, is far below half a 16-bit step, 7.6e-6) at half float64's memory.
PIXEL_DTYPE = np.float32


@dataclass
class Picture:
    """An image in memory: pixels in [0, 1], optional alpha, and what is needed to save it alike."""

    pixels: NDArray[np.generic]  # [0, 1] floats, or integer samples (`has_samples`)
    alpha: NDArray[np.generic] | None = None
    bit_depth: int = 8
    icc_profile: bytes | None = None
    source_mode: str = ""
    exif: bytes | None = None  # the source's EXIF with the orientation reset (pixels are upright)
    info: dict[str, object] = field(default_factory=dict)

    @property
    def is_gray(self) -> bool:
        return self.pixels.ndim == 2

    @property
    def has_samples(self) -> bool:
        """Whether `pixels` are integer samples (of `bit_depth`) rather than [0, 1] floats."""
        return not np.issubdtype(self.pixels.dtype, np.floating)

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    def with_pixels(
        self, pixels: NDArray[np.generic], alpha: NDArray[np.generic] | None
    ) -> Picture:
        """A copy with new pixels and alpha but the same bit depth, profile and metadata."""
        return replace(self, pixels=pixels, alpha=alpha, info=dict(self.info))


def split_channels(
    values: NDArray[np.floating],
) -> tuple[NDArray[np.floating], NDArray[np.floating] | None]:
    """(H, W, C) with C in 1..4 → (gray or RGB pixels, alpha or None)."""
    if values.ndim == 2:
        return values, None
    channels = values.shape[2]
    if channels == 1:
        return values[..., 0], None
    if channels == 2:
        return values[..., 0], values[..., 1]
    if channels == 3:
        return values, None
    if channels == 4:
        return values[..., :3], values[..., 3]
    raise MemNetError(f"images with {channels} channels are not supported")


def unit_samples(
    samples: NDArray[np.generic], peak: float, dtype: type[np.floating]
) -> NDArray[np.floating]:
    """Integer samples → floats of `dtype` in [0, 1], in one buffer (divided in place)."""
    values: NDArray[np.floating] = copied_plane(samples, dtype)
    values /= dtype(peak)
    return values


def unit_rows(values: NDArray[np.generic], start: int, stop: int) -> NDArray[np.floating]:
    """Rows start .. stop of `values` as [0, 1] floats: integer samples become float32 exactly
    as decoding makes them (`unit_samples`); floats are returned as they are (a view)."""
    rows = values[start:stop]
    if np.issubdtype(rows.dtype, np.floating):
        return cast("NDArray[np.floating]", rows)
    return unit_samples(rows, float(np.iinfo(rows.dtype.str).max), PIXEL_DTYPE)


def to_integer(values: NDArray[np.generic], bit_depth: int) -> NDArray[np.generic]:
    """Round [0, 1] floats to 8- or 16-bit samples, in float64, a band of rows at a time.

    Samples already of that depth are returned as they are (no copy)."""
    peak = 65535.0 if bit_depth == 16 else 255.0
    target = np.uint16 if bit_depth == 16 else np.uint8
    if values.dtype == target:
        return values
    out = new_plane(values.shape, target)
    for start, stop in band_rows(values.shape[0], values[:1].size, BAND_PIXELS):
        band = np.asarray(unit_rows(values, start, stop), dtype=np.float64) * peak
        band += 0.5
        out[start:stop] = np.clip(np.floor(band, out=band), 0, peak, out=band)
    return out


def picture_from_array(array: NDArray[np.generic]) -> Picture:
    """Wrap an (H, W), (H, W, 1|2|3|4) array: uint8, uint16, or float in [0, 1]."""
    data = np.asarray(array)
    if data.ndim not in (2, 3) or (data.ndim == 3 and not 1 <= data.shape[2] <= 4):
        raise MemNetError(
            f"expected an (H, W) or (H, W, C) image array with C in 1..4, got shape {data.shape}"
        )
    values: NDArray[np.floating]
    if data.dtype == np.uint8:
        values, bit_depth = unit_samples(data, 255.0, PIXEL_DTYPE), 8
    elif data.dtype == np.uint16:
        values, bit_depth = unit_samples(data, 65535.0, PIXEL_DTYPE), 16
    elif np.issubdtype(data.dtype, np.floating):
        # float32 stays float32 (and the pipeline with it); other floats become float64
        values, bit_depth = data.astype(np.float32 if data.dtype == np.float32 else np.float64), 8
        if not np.isfinite(values).all():
            raise MemNetError("image array contains NaN or infinite values")
    else:
        raise MemNetError(f"unsupported image array dtype {data.dtype}; use uint8, uint16 or float")
    pixels, alpha = split_channels(values)
    return Picture(
        np.ascontiguousarray(pixels),
        None if alpha is None else np.ascontiguousarray(alpha),
        bit_depth,
        source_mode=f"array:{data.dtype}:{data.shape[2] if data.ndim == 3 else 0}",
    )


def picture_to_array(picture: Picture, dtype: np.dtype[np.generic] | type) -> NDArray[np.generic]:
    """The picture as an array of `dtype` (uint8, uint16 or float), alpha as the last channel."""
    target = np.dtype(dtype)
    if target in (np.uint8, np.uint16):
        bits = 16 if target == np.uint16 else 8
        samples = to_integer(picture.pixels, bits)
        if picture.alpha is None:
            return samples
        return np.dstack([samples, to_integer(picture.alpha, bits)])
    pixels = unit_rows(picture.pixels, 0, picture.height)
    if picture.alpha is not None:
        pixels = np.dstack([pixels, unit_rows(picture.alpha, 0, picture.height)])
    return np.clip(pixels, 0.0, 1.0).astype(target)
