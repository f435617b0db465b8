"""Reading and writing images as people have them, with one error type for bad files.

Pixels travel as float64 in [0, 1]: (H, W) for gray, (H, W, 3) for colour; alpha is kept
separately. The bit depth of the source (8 or 16) is remembered so the output can match it.
Outputs are written atomically: a failure never leaves a partial file behind.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from memnet.errors import MemNetError
from memnet.fsutil import atomic_path

__all__ = ["MAX_PIXELS", "Picture", "read_image", "read_luminance", "write_image"]

# Refuse absurd sizes (decompression bombs) before decoding: 16k × 16k is far beyond any photo
# MemNet can process in reasonable time on a CPU anyway.
MAX_PIXELS = 16384 * 16384

FORMAT_BY_SUFFIX = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}


@dataclass
class Picture:
    """An image in memory: pixels in [0, 1], optional alpha, and what is needed to save it alike."""

    pixels: NDArray[np.float64]
    alpha: NDArray[np.float64] | None = None
    bit_depth: int = 8
    icc_profile: bytes | None = None
    source_mode: str = ""
    info: dict[str, object] = field(default_factory=dict)

    @property
    def is_gray(self) -> bool:
        return self.pixels.ndim == 2

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def _open(path: Path) -> Image.Image:
    if not path.exists():
        raise MemNetError(f"{path}: no such file")
    if path.is_dir():
        raise MemNetError(f"{path}: is a folder, not an image")
    if path.stat().st_size == 0:
        raise MemNetError(f"{path}: empty file")
    previous = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            if image.width * image.height > MAX_PIXELS:
                raise MemNetError(
                    f"{path}: {image.width}x{image.height} is larger than the {MAX_PIXELS:,}-pixel limit"
                )
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise MemNetError(f"{path}: image is larger than the {MAX_PIXELS:,}-pixel limit") from None
    except UnidentifiedImageError:
        raise MemNetError(f"{path}: not an image file (or a format Pillow cannot read)") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise MemNetError(f"{path}: cannot decode image ({error})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    return image


def read_image(path: str | os.PathLike[str]) -> Picture:
    """Decode an image file into a `Picture` with EXIF orientation applied."""
    path = Path(path)
    image = _open(path)
    icc = image.info.get("icc_profile")
    mode = image.mode
    # A broken EXIF block must not make an otherwise fine image unreadable.
    with contextlib.suppress(OSError, ValueError, SyntaxError):
        image = ImageOps.exif_transpose(image)

    alpha: NDArray[np.float64] | None = None
    bit_depth = 8
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        pixels = np.asarray(image, dtype=np.float64) / 65535.0
        bit_depth = 16
    elif image.mode in ("I", "F"):
        raw = np.asarray(image, dtype=np.float64)
        bit_depth = 16
        pixels = np.clip(raw / 65535.0, 0.0, 1.0)
    else:
        if image.mode in ("P", "PA"):
            image = image.convert(
                "RGBA" if "transparency" in image.info or image.mode == "PA" else "RGB"
            )
        if image.mode == "CMYK":
            image = image.convert("RGB")
        if image.mode in ("LA", "RGBA"):
            alpha = np.asarray(image.getchannel("A"), dtype=np.float64) / 255.0
        if image.mode in ("1", "L", "LA"):
            pixels = np.asarray(image.convert("L"), dtype=np.float64) / 255.0
        else:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    return Picture(
        pixels=pixels,
        alpha=alpha,
        bit_depth=bit_depth,
        icc_profile=icc if isinstance(icc, bytes) else None,
        source_mode=mode,
    )


def read_luminance(path: str | os.PathLike[str]) -> NDArray[np.uint8]:
    """The 8-bit luminance the test protocol scores: MATLAB Y of an RGB file, or the gray image."""
    from memnet.imaging.color import rgb2ycbcr

    image = _open(Path(path))
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # Pillow's own 16-bit → 8-bit conversion clips instead of scaling; MATLAB's im2uint8
        # maps 65535 to 255: round(v / 257).
        wide = np.asarray(image, dtype=np.float64)
        return np.clip(np.floor(wide / 257.0 + 0.5), 0, 255).astype(np.uint8)
    if image.mode in ("1", "L"):
        return np.asarray(image.convert("L"), dtype=np.uint8).copy()
    if image.mode == "LA":
        return np.asarray(image.getchannel("L"), dtype=np.uint8).copy()
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(rgb2ycbcr(rgb)[..., 0])


def _to_integer(values: NDArray[np.floating], bit_depth: int) -> NDArray[np.generic]:
    peak = 65535.0 if bit_depth == 16 else 255.0
    scaled = np.clip(np.floor(np.asarray(values, dtype=np.float64) * peak + 0.5), 0, peak)
    return scaled.astype(np.uint16 if bit_depth == 16 else np.uint8)


def write_image(picture: Picture, path: str | os.PathLike[str]) -> None:
    """Encode `picture` to `path` (format from the suffix) atomically."""
    path = Path(path)
    fmt = FORMAT_BY_SUFFIX.get(path.suffix.lower())
    if fmt is None:
        raise MemNetError(
            f"{path}: unsupported output extension {path.suffix!r}; use one of {', '.join(FORMAT_BY_SUFFIX)}"
        )
    if (
        picture.bit_depth == 16
        and picture.is_gray
        and picture.alpha is None
        and fmt in ("PNG", "TIFF")
    ):
        image = Image.fromarray(_to_integer(picture.pixels, 16))
    else:
        channels = [_to_integer(picture.pixels, 8)]
        if picture.alpha is not None and fmt in ("PNG", "WEBP", "TIFF"):
            alpha = _to_integer(picture.alpha, 8)
            image = Image.fromarray(np.dstack([channels[0], alpha]))
        else:
            image = Image.fromarray(channels[0])
    options: dict[str, object] = {}
    if picture.icc_profile and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
        options["icc_profile"] = picture.icc_profile
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = 95
    if not path.parent.exists():
        raise MemNetError(f"{path}: output folder {path.parent} does not exist")
    try:
        with atomic_path(path) as tmp:
            image.save(tmp, format=fmt, **options)
    except OSError as error:
        raise MemNetError(f"{path}: cannot write image ({error.strerror or error})") from None
