"""Reading and writing images as people have them, with one error type for bad files.

Pixels travel as floats in [0, 1]: (H, W) for gray, (H, W, 3) for colour; alpha is kept
separately. Decoded files are float32 (`PIXEL_DTYPE`): exact for 8- and 16-bit samples and
half the memory of float64; pictures made from float64 arrays stay float64. The bit depth of the source (8 or 16) is remembered so the output can match it.
EXIF orientation is applied to the pixels on reading; the ICC profile is carried to the output.
Pillow decodes 16-bit colour to 8 bits, so 16-bit colour PNGs are read and written with `pypng`
and 16-bit TIFFs with `tifffile`. Outputs are written atomically: a failure never leaves a
partial file behind.
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
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, UnidentifiedImageError

from memnet.errors import MemNetError
from memnet.fsutil import atomic_path, atomic_write_bytes

__all__ = [
    "FORMAT_BY_SUFFIX",
    "MAX_PIXELS",
    "PIXEL_DTYPE",
    "Picture",
    "picture_from_array",
    "picture_from_pil",
    "picture_to_array",
    "picture_to_pil",
    "read_image",
    "read_luminance",
    "write_image",
]

# Refuse absurd sizes (decompression bombs) before decoding: 16k × 16k is far beyond any photo
# MemNet can process in reasonable time on a CPU anyway.
MAX_PIXELS = 16384 * 16384
# Decoded samples: float32 holds every 8- and 16-bit level exactly enough to round back to it
# (its relative error, 6e-8, is far below half a 16-bit step, 7.6e-6) at half float64's memory.
PIXEL_DTYPE = np.float32
# Opening a file sets two process-wide things for a moment (see _open_with_limit).
_OPEN_LOCK = threading.Lock()
# Rows converted to integers at a time when writing: the float64 temporaries stay this small.
WRITE_BAND_PIXELS = 1 << 20

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
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_SILENT = logging.NullHandler()


@dataclass
class Picture:
    """An image in memory: pixels in [0, 1], optional alpha, and what is needed to save it alike."""

    pixels: NDArray[np.floating]
    alpha: NDArray[np.floating] | None = None
    bit_depth: int = 8
    icc_profile: bytes | None = None
    source_mode: str = ""
    exif: bytes | None = None  # the source's EXIF with the orientation reset (pixels are upright)
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

    def with_pixels(
        self, pixels: NDArray[np.floating], alpha: NDArray[np.floating] | None
    ) -> Picture:
        """A copy with new pixels and alpha but the same bit depth, profile and metadata."""
        return replace(self, pixels=pixels, alpha=alpha, info=dict(self.info))


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


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


def _split_channels(
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


def _unit(
    samples: NDArray[np.generic], peak: float, dtype: type[np.floating]
) -> NDArray[np.floating]:
    """Integer samples → floats of `dtype` in [0, 1], in one buffer (divided in place)."""
    values: NDArray[np.floating] = np.array(samples, dtype=dtype)
    values /= dtype(peak)
    return values


def _wide_samples(
    data: NDArray[np.generic], where: str, dtype: type[np.floating]
) -> NDArray[np.floating]:
    """Samples of more than 8 bits as [0, 1] values; refuses those without an agreed meaning."""
    if np.issubdtype(data.dtype, np.unsignedinteger):
        return _unit(data, float(np.iinfo(data.dtype.str).max), dtype)
    if np.issubdtype(data.dtype, np.signedinteger):
        # Pillow's mode "I" (int32) holds 16-bit values: 65535 is white, as for I;16. Negative or
        # wider values could mean anything; refused rather than clipped into a black image.
        peak = min(int(np.iinfo(data.dtype.str).max), 65535)
        if data.size and (int(data.min()) < 0 or int(data.max()) > peak):
            raise MemNetError(
                f"{where}: signed {data.dtype} samples outside 0..{peak} "
                f"({int(data.min())}..{int(data.max())}); save the image as 8- or 16-bit unsigned"
            )
        return _unit(data, float(peak), dtype)
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
    return _unit(data.reshape(height, width, planes), 2 ** int(info["bitdepth"]) - 1, dtype)


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
    pixels, alpha = _split_channels(np.ascontiguousarray(upright))
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
) -> Picture:
    icc = image.info.get("icc_profile")
    icc = icc if isinstance(icc, bytes) and icc else None
    mode = image.mode
    alpha: NDArray[np.floating] | None = None
    pixels: NDArray[np.floating]
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
            alpha = _unit(np.asarray(image.getchannel("A")), 255.0, dtype)
        if image.mode in ("1", "L", "LA"):
            pixels = _unit(np.asarray(image.convert("L")), 255.0, dtype)
        else:
            pixels = _unit(np.asarray(image.convert("RGB")), 255.0, dtype)
    pixels = np.ascontiguousarray(orient(pixels, orientation))
    if alpha is not None:
        alpha = np.ascontiguousarray(orient(alpha, orientation))
    return Picture(pixels, alpha, bit_depth, icc, mode, exif)


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


def read_image(path: str | os.PathLike[str], dtype: type[np.floating] = PIXEL_DTYPE) -> Picture:
    """Decode an image file into a `Picture` (pixels of `dtype`) with EXIF orientation applied."""
    # A damaged file makes Pillow warn (truncated reads, odd tags) before it fails or recovers;
    # either way memnet reports the file itself, in one line.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _read_image(Path(path), dtype)


def _read_image(path: Path, dtype: type[np.floating]) -> Picture:
    if path.is_file() and path.stat().st_size > 0 and _is_tiff(path):
        wide_tiff = _read_wide_tiff(path, dtype)
        if wide_tiff is not None:
            return wide_tiff
    image = _open_lazy(path)
    if image.format == "PNG":
        header = _png_header(path)
        if header is not None and header[0] == 16 and header[1] in (2, 4, 6):
            pixels, alpha = _split_channels(
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
    return _picture_from_pil(image, _orientation(image), _upright_exif(image), str(path), dtype)


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


# --------------------------------------------------------------------------------------------
# arrays and Pillow images (the Python API)
# --------------------------------------------------------------------------------------------


def picture_from_array(array: NDArray[np.generic]) -> Picture:
    """Wrap an (H, W), (H, W, 1|2|3|4) array: uint8, uint16, or float in [0, 1]."""
    data = np.asarray(array)
    if data.ndim not in (2, 3) or (data.ndim == 3 and not 1 <= data.shape[2] <= 4):
        raise MemNetError(
            f"expected an (H, W) or (H, W, C) image array with C in 1..4, got shape {data.shape}"
        )
    values: NDArray[np.floating]
    if data.dtype == np.uint8:
        values, bit_depth = _unit(data, 255.0, PIXEL_DTYPE), 8
    elif data.dtype == np.uint16:
        values, bit_depth = _unit(data, 65535.0, PIXEL_DTYPE), 16
    elif np.issubdtype(data.dtype, np.floating):
        # float32 stays float32 (and the pipeline with it); other floats become float64
        values, bit_depth = data.astype(np.float32 if data.dtype == np.float32 else np.float64), 8
        if not np.isfinite(values).all():
            raise MemNetError("image array contains NaN or infinite values")
    else:
        raise MemNetError(f"unsupported image array dtype {data.dtype}; use uint8, uint16 or float")
    pixels, alpha = _split_channels(values)
    return Picture(
        np.ascontiguousarray(pixels),
        None if alpha is None else np.ascontiguousarray(alpha),
        bit_depth,
        source_mode=f"array:{data.dtype}:{data.shape[2] if data.ndim == 3 else 0}",
    )


def picture_to_array(picture: Picture, dtype: np.dtype[np.generic] | type) -> NDArray[np.generic]:
    """The picture as an array of `dtype` (uint8, uint16 or float), alpha as the last channel."""
    target = np.dtype(dtype)
    pixels = picture.pixels
    if picture.alpha is not None:
        pixels = np.dstack([pixels, picture.alpha])
    if target == np.uint8:
        return _to_integer(pixels, 8)
    if target == np.uint16:
        return _to_integer(pixels, 16)
    return np.clip(pixels, 0.0, 1.0).astype(target)


def picture_to_pil(picture: Picture) -> Image.Image:
    """A Pillow image of the picture (16-bit only for gray without alpha: Pillow's limit)."""
    if picture.bit_depth == 16 and picture.is_gray and picture.alpha is None:
        image = Image.fromarray(_to_integer(picture.pixels, 16))
    else:
        image = Image.fromarray(picture_to_array(picture, np.uint8))
    if picture.icc_profile:
        image.info["icc_profile"] = picture.icc_profile
    return image


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def _to_integer(values: NDArray[np.floating], bit_depth: int) -> NDArray[np.generic]:
    """Round [0, 1] floats to 8- or 16-bit samples, in float64, a band of rows at a time."""
    peak = 65535.0 if bit_depth == 16 else 255.0
    out = np.empty(values.shape, dtype=np.uint16 if bit_depth == 16 else np.uint8)
    row_pixels = max(1, values[:1].size)
    step = max(1, WRITE_BAND_PIXELS // row_pixels)
    for start in range(0, max(1, values.shape[0]), step):
        band = np.asarray(values[start : start + step], dtype=np.float64) * peak
        band += 0.5
        out[start : start + step] = np.clip(np.floor(band, out=band), 0, peak, out=band)
    return out


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _encode_png16(picture: Picture) -> bytes:
    import png

    samples = _to_integer(picture.pixels, 16)
    if picture.alpha is not None:
        samples = np.dstack([samples, _to_integer(picture.alpha, 16)])
    planes = 1 if samples.ndim == 2 else samples.shape[2]
    writer = png.Writer(
        picture.width,
        picture.height,
        greyscale=planes in (1, 2),
        alpha=planes in (2, 4),
        bitdepth=16,
        compression=6,
    )
    buffer = io.BytesIO()
    writer.write_array(buffer, samples.reshape(-1))
    encoded = buffer.getvalue()
    if not picture.icc_profile:
        return encoded
    # pypng has no ICC option: insert the iCCP chunk right after IHDR, where the spec wants it.
    ihdr_end = len(PNG_SIGNATURE) + 8 + 13 + 4
    iccp = _png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(picture.icc_profile))
    return encoded[:ihdr_end] + iccp + encoded[ihdr_end:]


def _write_tiff16(picture: Picture, tmp: Path) -> None:
    import tifffile

    samples = _to_integer(picture.pixels, 16)
    extra: tuple[str, ...] = ()
    if picture.alpha is not None:
        samples = np.dstack([samples, _to_integer(picture.alpha, 16)])
        extra = ("unassalpha",)
    tifffile.imwrite(
        tmp,
        samples,
        photometric="minisblack" if picture.is_gray else "rgb",
        extrasamples=extra or None,
        iccprofile=picture.icc_profile,
        compression="zlib",
        metadata=None,
    )


def _pil_for(picture: Picture, fmt: str) -> Image.Image:
    if (
        picture.bit_depth == 16
        and picture.is_gray
        and picture.alpha is None
        and fmt in WIDE_FORMATS
    ):
        return Image.fromarray(_to_integer(picture.pixels, 16))
    pixels = _to_integer(picture.pixels, 8)
    if picture.alpha is not None and fmt in ALPHA_FORMATS:
        return Image.fromarray(np.dstack([pixels, _to_integer(picture.alpha, 8)]))
    return Image.fromarray(pixels)


def write_image(picture: Picture, path: str | os.PathLike[str], *, quality: int = 95) -> None:
    """Encode `picture` to `path` (format from the suffix) atomically.

    16-bit pictures stay 16-bit in PNG and TIFF; JPEG, WebP and BMP are 8-bit. Alpha is kept
    where the format has it (PNG, WebP, TIFF) and dropped otherwise.
    """
    path = Path(path)
    fmt = FORMAT_BY_SUFFIX.get(path.suffix.lower())
    if fmt is None:
        raise MemNetError(
            f"{path}: unsupported output extension {path.suffix!r}; use one of {', '.join(FORMAT_BY_SUFFIX)}"
        )
    if not path.parent.exists():
        raise MemNetError(f"{path}: output folder {path.parent} does not exist")
    if path.is_dir():
        raise MemNetError(f"{path}: is a folder; give a file name for the output")
    wide_colour = picture.bit_depth == 16 and (not picture.is_gray or picture.alpha is not None)
    try:
        if wide_colour and fmt == "PNG":
            atomic_write_bytes(path, _encode_png16(picture))
            return
        if picture.bit_depth == 16 and fmt == "TIFF":
            with atomic_path(path) as tmp:
                _write_tiff16(picture, tmp)
            return
        image = _pil_for(picture, fmt)
        options: dict[str, object] = {}
        if picture.icc_profile and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
            options["icc_profile"] = picture.icc_profile
        if picture.exif and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
            options["exif"] = picture.exif
        if fmt in ("JPEG", "WEBP"):
            options["quality"] = int(quality)
        with atomic_path(path) as tmp:
            image.save(tmp, format=fmt, **options)
    except OSError as error:
        raise MemNetError(f"{path}: cannot write image ({error.strerror or error})") from None
