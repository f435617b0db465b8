"""The identity of an image's decoded pixels, independent of the file format that holds them.

Two files hold the same picture when they decode to the same size, mode and pixel bytes: a BMP
re-saved losslessly as PNG matches its original, a re-saved JPEG or an RGB copy of a gray image
does not. Palette images are expanded to their colours first, as memnet reads them (a palette
image is scored as colour, even when its palette is gray), so a re-encoding that only adds or
drops a colour palette still matches.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from memnet.errors import MemNetError

__all__ = ["PixelDigest", "pixel_digest"]


@dataclass(frozen=True)
class PixelDigest:
    """Width, height, Pillow mode and SHA-256 of the decoded pixel bytes of one image."""

    width: int
    height: int
    mode: str
    sha256: str
    stored_mode: str = field(default="", compare=False)  # the file's own mode, e.g. "P"


def _canonical(image: Image.Image) -> Image.Image:
    """The image in a mode whose bytes do not depend on how the file stored them."""
    if image.mode == "P":
        # A palette is a storage choice: compare the colours it stands for.
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode == "1":
        image = image.convert("L")
    return image


def pixel_digest(source: str | Path | bytes) -> PixelDigest:
    """Decode an image file (a path or its bytes) and digest its pixels."""
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as opened:
            opened.load()
            stored_mode = opened.mode
            image = _canonical(opened)
            pixels = image.tobytes()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise MemNetError(f"{name}: cannot decode image ({error})") from None
    digest = hashlib.sha256(pixels).hexdigest()
    return PixelDigest(image.width, image.height, image.mode, digest, stored_mode)
