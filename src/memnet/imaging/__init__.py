"""MATLAB-compatible pixel math: pure functions on numpy arrays, float64 unless stated.

The names below are imported on first use: importing one light module of this package (formats,
picture) must not pull in Pillow (jpeg) or SciPy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memnet.imaging.color import rgb2gray, rgb2ycbcr, ycbcr2rgb
    from memnet.imaging.jpeg import jpeg_decode, jpeg_encode, jpeg_roundtrip
    from memnet.imaging.noise import add_gaussian_noise, noise_generator
    from memnet.imaging.resize import imresize, modcrop

__all__ = [
    "add_gaussian_noise",
    "imresize",
    "jpeg_decode",
    "jpeg_encode",
    "jpeg_roundtrip",
    "modcrop",
    "noise_generator",
    "rgb2gray",
    "rgb2ycbcr",
    "ycbcr2rgb",
]

_LAZY = {
    "rgb2gray": "memnet.imaging.color",
    "rgb2ycbcr": "memnet.imaging.color",
    "ycbcr2rgb": "memnet.imaging.color",
    "jpeg_decode": "memnet.imaging.jpeg",
    "jpeg_encode": "memnet.imaging.jpeg",
    "jpeg_roundtrip": "memnet.imaging.jpeg",
    "add_gaussian_noise": "memnet.imaging.noise",
    "noise_generator": "memnet.imaging.noise",
    "imresize": "memnet.imaging.resize",
    "modcrop": "memnet.imaging.resize",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'memnet.imaging' has no attribute {name!r}")
    return getattr(importlib.import_module(module_name), name)
