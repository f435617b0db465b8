"""JPEG compression at an IJG quality, as MATLAB's `imwrite(..., 'Quality', q)` does.

Pillow links libjpeg(-turbo), whose quality → quantisation-table scaling is the IJG one (the
Annex K tables scaled by 5000/q below q = 50 and by 200 − 2q from there, clamped to the
baseline range 1..255); on a single channel (Y or gray) there is no chroma subsampling to
disagree about.
"""

from __future__ import annotations

import io

import numpy as np
from numpy.typing import NDArray
from PIL import Image

__all__ = ["jpeg_decode", "jpeg_encode", "jpeg_roundtrip"]


def jpeg_encode(image: NDArray[np.uint8], quality: int) -> bytes:
    """Encode an (H, W) uint8 image as baseline JPEG at IJG quality `quality` (1..100)."""
    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(
            f"JPEG encoding expects an (H, W) uint8 array, got {image.dtype} {image.shape}"
        )
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    return buffer.getvalue()


def jpeg_decode(data: bytes) -> NDArray[np.uint8]:
    """Decode a one-channel JPEG to an (H, W) uint8 array."""
    with Image.open(io.BytesIO(data)) as decoded:
        return np.asarray(decoded.convert("L"), dtype=np.uint8).copy()


def jpeg_roundtrip(image: NDArray[np.uint8], quality: int) -> NDArray[np.uint8]:
    """Encode an (H, W) uint8 image as baseline JPEG at `quality` (1..100) and decode it."""
    return jpeg_decode(jpeg_encode(image, quality))
