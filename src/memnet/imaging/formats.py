"""Image file formats memnet writes, by suffix: facts the command line and server read too.

No Pillow here, so `memnet --help` and the server settings can name them cheaply.
"""

from __future__ import annotations

__all__ = ["ALPHA_FORMATS", "FORMAT_BY_SUFFIX", "PNG_SIGNATURE", "WIDE_FORMATS"]

FORMAT_BY_SUFFIX = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}

# Formats that can hold 16 bits per channel, and those that can hold an alpha channel.
WIDE_FORMATS = ("PNG", "TIFF")
ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
