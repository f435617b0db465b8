"""memnet: MemNet (Tai et al., ICCV 2017) for super-resolution, denoising and JPEG deblocking."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("memnet")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

from memnet.errors import MemNetError
from memnet.model import PRESETS, MemNet, MemNetConfig, create_model

__all__ = ["PRESETS", "MemNet", "MemNetConfig", "MemNetError", "__version__", "create_model"]
