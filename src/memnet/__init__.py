"""memnet: MemNet (Tai et al., ICCV 2017) for super-resolution, denoising and JPEG deblocking."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from memnet.errors import MemNetError

if TYPE_CHECKING:
    __version__: str
    from memnet.imaging.picture import Picture
    from memnet.imaging.reading import read_image
    from memnet.imaging.writing import write_image
    from memnet.inference.api import ImageRestorer, load
    from memnet.inference.engine import Restorer
    from memnet.model import PRESETS, MemNet, MemNetConfig, create_model

__all__ = [
    "PRESETS",
    "ImageRestorer",
    "MemNet",
    "MemNetConfig",
    "MemNetError",
    "Picture",
    "Restorer",
    "__version__",
    "create_model",
    "load",
    "read_image",
    "write_image",
]

# Everything below pulls in PyTorch (seconds to import) or Pillow, SciPy and the image
# pipeline; each name is imported on first use, so `import memnet` costs only what is used.
_LAZY = {
    "PRESETS": "memnet.model",
    "MemNet": "memnet.model",
    "MemNetConfig": "memnet.model",
    "create_model": "memnet.model",
    "load": "memnet.inference.api",
    "ImageRestorer": "memnet.inference.api",
    "Picture": "memnet.imaging.picture",
    "read_image": "memnet.imaging.reading",
    "write_image": "memnet.imaging.writing",
    "Restorer": "memnet.inference.engine",
}


def _installed_version() -> str:
    # importlib.metadata costs a tenth of a second to import: only when the version is asked for
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("memnet")
    except PackageNotFoundError:  # running from a source tree without installation
        return "0.0.0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        global __version__
        __version__ = _installed_version()
        return __version__
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'memnet' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
