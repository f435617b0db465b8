"""Images as people have them: modes, bit depths, alpha, EXIF orientation, ICC, bad files."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path
from typing import IO

import numpy as np
import pytest
from PIL import Image, ImageOps

from memnet.errors import MemNetError
from memnet.imaging.picture import Picture, picture_from_array, picture_to_array
from memnet.imaging.reading import picture_from_pil, read_image
from memnet.imaging.writing import picture_to_pil, write_image

RNG = np.random.default_rng(7)
FAKE_ICC = b"memnet-test-profile" * 8  # any bytes: the profile travels unparsed


def rgb8(h: int = 12, w: int = 17) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_gray_and_rgb_8bit_round_trip(tmp_path: Path) -> None:
    gray = RNG.integers(0, 256, (9, 11), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "g.png")
    picture = read_image(tmp_path / "g.png")
    assert picture.is_gray
    assert picture.bit_depth == 8
    assert picture.alpha is None
    write_image(picture, tmp_path / "g2.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "g2.png")), gray)

    colour = rgb8()
    Image.fromarray(colour).save(tmp_path / "c.png")
    picture = read_image(tmp_path / "c.png")
    assert picture.pixels.shape == (12, 17, 3)
    write_image(picture, tmp_path / "c2.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "c2.png")), colour)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_read_and_written(tmp_path: Path, mode: str) -> None:
    image = Image.fromarray(rgb8()).convert(mode)
    alpha = RNG.integers(0, 256, (12, 17), dtype=np.uint8)
    image.putalpha(Image.fromarray(alpha))
    image.save(tmp_path / "a.png")
    picture = read_image(tmp_path / "a.png")
    assert picture.alpha is not None
    assert np.array_equal(np.round(picture.alpha * 255).astype(np.uint8), alpha)
    assert picture.is_gray == (mode == "LA")
    write_image(picture, tmp_path / "b.png")
    assert Image.open(tmp_path / "b.png").mode == mode


def test_palette_with_and_without_transparency(tmp_path: Path) -> None:
    palette = Image.fromarray(rgb8()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.save(tmp_path / "p.png")
    picture = read_image(tmp_path / "p.png")
    assert picture.pixels.shape == (12, 17, 3)
    assert picture.alpha is None
    expected = np.asarray(palette.convert("RGB"))
    assert np.array_equal(picture_to_array(picture, np.uint8), expected)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "pt.png", transparency=0)
    assert read_image(tmp_path / "pt.png").alpha is not None


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    Image.fromarray(rgb8(32, 32)).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    picture = read_image(tmp_path / "cmyk.jpg")
    assert picture.pixels.shape == (32, 32, 3)
    assert picture.source_mode == "CMYK"
    assert picture.icc_profile is None  # a CMYK profile would be wrong on RGB pixels
    write_image(picture, tmp_path / "out.jpg")
    assert Image.open(tmp_path / "out.jpg").mode == "RGB"


def test_16bit_gray_png_stays_16bit(tmp_path: Path) -> None:
    gray = RNG.integers(0, 65536, (10, 13), dtype=np.uint16)
    Image.fromarray(gray).save(tmp_path / "g16.png")
    picture = read_image(tmp_path / "g16.png")
    assert picture.bit_depth == 16
    write_image(picture, tmp_path / "out.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), gray)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("channels", [2, 3, 4])
def test_16bit_colour_and_alpha_round_trip(tmp_path: Path, suffix: str, channels: int) -> None:
    data = RNG.integers(0, 65536, (9, 14, channels), dtype=np.uint16)
    picture = picture_from_array(data)
    picture.icc_profile = FAKE_ICC
    write_image(picture, tmp_path / f"x{suffix}")
    back = read_image(tmp_path / f"x{suffix}")
    assert back.bit_depth == 16
    assert back.icc_profile == FAKE_ICC
    assert np.array_equal(picture_to_array(back, np.uint16), data)


def test_pillow_alone_would_lose_16bit_colour(tmp_path: Path) -> None:
    # Why pypng is a dependency: the same file through Pillow comes back with 8 bits.
    data = RNG.integers(0, 65536, (6, 7, 3), dtype=np.uint16)
    write_image(picture_from_array(data), tmp_path / "x.png")
    assert np.asarray(Image.open(tmp_path / "x.png")).dtype == np.uint8
    assert read_image(tmp_path / "x.png").bit_depth == 16


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pillow(tmp_path: Path, orientation: int) -> None:
    image = Image.fromarray(rgb8(5, 8))
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(tmp_path / "o.jpg", exif=exif.tobytes(), quality=100)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.jpg")).convert("RGB"))
    picture = read_image(tmp_path / "o.jpg")
    assert np.array_equal(picture_to_array(picture, np.uint8), expected)
    # The written file is upright: its EXIF no longer asks for a rotation.
    write_image(picture, tmp_path / "out.jpg")
    assert Image.open(tmp_path / "out.jpg").getexif().get(0x0112, 1) == 1


def test_icc_profile_is_kept_for_8bit_formats(tmp_path: Path) -> None:
    Image.fromarray(rgb8()).save(tmp_path / "i.png", icc_profile=FAKE_ICC)
    picture = read_image(tmp_path / "i.png")
    assert picture.icc_profile == FAKE_ICC
    for suffix in (".png", ".jpg", ".webp", ".tiff"):
        write_image(picture, tmp_path / f"out{suffix}")
        assert Image.open(tmp_path / f"out{suffix}").info.get("icc_profile") == FAKE_ICC


def _png_with_size(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def test_bad_files_get_one_line_errors(tmp_path: Path) -> None:
    good = io.BytesIO()
    Image.fromarray(rgb8(64, 64)).save(good, format="PNG")
    files = {
        "empty.png": b"",
        "text.png": b"this is not an image\n",
        "truncated.png": good.getvalue()[: len(good.getvalue()) // 2],
        "bomb.png": _png_with_size(100_000, 100_000),
    }
    expected = {
        "empty.png": "empty file",
        "text.png": "not an image",
        "truncated.png": "cannot decode",
        "bomb.png": "pixel limit",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(MemNetError) as error:
            read_image(tmp_path / name)
        message = str(error.value)
        assert "\n" not in message
        assert expected[name] in message, message
    with pytest.raises(MemNetError, match="no such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(MemNetError, match="folder"):
        read_image(tmp_path)


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    picture = picture_from_array(rgb8())
    with pytest.raises(MemNetError, match="unsupported output extension"):
        write_image(picture, tmp_path / "x.gif")
    with pytest.raises(MemNetError, match="does not exist"):
        write_image(picture, tmp_path / "nope" / "x.png")
    locked = tmp_path / "locked"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        with pytest.raises(MemNetError, match="cannot write"):
            write_image(picture, locked / "x.png")
        assert list(locked.iterdir()) == []
    finally:
        os.chmod(locked, 0o700)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_disk_full_during_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    from memnet.imaging import writing

    picture = picture_from_array(rgb8())
    real_save, real_png = Image.Image.save, writing.write_png

    def save_then_fail(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        real_save(self, fp, *args, **kwargs)  # type: ignore[arg-type]
        raise OSError(28, "No space left on device")

    def png_then_fail(out: IO[bytes], *args: object, **kwargs: object) -> None:
        real_png(out, *args, **kwargs)  # type: ignore[arg-type]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", save_then_fail)  # JPEG, WebP, TIFF: Pillow
    monkeypatch.setattr(writing, "write_png", png_then_fail)  # PNG: memnet.imaging.png
    target = tmp_path / f"x{suffix}"
    target.write_bytes(b"previous")
    with pytest.raises(MemNetError, match="No space left"):
        write_image(picture, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]
    assert target.read_bytes() == b"previous"


def test_arrays_and_pil_images_convert_both_ways() -> None:
    for data in (rgb8(), rgb8()[..., 0], RNG.integers(0, 65536, (4, 5), dtype=np.uint16)):
        picture = picture_from_array(data)
        assert np.array_equal(picture_to_array(picture, data.dtype), data)
    floats = RNG.random((4, 6, 3))
    assert np.allclose(picture_to_array(picture_from_array(floats), np.float64), floats)
    rgba = Image.fromarray(np.dstack([rgb8(), rgb8()[..., 0]]))
    assert picture_to_pil(picture_from_pil(rgba)).mode == "RGBA"
    wide = Image.fromarray(RNG.integers(0, 65536, (4, 5), dtype=np.uint16))
    assert picture_to_pil(picture_from_pil(wide)).mode == "I;16"
    with pytest.raises(MemNetError, match="dtype"):
        picture_from_array(np.zeros((4, 4), dtype=np.int64))
    with pytest.raises(MemNetError, match="shape"):
        picture_from_array(np.zeros((4, 4, 5), dtype=np.uint8))
    assert isinstance(picture, Picture)


@pytest.mark.parametrize("shape", [(20, 26, 3), (20, 26)], ids=["rgb", "gray"])
@pytest.mark.parametrize("compression", [None, "tiff_lzw"])
def test_an_8bit_tiff_resized_is_written_with_its_new_size(
    tmp_path: Path, shape: tuple[int, ...], compression: str | None
) -> None:
    # A TIFF's IFD, which Pillow reads as its EXIF, holds the source's width, height and strip
    # layout; carried into a ×2 output they contradicted it and the TIFF encoder refused the file.
    import memnet

    image = Image.fromarray(RNG.integers(0, 256, shape, dtype=np.uint8))
    exif = image.getexif()
    exif[0x013B] = "memnet test"  # Artist: real metadata, which must survive
    options = {"compression": compression} if compression else {}
    image.save(tmp_path / "in.tif", exif=exif, **options)
    restorer = memnet.load("bicubic", task="sr", scale=2)
    for suffix in (".tif", ".png", ".jpg"):
        restorer.restore_file(tmp_path / "in.tif", tmp_path / f"out{suffix}")
        with Image.open(tmp_path / f"out{suffix}") as out:
            assert out.size == (2 * shape[1], 2 * shape[0])
            assert out.mode == image.mode
            assert out.getexif().get(0x013B) == "memnet test"
            out.load()
