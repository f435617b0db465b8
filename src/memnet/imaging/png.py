"""PNG files encoded on all the cores: 8- and 16-bit gray, gray + alpha, RGB and RGBA.

Pillow's encoder deflates on one thread and tries five filters on every row: on a 12 Mpx
restored photo at zlib level 1 it took 0.93 s, as long as the colour work and the import of
PyTorch together, with the other core idle. Here every row takes PNG's Up filter (each byte
minus the byte above it, whatever the sample depth), and bands of rows are deflated at once
(memnet.imaging.bands) as pieces of one zlib stream: each piece ends with a sync flush, which
ends its last block on a byte boundary without ending the stream, so the pieces join into one
valid stream in order, and their Adler-32 checksums are combined. That photo took 0.23 s, for
a file 5 % larger than Pillow's. Decoders see an ordinary PNG; the pixels are the same.

Every file has IHDR, then iCCP and eXIf when the picture has them (as Pillow writes them),
the IDAT chunks (one per band), and IEND.
"""

from __future__ import annotations

import struct
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO

import numpy as np
from numpy.typing import NDArray

from memnet.imaging import bands
from memnet.imaging.formats import PNG_SIGNATURE

__all__ = ["adler32_combine", "write_png"]

COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels → PNG colour type (gray, gray+α, RGB, RGBA)
UP_FILTER = 2
ADLER_BASE = 65521


def adler32_combine(first: int, second: int, second_length: int) -> int:
    """The Adler-32 of A + B from that of A, that of B and B's length (zlib's own formula;
    Python's zlib module does not offer it)."""
    rem = second_length % ADLER_BASE
    low = first & 0xFFFF
    high = (rem * low) % ADLER_BASE
    low = (low + (second & 0xFFFF) + ADLER_BASE - 1) % ADLER_BASE
    high = (high + (first >> 16) + (second >> 16) + ADLER_BASE - rem) % ADLER_BASE
    return low | (high << 16)


def _chunk(out: IO[bytes], kind: bytes, data: bytes) -> None:
    out.write(struct.pack(">I", len(data)) + kind)
    out.write(data)
    out.write(struct.pack(">I", zlib.crc32(data, zlib.crc32(kind))))


def _rows_as_bytes(samples: NDArray[np.generic], start: int, stop: int) -> NDArray[np.uint8]:
    """Rows start .. stop as PNG stores them: samples in order, 16-bit ones big-endian."""
    rows = samples[start:stop]
    if rows.dtype == np.uint16:
        rows = rows.astype(">u2")
    return np.ascontiguousarray(rows).view(np.uint8).reshape(stop - start, -1)


def _up_filtered(samples: NDArray[np.generic], start: int, stop: int) -> bytes:
    """Rows start .. stop, each its filter byte and the Up filter of its bytes."""
    rows = _rows_as_bytes(samples, start, stop)
    filtered = np.empty((rows.shape[0], rows.shape[1] + 1), dtype=np.uint8)
    filtered[:, 0] = UP_FILTER
    above = _rows_as_bytes(samples, start - 1, start)[0] if start > 0 else 0
    np.subtract(rows[:1], above, out=filtered[:1, 1:])  # uint8 arithmetic wraps, as PNG's does
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    return filtered.tobytes()


def _deflated(
    samples: NDArray[np.generic], start: int, stop: int, level: int
) -> tuple[bytes, int, int]:
    """One piece of the zlib stream: rows start .. stop deflated and sync-flushed, with the
    Adler-32 and length of what it holds."""
    data = _up_filtered(samples, start, stop)
    deflate = zlib.compressobj(level, zlib.DEFLATED, -15)  # raw deflate: no header of its own
    return deflate.compress(data) + deflate.flush(zlib.Z_SYNC_FLUSH), zlib.adler32(data), len(data)


def write_png(
    out: IO[bytes],
    samples: NDArray[np.generic],
    *,
    level: int,
    icc_profile: bytes | None = None,
    exif: bytes | None = None,
) -> None:
    """Write `samples` ((H, W) or (H, W, 1–4) of uint8 or uint16) to `out` as a PNG file
    deflated at zlib `level`, with the ICC profile and EXIF given."""
    if samples.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"PNG samples are uint8 or uint16, not {samples.dtype}")
    height, width = samples.shape[:2]
    channels = 1 if samples.ndim == 2 else samples.shape[2]
    if channels not in COLOR_TYPES or samples.ndim > 3 or height == 0 or width == 0:
        raise ValueError(f"cannot write a PNG of shape {samples.shape}")
    bit_depth = 16 if samples.dtype == np.uint16 else 8
    out.write(PNG_SIGNATURE)
    header = struct.pack(">IIBBBBB", width, height, bit_depth, COLOR_TYPES[channels], 0, 0, 0)
    _chunk(out, b"IHDR", header)
    if icc_profile:
        _chunk(out, b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc_profile))
    if exif:
        _chunk(out, b"eXIf", exif.removeprefix(b"Exif\x00\x00"))

    # One zlib stream in the IDAT chunks: its header (deflate, 32 KB window, no dictionary;
    # the check bits make the two bytes a multiple of 31), the pieces, an empty final block
    # and the Adler-32 of all the filtered bytes.
    header_bytes, checksum = b"\x78\x01", 1
    threads = bands.band_threads()
    # Pieces of one size on any machine, so the file's bytes do not depend on its cores.
    pieces = bands.band_rows(height, width * channels, bands.BAND_PIXELS // bands.BAND_THREADS)

    def emit(piece: Future[tuple[bytes, int, int]]) -> None:
        nonlocal header_bytes, checksum
        data, adler, length = piece.result()
        checksum = adler32_combine(checksum, adler, length)
        _chunk(out, b"IDAT", header_bytes + data)
        header_bytes = b""

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="memnet-png") as pool:
        # Pieces are written in order as they come; at most `threads` more wait, so memory
        # holds a few bands, never the whole file.
        waiting: deque[Future[tuple[bytes, int, int]]] = deque()
        for start, stop in pieces:
            waiting.append(pool.submit(_deflated, samples, start, stop, level))
            if len(waiting) > threads:
                emit(waiting.popleft())
        while waiting:
            emit(waiting.popleft())
    ending = zlib.compressobj(level, zlib.DEFLATED, -15).flush()  # an empty, final block
    _chunk(out, b"IDAT", ending + struct.pack(">I", checksum))
    _chunk(out, b"IEND", b"")
