"""Small test images in every format and mode memnet reads, made in code, with what they hold.

Each `Source` writes one file (Pillow for 8-bit and Pillow's own wide modes, pypng and tifffile
for 16-bit colour) and knows, independently of memnet's reader, the upright pixels it holds
(float in [0, 1]), its alpha, its bit depth and whether it carries an ICC profile.
`decode_output` reads a written file back with pypng/tifffile/Pillow, again not through memnet.
Shared by the format matrix, the API property tests, the fuzz targets and the reliability report.
"""

from __future__ import annotations

import functools
import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import png
import tifffile
from numpy.typing import NDArray
from PIL import Image, ImageCms

HEIGHT, WIDTH = 12, 16  # not square, so that a wrongly applied EXIF rotation shows in the size
ORIENTATION = 6  # EXIF "rotate 90° clockwise to display": the upright picture is WIDTH tall
SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
SUFFIX = {
    "PNG": ".png",
    "JPEG": ".jpg",
    "WEBP": ".webp",
    "TIFF": ".tif",
    "BMP": ".bmp",
    "GIF": ".gif",
}
# Formats that keep an ICC profile and an EXIF orientation (BMP and GIF keep neither).
META_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF")
LOSSY_FORMATS = ("JPEG",)  # sources whose decoded pixels differ from what was encoded

# (format, mode) pairs a file of that format stores natively (Pillow decodes the same mode);
# ";16" marks 16-bit colour or gray+alpha, which Pillow cannot hold and memnet reads itself.
NATIVE: dict[str, tuple[str, ...]] = {
    "PNG": ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "I;16", "LA;16", "RGB;16", "RGBA;16"),
    "JPEG": ("L", "RGB", "CMYK"),
    "WEBP": ("RGB", "RGBA"),
    "TIFF": ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "I;16", "I", "F", "RGB;16"),
    "BMP": ("1", "L", "P", "RGB"),
    "GIF": ("P", "PA"),
}
MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "I;16", "I", "F")
WIDE_MODES = ("I;16", "I", "F", "LA;16", "RGB;16", "RGBA;16")


@dataclass(frozen=True)
class Source:
    """One image file to make: format, mode, and whether it carries an ICC profile and EXIF."""

    fmt: str
    mode: str
    meta: bool = False
    seed: int = 0

    @property
    def name(self) -> str:
        mode = self.mode.replace(";", "_")
        return f"{self.fmt.lower()}-{mode}{'-meta' if self.meta else ''}{SUFFIX[self.fmt]}"

    @property
    def gray(self) -> bool:
        return self.mode in ("1", "L", "LA", "I;16", "I", "F", "LA;16")

    @property
    def has_alpha(self) -> bool:
        return self.mode in ("LA", "PA", "RGBA", "LA;16", "RGBA;16")

    @property
    def bit_depth(self) -> int:
        return 16 if self.mode in WIDE_MODES else 8

    @property
    def lossless(self) -> bool:
        return self.fmt not in LOSSY_FORMATS

    def write(self, folder: Path) -> Path:
        """Write the file into `folder`; returns its path."""
        path = folder / self.name
        path.write_bytes(self.encode())
        return path

    def encode(self) -> bytes:
        """The file's bytes."""
        rng = self._rng()
        if self.mode.endswith(";16") and self.mode != "I;16":
            return self._encode_wide_colour(rng)
        image = _pil_image(self.mode, rng, self.fmt)
        options: dict[str, object] = {}
        if self.meta:
            options["icc_profile"] = SRGB_ICC
            if self.fmt == "TIFF":
                options["tiffinfo"] = {0x0112: ORIENTATION}
            else:
                exif = Image.Exif()
                exif[0x0112] = ORIENTATION
                options["exif"] = exif.tobytes()
        if self.fmt == "WEBP":
            options.update(lossless=True, exact=True)
        if self.fmt == "JPEG":
            options["quality"] = 90
        if self.mode == "PA" and self.fmt in ("PNG", "GIF"):
            options["transparency"] = 0  # palette entry 0 is transparent: P + tRNS
        buffer = io.BytesIO()
        image.save(buffer, self.fmt, **options)
        return buffer.getvalue()

    def _encode_wide_colour(self, rng: np.random.Generator) -> bytes:
        planes = {"LA;16": 2, "RGB;16": 3, "RGBA;16": 4}[self.mode]
        samples = rng.integers(0, 65536, (HEIGHT, WIDTH, planes), dtype=np.uint16)
        buffer = io.BytesIO()
        if self.fmt == "TIFF":
            extra = {"extrasamples": ("unassalpha",)} if planes in (2, 4) else {}
            tifffile.imwrite(
                buffer,
                samples,
                photometric="minisblack" if planes == 2 else "rgb",
                iccprofile=SRGB_ICC if self.meta else None,
                extratags=[(0x0112, "H", 1, ORIENTATION, True)] if self.meta else [],
                metadata=None,
                **extra,  # type: ignore[arg-type]
            )
            return buffer.getvalue()
        writer = png.Writer(
            WIDTH, HEIGHT, greyscale=planes == 2, alpha=planes in (2, 4), bitdepth=16
        )
        writer.write_array(buffer, samples.reshape(-1))
        data = buffer.getvalue()
        if not self.meta:
            return data
        exif = Image.Exif()
        exif[0x0112] = ORIENTATION
        chunks = _chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(SRGB_ICC))
        chunks += _chunk(
            b"eXIf", exif.tobytes()[6:] if exif.tobytes().startswith(b"Exif") else exif.tobytes()
        )
        ihdr_end = 8 + 8 + 13 + 4
        return data[:ihdr_end] + chunks + data[ihdr_end:]

    def expected(self, folder: Path) -> Expected:
        """What memnet must read from the file: upright pixels, alpha, bit depth, profile."""
        return _expected(self, folder)

    def _expected(self, folder: Path) -> Expected:
        path = folder / self.name
        if self.mode.endswith(";16") and self.mode != "I;16":
            values = _decode_wide(path)
        elif self.lossless:
            values = _values_of(_pil_image(self.mode, self._rng(), self.fmt), self.mode)
        else:
            with Image.open(path) as image:
                image.load()
                values = _values_of(image, self.mode)
        if values.ndim == 3 and values.shape[2] in (2, 4):
            pixels, alpha = values[..., :-1], values[..., -1]
            pixels = pixels[..., 0] if pixels.shape[2] == 1 else pixels
        else:
            pixels, alpha = values, None
        if self.meta:  # orientation 6: the stored picture is turned 90° clockwise for display
            pixels = np.rot90(pixels, -1)
            alpha = None if alpha is None else np.rot90(alpha, -1)
        icc = SRGB_ICC if self.meta and self.mode != "CMYK" else None
        return Expected(np.ascontiguousarray(pixels), alpha, self.bit_depth, icc)

    def _rng(self) -> np.random.Generator:
        # crc32, not hash(): the same file in every process (str hashes are salted)
        return np.random.default_rng([zlib.crc32(self.name.encode()), self.seed])


@dataclass(frozen=True)
class Expected:
    pixels: NDArray[np.float64]  # (H, W) gray or (H, W, 3) colour, upright, in [0, 1]
    alpha: NDArray[np.float64] | None
    bit_depth: int
    icc_profile: bytes | None

    @property
    def gray(self) -> bool:
        return self.pixels.ndim == 2


@functools.cache
def _expected(source: Source, folder: Path) -> Expected:
    return source._expected(folder)


def sources() -> list[Source]:
    """Every native (format, mode) pair, without and (where the format keeps them) with ICC+EXIF."""
    found = []
    for fmt, modes in NATIVE.items():
        for mode in modes:
            found.append(Source(fmt, mode))
            if fmt in META_FORMATS:
                found.append(Source(fmt, mode, meta=True))
    return found


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _pil_image(mode: str, rng: np.random.Generator, fmt: str) -> Image.Image:
    """A random HEIGHT × WIDTH Pillow image of `mode` (a fresh rng gives the same image again).

    PNG and GIF have no palette+alpha mode: their "PA" is a palette whose entry 0 is transparent.
    """
    rgb = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (HEIGHT, WIDTH), dtype=np.uint8)
    if mode == "1":
        return Image.fromarray(rgb[..., 0] >= 128)
    if mode == "L":
        return Image.fromarray(rgb[..., 0])
    if mode == "LA":
        return Image.fromarray(np.dstack([rgb[..., 0], alpha]), "LA")
    if mode in ("P", "PA"):
        palette = rng.integers(0, 256, (16, 3), dtype=np.uint8)
        image = Image.fromarray((rgb[..., 0] % 16).astype(np.uint8), "P")
        image.putpalette(palette.reshape(-1).tolist())
        if mode == "PA" and fmt in ("PNG", "GIF"):
            image.info["transparency"] = 0
        elif mode == "PA":
            image = image.convert("PA")
            image.putalpha(Image.fromarray(alpha))
        return image
    if mode == "RGB":
        return Image.fromarray(rgb)
    if mode == "RGBA":
        return Image.fromarray(np.dstack([rgb, alpha]))
    if mode == "CMYK":
        return Image.fromarray(np.dstack([rgb, alpha]), "CMYK")
    wide = rng.integers(0, 65536, (HEIGHT, WIDTH))
    if mode == "I;16":
        return Image.fromarray(wide.astype(np.uint16))
    if mode == "I":
        return Image.fromarray(wide.astype(np.int32))
    if mode == "F":
        return Image.fromarray((wide / 65535.0).astype(np.float32))
    raise ValueError(f"no test image for mode {mode}")


def _values_of(image: Image.Image, mode: str) -> NDArray[np.float64]:
    """Pixel values in [0, 1] (H, W[, C]) with alpha last, decoded by Pillow from `image`."""
    if mode in ("I;16", "I"):
        return np.asarray(image, dtype=np.float64) / 65535.0
    if mode == "F":
        return np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0)
    target = {"1": "L", "L": "L", "LA": "LA", "PA": "RGBA", "RGBA": "RGBA"}.get(mode, "RGB")
    return np.asarray(image.convert(target), dtype=np.float64) / 255.0


def _decode_wide(path: Path) -> NDArray[np.float64]:
    if path.suffix == ".png":
        width, height, rows, info = png.Reader(filename=str(path)).asDirect()
        data = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows])
        return data.reshape(height, width, int(info["planes"])).astype(np.float64) / 65535.0
    return tifffile.imread(path).astype(np.float64) / 65535.0


@dataclass(frozen=True)
class Decoded:
    """A written file as read back without memnet: values with alpha last, layout, bit depth."""

    values: NDArray[np.float64]  # (H, W, C) in [0, 1]
    mode: str  # L, LA, RGB or RGBA
    bit_depth: int
    icc_profile: bytes | None


def decode_output(path: Path) -> Decoded:
    """Read an output file with pypng (PNG), tifffile (TIFF) or Pillow (JPEG, WebP, BMP)."""
    suffix = path.suffix.lower()
    icc: bytes | None
    if suffix == ".png" and path.read_bytes()[24] == 16:  # IHDR bit depth; pypng keeps 16 bits
        width, height, rows, info = png.Reader(filename=str(path)).asDirect()
        planes, depth = int(info["planes"]), int(info["bitdepth"])
        data = np.vstack([np.asarray(row, dtype=np.float64) for row in rows])
        values = data.reshape(height, width, planes) / float(2**depth - 1)
        with Image.open(path) as image:
            icc = image.info.get("icc_profile")
    elif suffix in (".tif", ".tiff"):
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            data = page.asarray()
            depth = int(page.bitspersample)
            tags = page.tags
            icc = bytes(tags["InterColorProfile"].value) if "InterColorProfile" in tags else None
        data = data[..., None] if data.ndim == 2 else data
        values = data.astype(np.float64) / float(2**depth - 1)
    else:
        with Image.open(path) as image:
            image.load()
            icc = image.info.get("icc_profile")
            depth = 8
            array = np.asarray(image, dtype=np.float64)
        values = (array[..., None] if array.ndim == 2 else array) / 255.0
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[values.shape[2]]
    return Decoded(values, mode, depth, icc or None)
