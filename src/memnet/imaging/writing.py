"""Writing `Picture`s to image files, atomically: a failure never leaves a partial file behind.

The format comes from the suffix. PNGs are encoded on all the cores by memnet.imaging.png;
the other formats by Pillow, but 16-bit TIFFs by `tifffile` (Pillow encodes 16-bit colour as 8
bits). 16-bit pictures stay 16-bit in PNG and TIFF; alpha is kept where the format has it.
Samples are rounded to integers a band of rows at a time (picture.to_integer); a picture that already holds them at the depth written (`sample_depth`) is written as it is.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from memnet.errors import MemNetError
from memnet.fsutil import atomic_path
from memnet.imaging.formats import ALPHA_FORMATS, FORMAT_BY_SUFFIX, WIDE_FORMATS
from memnet.imaging.picture import Picture, picture_to_array, to_integer
from memnet.imaging.png import write_png

__all__ = [
    "PNG_COMPRESS_LEVEL",
    "alpha_dropped",
    "keeps_alpha",
    "picture_to_pil",
    "sample_depth",
    "write_image",
]

# zlib level of every PNG written. Measured with Pillow's encoder, before memnet.imaging.png,
# on 30 photos of BSD100 and LIVE1 upscaled x3 (Pillow 12, 1 core): level 1 encodes 5x faster than Pillow's default 6 (3.3 s against 16.2 s)
# for files 13 % larger (68.5 against 60.4 MB) - a 12-Mpx restore spent 5 s of its 44 s in the
# encoder at level 6. PNG is lossless at every level: only the file size differs.
PNG_COMPRESS_LEVEL = 1


def sample_depth(picture: Picture, path: str | os.PathLike[str]) -> int:
    """Bits per sample `write_image` rounds `picture` to for `path`: 16 for a 16-bit picture
    in a format that holds them (PNG, TIFF), else 8 (unknown suffixes too: write_image refuses
    them)."""
    fmt = FORMAT_BY_SUFFIX.get(Path(path).suffix.lower())
    return 16 if picture.bit_depth == 16 and fmt in WIDE_FORMATS else 8


def picture_to_pil(picture: Picture) -> Image.Image:
    """A Pillow image of the picture (16-bit only for gray without alpha: Pillow's limit)."""
    if picture.bit_depth == 16 and picture.is_gray and picture.alpha is None:
        image = Image.fromarray(to_integer(picture.pixels, 16))
    else:
        image = Image.fromarray(picture_to_array(picture, np.uint8))
    if picture.icc_profile:
        image.info["icc_profile"] = picture.icc_profile
    return image


def _write_tiff16(picture: Picture, tmp: Path) -> None:
    import tifffile

    extra = ("unassalpha",) if picture.alpha is not None else ()
    tifffile.imwrite(
        tmp,
        picture_to_array(picture, np.uint16),
        photometric="minisblack" if picture.is_gray else "rgb",
        extrasamples=extra or None,
        iccprofile=picture.icc_profile,
        compression="zlib",
        metadata=None,
    )


def _pil_for(picture: Picture, fmt: str) -> Image.Image:
    """An 8-bit Pillow image of `picture` (PNG and 16-bit TIFF are written without Pillow),
    with its alpha where `fmt` keeps it."""
    kept = picture if fmt in ALPHA_FORMATS else replace(picture, alpha=None)
    return Image.fromarray(picture_to_array(kept, np.uint8))


def keeps_alpha(path: str | os.PathLike[str]) -> bool:
    """Whether `write_image` keeps an alpha channel in a file of this name (PNG, WebP, TIFF)."""
    return FORMAT_BY_SUFFIX.get(Path(path).suffix.lower()) in ALPHA_FORMATS


def alpha_dropped(
    source: str | os.PathLike[str], picture: Picture, target: str | os.PathLike[str]
) -> str | None:
    """The warning for a transparent `picture` (read from `source`) written to a `target` whose
    format has no alpha channel; None where nothing is lost."""
    if picture.alpha is None or keeps_alpha(target):
        return None
    return (
        f"warning: {source}: its alpha channel is dropped ({Path(target).suffix} has none); "
        "--ext png, webp or tiff keeps it"
    )


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
    try:
        if fmt == "PNG":
            with atomic_path(path) as tmp, open(tmp, "wb") as out:
                write_png(
                    out,
                    picture_to_array(picture, np.uint16 if picture.bit_depth == 16 else np.uint8),
                    level=PNG_COMPRESS_LEVEL,
                    icc_profile=picture.icc_profile,
                    exif=picture.exif,
                )
            return
        if picture.bit_depth == 16 and fmt == "TIFF":
            with atomic_path(path) as tmp:
                _write_tiff16(picture, tmp)
            return
        image = _pil_for(picture, fmt)
        options: dict[str, object] = {}
        if picture.icc_profile and fmt in ("JPEG", "WEBP", "TIFF"):
            options["icc_profile"] = picture.icc_profile
        if picture.exif and fmt in ("JPEG", "WEBP", "TIFF"):
            options["exif"] = picture.exif
        if fmt in ("JPEG", "WEBP"):
            options["quality"] = int(quality)
        with atomic_path(path) as tmp:
            image.save(tmp, format=fmt, **options)
    except OSError as error:
        raise MemNetError(f"{path}: cannot write image ({error.strerror or error})") from None
