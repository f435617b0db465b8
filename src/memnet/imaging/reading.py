"""Reading images as people have them into `Picture`s, with one error type for bad files.

Sizes are checked against `MAX_PIXELS` before decoding (decompression bombs). EXIF orientation
is applied to the pixels on reading; the ICC profile and the rest of the EXIF are kept for the
output; CMYK becomes sRGB through its profile. The bit depth of the source (8 or 16) is
remembered so the output can match it. Pillow decodes 16-bit colour to 8 bits, so 16-bit colour
PNGs are read with `pypng` and 16-bit TIFFs with `tifffile`. `samples=True` keeps 8-bit pixels
as the decoded uint8 samples (what a restore reads a band at a time) instead of floats.

Why one module: every path from a file to a `Picture` shares the size check, the orientation,
the kept metadata and the one-line error, and each format's special case is a few lines.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import struct
import threading
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from memnet.errors import MemNetError
from memnet.imaging.bands import band_rows
from memnet.imaging.formats import PNG_SIGNATURE
from memnet.imaging.picture import (
    BAND_PIXELS,
    MAX_PIXELS,
    PIXEL_DTYPE,
    Picture,
    split_channels,
    unit_samples,
)
from memnet.imaging.planes import contiguous_plane, new_plane

__all__ = ["orient", "picture_from_pil", "read_image", "read_luminance"]

# Opening a file sets two process-wide things for a moment (see _open_with_limit).
_OPEN_LOCK = threading.Lock()
EXIF_ORIENTATION = 0x0112
# TIFF tags that describe how a file stores its pixels, not the picture. Pillow's getexif() on
# a TIFF returns its first IFD, these included; carried into an output of another size they
# contradict it (Pillow's TIFF encoder refuses the file) or describe data that is not there.
# The ICC profile travels on its own (Picture.icc_profile).
TIFF_LAYOUT_TAGS = frozenset(
    {
        254, 255, 256, 257, 258, 259, 262, 263, 264, 265, 266, 273, 277, 278, 279, 280, 281,
        284, 290, 291, 292, 293, 317, 320, 322, 323, 324, 325, 330, 338, 339, 340, 341, 347,
        513, 514, 529, 530, 531, 532, 34675, 37724,
    }
)  # fmt: skip
_SILENT = logging.NullHandler()


def _check_size(path: Path, width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise MemNetError(f"{path}: the header says {width}x{height} px (a damaged file)")
    if width * height > MAX_PIXELS:
        raise MemNetError(
            f"{path}: {width}x{height} is larger than the {MAX_PIXELS:,}-pixel limit "
            "(a decompression bomb or a damaged header)"
        )


def _open_lazy(path: Path) -> Image.Image:
    """Open without decoding pixels: checks existence, emptiness, format and size."""
    if not path.exists():
        raise MemNetError(f"{path}: no such file")
    if path.is_dir():
        raise MemNetError(f"{path}: is a folder, not an image")
    if path.stat().st_size == 0:
        raise MemNetError(f"{path}: empty file")
    try:
        with _OPEN_LOCK:
            image = _open_with_limit(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise MemNetError(f"{path}: image is larger than the {MAX_PIXELS:,}-pixel limit") from None
    except UnidentifiedImageError:
        raise MemNetError(f"{path}: not an image file (or a format Pillow cannot read)") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise MemNetError(f"{path}: cannot decode image ({error})") from None
    _check_size(path, image.width, image.height)
    return image


def _open_with_limit(path: Path) -> Image.Image:
    """Image.open with memnet's pixel limit; callers hold _OPEN_LOCK, as both settings are
    process-wide (Pillow's limit, the warnings filters) and threads must not interleave them."""
    previous = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Pillow memory-maps an uncompressed TIFF opened by name and then drops its EXIF
            # orientation unapplied (seen with Pillow 13, L/P/RGBA); decoded from memory it
            # applies it like every other TIFF.
            return Image.open(io.BytesIO(path.read_bytes()) if _is_tiff(path) else path)
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _open(path: Path) -> Image.Image:
    """Open and decode with Pillow, turning every decoding failure into a one-line MemNetError."""
    image = _open_lazy(path)
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, struct.error, zlib.error) as error:
        raise MemNetError(f"{path}: cannot decode image ({error})") from None
    return image


def _orientation(image: Image.Image) -> int:
    # A broken EXIF block must not make an otherwise fine image unreadable.
    with contextlib.suppress(Exception):
        value = image.getexif().get(EXIF_ORIENTATION, 1)
        return int(value) if int(value) in range(1, 9) else 1
    return 1


def _upright_exif(image: Image.Image) -> bytes | None:
    """The source's EXIF metadata with orientation 1 and no TIFF pixel-layout tags, or None when
    there is none (or it is broken)."""
    with contextlib.suppress(Exception):
        exif = image.getexif()
        for tag in TIFF_LAYOUT_TAGS & set(exif):
            del exif[tag]
        if len(exif) == 0:
            return None
        if EXIF_ORIENTATION in exif:
            exif[EXIF_ORIENTATION] = 1
        return bytes(exif.tobytes())
    return None


def orient(array: NDArray[np.generic], orientation: int) -> NDArray[np.generic]:
    """Apply an EXIF orientation (1..8) to an (H, W[, C]) array, as Pillow's exif_transpose."""
    if orientation == 2:
        return array[:, ::-1]
    if orientation == 3:
        return array[::-1, ::-1]
    if orientation == 4:
        return array[::-1]
    if orientation == 5:
        return array.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(array, -1)
    if orientation == 7:
        return array[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(array, 1)
    return array


def _png_header(path: Path) -> tuple[int, int] | None:
    """(bit depth, colour type) from a PNG's IHDR, or None if the file is not a PNG."""
    with open(path, "rb") as handle:
        head = handle.read(33)
    if len(head) < 33 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return head[24], head[25]


def _wide_samples(
    data: NDArray[np.generic], where: str, dtype: type[np.floating]
) -> NDArray[np.floating]:
    """Samples of more than 8 bits as [0, 1] values; refuses those without an agreed meaning."""
    if np.issubdtype(data.dtype, np.unsignedinteger):
        return unit_samples(data, float(np.iinfo(data.dtype.str).max), dtype)
    if np.issubdtype(data.dtype, np.signedinteger):
        # Pillow's mode "I" (int32) holds 16-bit values: 65535 is white, as for I;16. Negative or
        # wider values could mean anything; refused rather than clipped into a black image.
        peak = min(int(np.iinfo(data.dtype.str).max), 65535)
        if data.size and (int(data.min()) < 0 or int(data.max()) > peak):
            raise MemNetError(
                f"{where}: signed {data.dtype} samples outside 0..{peak} "
                f"({int(data.min())}..{int(data.max())}); save the image as 8- or 16-bit unsigned"
            )
        return unit_samples(data, float(peak), dtype)
    values: NDArray[np.floating] = np.array(data, dtype=dtype)
    if not np.isfinite(values).all():
        raise MemNetError(
            f"{where}: floating-point samples include NaN or infinity; save the image without them"
        )
    return np.clip(values, 0.0, 1.0, out=values)


def _read_png16(path: Path, dtype: type[np.floating]) -> NDArray[np.floating]:
    import png  # pypng: Pillow would reduce 16-bit colour to 8 bits

    try:
        reader = png.Reader(filename=str(path))
        width, height, rows, info = reader.asDirect()
        planes = int(info["planes"])
        data = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
    except (png.Error, OSError, ValueError, zlib.error) as error:
        raise MemNetError(f"{path}: cannot decode image ({error})") from None
    if data.shape != (height, width * planes):
        raise MemNetError(f"{path}: cannot decode image (truncated pixel data)")
    return unit_samples(data.reshape(height, width, planes), 2 ** int(info["bitdepth"]) - 1, dtype)


def _is_tiff(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _read_wide_tiff(path: Path, dtype: type[np.floating]) -> Picture | None:
    """A TIFF with more than 8 bits per sample (which Pillow reduces or rejects), or None."""
    import tifffile

    # tifffile logs what it finds wrong in a damaged file; memnet reports the file in one line
    # of its own, so those records are not printed (a program's own logging still gets them).
    logging.getLogger("tifffile").addHandler(_SILENT)

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            if page.bitspersample <= 8 and page.sampleformat == 1:
                return None
            _check_size(path, int(page.imagewidth), int(page.imagelength))
            data = page.asarray()
            # (separate samples, depth, height, width, contiguous samples), whatever asarray
            # squeezed: a damaged file can claim any layout
            separate, depth, height, width, contiguous = (int(n) for n in page.shaped)
            photometric = int(page.photometric)
            tags = page.tags
            icc = tags["InterColorProfile"].value if "InterColorProfile" in tags else None
            orientation = int(tags["Orientation"].value) if "Orientation" in tags else 1
    except MemNetError:
        raise
    except Exception as error:  # tifffile raises many kinds for damaged files
        raise MemNetError(f"{path}: cannot decode image ({error})") from None
    if photometric not in (0, 1, 2):  # white-is-zero, black-is-zero, RGB
        raise MemNetError(f"{path}: unsupported TIFF colour space (photometric {photometric})")
    samples = separate * contiguous
    if depth != 1 or not 1 <= samples <= 4 or data.size != height * width * samples:
        raise MemNetError(
            f"{path}: unsupported TIFF layout ({samples} samples per pixel, depth {depth}, "
            f"{data.size} values for {width}x{height} px)"
        )
    planes = data.reshape(separate, height, width, contiguous)
    data = np.moveaxis(planes, 0, 2).reshape(height, width, samples)  # planar → interleaved
    data = data[..., 0] if samples == 1 else data
    values = _wide_samples(data, str(path), dtype)
    if photometric == 0:
        values = 1.0 - values
    upright = orient(values, orientation if orientation in range(1, 9) else 1)
    pixels, alpha = split_channels(np.ascontiguousarray(upright))
    return Picture(
        pixels=np.ascontiguousarray(pixels),
        alpha=None if alpha is None else np.ascontiguousarray(alpha),
        bit_depth=16,
        icc_profile=bytes(icc) if icc else None,
        source_mode=f"TIFF;{data.dtype}",
    )


def picture_from_pil(image: Image.Image, dtype: type[np.floating] = PIXEL_DTYPE) -> Picture:
    """Convert a decoded Pillow image (any mode) to a Picture; EXIF orientation is applied."""
    return _picture_from_pil(image, _orientation(image), _upright_exif(image), "image", dtype)


def _picture_from_pil(
    image: Image.Image,
    orientation: int,
    exif: bytes | None,
    where: str,
    dtype: type[np.floating] = PIXEL_DTYPE,
    samples: bool = False,
) -> Picture:
    icc = image.info.get("icc_profile")
    icc = icc if isinstance(icc, bytes) and icc else None
    mode = image.mode
    alpha: NDArray[np.floating] | None = None
    pixels: NDArray[np.generic]
    bit_depth = 8
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # I;16 is uint16, I int32, F float32
        pixels = _wide_samples(np.asarray(image), where, dtype)
        bit_depth = 16
    else:
        if mode == "CMYK":
            image, icc = _cmyk_to_rgb(image, icc)
        elif mode in ("P", "PA"):
            has_alpha = "transparency" in image.info or mode == "PA"
            image = image.convert("RGBA" if has_alpha else "RGB")
        elif mode in ("La", "RGBa"):  # premultiplied alpha
            image = image.convert("LA" if mode == "La" else "RGBA")
        if image.mode in ("LA", "RGBA"):
            alpha = unit_samples(_samples(image.getchannel("A")), 255.0, dtype)
        wanted = "L" if image.mode in ("1", "L", "LA") else "RGB"
        # convert() copies even to the mode the image has: only convert what needs it
        decoded = _samples(image if image.mode == wanted else image.convert(wanted))
        pixels = decoded if samples else unit_samples(decoded, 255.0, dtype)
    pixels = contiguous_plane(orient(pixels, orientation))
    if alpha is not None:
        alpha = contiguous_plane(orient(alpha, orientation))
    return Picture(pixels, alpha, bit_depth, icc, mode, exif)


def _samples(image: Image.Image) -> NDArray[np.uint8]:
    """The 8-bit samples of a decoded L or RGB image, (H, W) or (H, W, 3), in a `new_plane`.

    Copied a band of rows at a time: `np.asarray(image)` would first join a bytes copy of the
    whole image, beside Pillow's own (4 bytes per RGB pixel), and leave both freed in the heap.
    """
    width, height = image.size
    bands = len(image.getbands())
    out = new_plane((height, width) if bands == 1 else (height, width, bands), np.uint8)
    for top, bottom in band_rows(height, width, BAND_PIXELS):
        out[top:bottom] = np.asarray(image.crop((0, top, width, bottom)))
    return out


def _cmyk_to_rgb(image: Image.Image, icc: bytes | None) -> tuple[Image.Image, bytes | None]:
    """CMYK → sRGB through the embedded profile when there is one (a CMYK profile cannot be kept)."""
    if icc:
        with contextlib.suppress(Exception):
            from PIL import ImageCms

            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            target = ImageCms.createProfile("sRGB")
            converted = ImageCms.profileToProfile(image, source, target, outputMode="RGB")
            if converted is not None:
                return converted, None
    return image.convert("RGB"), None


def read_image(
    path: str | os.PathLike[str],
    dtype: type[np.floating] = PIXEL_DTYPE,
    *,
    samples: bool = False,
) -> Picture:
    """Decode an image file into a `Picture` (pixels of `dtype`) with EXIF orientation applied.

    `samples=True`: 8-bit pixels stay the decoded uint8 samples (alpha and deeper files are
    `dtype` floats all the same), for a restore that rounds its result to integers itself.
    """
    # A damaged file makes Pillow warn (truncated reads, odd tags) before it fails or recovers;
    # either way memnet reports the file itself, in one line.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _read_image(Path(path), dtype, samples)


def _read_image(path: Path, dtype: type[np.floating], samples: bool) -> Picture:
    if path.is_file() and path.stat().st_size > 0 and _is_tiff(path):
        wide_tiff = _read_wide_tiff(path, dtype)
        if wide_tiff is not None:
            return wide_tiff
    image = _open_lazy(path)
    if image.format == "PNG":
        header = _png_header(path)
        if header is not None and header[0] == 16 and header[1] in (2, 4, 6):
            pixels, alpha = split_channels(
                np.ascontiguousarray(orient(_read_png16(path, dtype), _orientation(image)))
            )
            icc = image.info.get("icc_profile")
            return Picture(
                pixels=np.ascontiguousarray(pixels),
                alpha=None if alpha is None else np.ascontiguousarray(alpha),
                bit_depth=16,
                icc_profile=icc if isinstance(icc, bytes) and icc else None,
                source_mode=f"{image.mode};16",
                exif=_upright_exif(image),
            )
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, struct.error, zlib.error) as error:
        raise MemNetError(f"{path}: cannot decode image ({error})") from None
    return _picture_from_pil(
        image, _orientation(image), _upright_exif(image), str(path), dtype, samples
    )


def read_luminance(
    path: str | os.PathLike[str],
    *,
    from_rgb: Callable[[NDArray[np.uint8]], NDArray[np.uint8]] | None = None,
) -> NDArray[np.uint8]:
    """The 8-bit image a test protocol scores: the gray image, or `from_rgb` of an RGB file.

    `from_rgb` is the task's rule (`Task.one_channel`); by default MATLAB's Y of YCbCr.
    """
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
    if from_rgb is not None:
        return np.ascontiguousarray(from_rgb(rgb))
    return np.ascontiguousarray(rgb2ycbcr(rgb)[..., 0])
