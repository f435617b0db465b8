"""memnet's PNG encoder: valid files that decode to the samples written, on any number of threads."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from memnet.imaging import bands
from memnet.imaging.picture import Picture
from memnet.imaging.png import adler32_combine, write_png
from memnet.imaging.reading import read_image
from memnet.imaging.writing import write_image

RNG = np.random.default_rng(7)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=70000), st.binary(max_size=70000))
def test_combined_adler32_is_that_of_the_joined_bytes(first: bytes, second: bytes) -> None:
    combined = adler32_combine(zlib.adler32(first), zlib.adler32(second), len(second))
    assert combined == zlib.adler32(first + second)


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(kind, data) of every chunk, each CRC checked."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    found, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + body)
        found.append((kind, body))
        at += 12 + length
    return found


def unfiltered(stream: bytes, height: int, row_bytes: int) -> np.ndarray:
    """The rows a zlib stream of Up-filtered rows holds (zlib checks its Adler-32)."""
    rows = np.frombuffer(zlib.decompress(stream), dtype=np.uint8).reshape(height, row_bytes + 1)
    assert np.all(rows[:, 0] == 2)
    return np.cumsum(rows[:, 1:], axis=0, dtype=np.uint8)  # Up undone: sums wrap at 256


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (37, 11, 2), (23, 19, 3), (40, 9, 4), (3, 2, 1)])
@pytest.mark.parametrize("threads", [1, 3])
def test_a_written_png_holds_the_samples(
    monkeypatch: pytest.MonkeyPatch, dtype: type, shape: tuple[int, ...], threads: int
) -> None:
    monkeypatch.setattr(bands, "available_cores", lambda: threads)
    monkeypatch.setattr(bands, "BAND_PIXELS", 160)  # pieces of a few rows each
    samples = RNG.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    buffer = io.BytesIO()
    write_png(buffer, samples, level=6)
    found = chunks(buffer.getvalue())
    kinds = [kind for kind, _ in found]
    assert kinds[0] == b"IHDR"
    assert kinds[-1] == b"IEND"
    assert set(kinds[1:-1]) == {b"IDAT"}
    # one IDAT per piece of at most 40 samples (whole rows), and the stream's end
    row_samples = int(np.prod(shape[1:]))
    assert len(kinds) - 3 == -(-shape[0] // max(1, 40 // row_samples))
    width, height, depth, colour, *_ = struct.unpack(">IIBBBBB", found[0][1])
    channels = 1 if len(shape) == 2 else shape[2]
    assert (width, height, depth) == (shape[1], shape[0], 8 * np.dtype(dtype).itemsize)
    assert colour == {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    stream = b"".join(body for kind, body in found if kind == b"IDAT")
    row_bytes = shape[1] * channels * np.dtype(dtype).itemsize
    expected = samples.astype(np.dtype(dtype).newbyteorder(">")).view(np.uint8)
    assert np.array_equal(unfiltered(stream, shape[0], row_bytes), expected.reshape(shape[0], -1))


def test_the_bytes_do_not_depend_on_the_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bands, "BAND_PIXELS", 400)
    samples = RNG.integers(0, 256, (90, 31, 3), dtype=np.uint8)
    written = []
    for threads in (1, 2, 5):
        monkeypatch.setattr(bands, "available_cores", lambda threads=threads: threads)
        buffer = io.BytesIO()
        write_png(buffer, samples, level=1)
        written.append(buffer.getvalue())
    assert written[0] == written[1] == written[2]


@pytest.mark.parametrize("layout", ["gray", "gray+alpha", "rgb", "rgba"])
@pytest.mark.parametrize("bits", [8, 16])
def test_write_image_png_reads_back_with_its_metadata(
    tmp_path: Path, layout: str, bits: int
) -> None:
    top = 2**bits - 1
    shape = (21, 17) if layout.startswith("gray") else (21, 17, 3)
    pixels = RNG.integers(0, top + 1, shape) / top
    alpha = RNG.integers(0, top + 1, (21, 17)) / top if "alpha" in layout else None
    icc = bytes(RNG.integers(0, 256, 300, dtype=np.uint8))
    exif = Image.Exif()
    exif[0x010F] = "memnet test camera"  # Make
    picture = Picture(pixels, alpha, bit_depth=bits, icc_profile=icc, exif=exif.tobytes())
    write_image(picture, tmp_path / "out.png")
    back = read_image(tmp_path / "out.png", dtype=np.float64)
    assert back.bit_depth == bits
    assert np.array_equal(np.round(back.pixels * top), np.round(pixels * top))
    if alpha is not None:
        assert back.alpha is not None
        assert np.array_equal(np.round(back.alpha * top), np.round(alpha * top))
    with Image.open(tmp_path / "out.png") as image:
        image.verify()
    with Image.open(tmp_path / "out.png") as image:
        assert image.info["icc_profile"] == icc
        assert image.getexif()[0x010F] == "memnet test camera"


def test_samples_that_are_not_a_png_image_are_refused() -> None:
    with pytest.raises(ValueError, match="uint8 or uint16"):
        write_png(io.BytesIO(), np.zeros((2, 2), np.float32), level=1)
    with pytest.raises(ValueError, match="shape"):
        write_png(io.BytesIO(), np.zeros((2, 2, 5), np.uint8), level=1)
    with pytest.raises(ValueError, match="shape"):
        write_png(io.BytesIO(), np.zeros((0, 2), np.uint8), level=1)
