"""Restore a whole picture: task input, colour split, the network per channel, alpha, merge.

MemNet restores one channel. How a colour picture's channels go through it is a choice
(`auto`: the task's own, `Task.default_color`):

- `y`: the luminance (MATLAB YCbCr) through the network, Cb/Cr only prepared by the task
  (MATLAB bicubic for SR, unchanged otherwise) — what the authors did, the default for SR;
- `rgb`: every RGB channel through the network — the default for denoising, because a photo's
  noise sits in every channel and a luminance-only denoiser would leave the colour noise;
- `ycbcr`: Y, Cb and Cr each through the network — the default for JPEG, because JPEG codes
  (and blocks) the chroma channels too, usually more coarsely than the luminance.

Gray pictures always go through the network directly. Alpha is prepared like Cb/Cr (bicubic
for SR) and kept. `network=None` is the baseline method: bicubic for SR, identity otherwise.
`restore_pictures` does the same for several pictures of one size (video frames), splitting
each picture's colour on its own and handing every plane of them to the network in one call,
so that they can run as one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from memnet.errors import MemNetError
from memnet.imaging.color import rgb2ycbcr, ycbcr2rgb
from memnet.imaging.picture import MAX_PIXELS, Picture
from memnet.tasks import Task

__all__ = [
    "COLOR_MODES",
    "MIN_SIDE",
    "ColorMode",
    "check_one_size",
    "resolve_color",
    "restore_picture",
    "restore_pictures",
]

ColorMode = Literal["auto", "y", "ycbcr", "rgb"]
COLOR_MODES: tuple[ColorMode, ...] = ("auto", "y", "ycbcr", "rgb")

# Smaller pictures carry too little to restore (one JPEG block is 8 × 8).
MIN_SIDE = 8

Network = Callable[[NDArray[np.floating]], NDArray[np.floating]]
# Many planes of one size in, each restored plane out, in order.
BatchNetwork = Callable[[list[NDArray[np.floating]]], list[NDArray[np.floating]]]
# Pixels per band of rows in the colour conversion and bicubic steps: their float64
# temporaries (a few times 24 bytes per pixel) stay near 100 MB whatever the image size.
BAND_PIXELS = 1 << 20


def check_color_mode(mode: str) -> None:
    """A one-line error unless `mode` is one of COLOR_MODES."""
    if mode not in COLOR_MODES:
        raise MemNetError(f"unknown colour mode {mode!r}; use {', '.join(COLOR_MODES)}")


def resolve_color(mode: str, task: Task) -> ColorMode:
    """The colour handling for `task`: `auto` becomes the task's own (`Task.default_color`)."""
    check_color_mode(mode)
    chosen = task.default_color if mode == "auto" else mode
    if chosen not in COLOR_MODES or chosen == "auto":
        raise MemNetError(f"task {task.kind!r} has no colour mode {chosen!r}")
    return chosen


def check_size(height: int, width: int, task: Task) -> tuple[int, int]:
    """Refuse pictures too small to restore or whose output would be absurdly large."""
    if min(height, width) < MIN_SIDE:
        raise MemNetError(
            f"image is {width}x{height} px; memnet restores images of at least {MIN_SIDE}x{MIN_SIDE} px"
        )
    out_h, out_w = task.output_shape(height, width)
    if out_h * out_w > MAX_PIXELS:
        raise MemNetError(
            f"the {task.label} output would be {out_w}x{out_h} px, more than the "
            f"{MAX_PIXELS:,}-pixel limit"
        )
    return out_h, out_w


def restore_picture(
    picture: Picture,
    task: Task,
    network: Network | None,
    *,
    color: str = "auto",
) -> Picture:
    """Restore `picture` for `task` with `network` (None: the bicubic/identity baseline).

    The output has the precision of the input's pixels (float32 for decoded files, float64
    for float64 arrays). Colour conversion and the bicubic of Cb/Cr and alpha run a band of
    rows at a time in float64, so only the planes themselves grow with the image.
    """
    out_h, out_w = check_size(picture.height, picture.width, task)
    dtype = _pixel_dtype(picture)

    def through_network(channel: NDArray[np.floating]) -> NDArray[np.floating]:
        prepared = _prepared(task, channel, (out_h, out_w), dtype)
        if network is None:
            return prepared
        return np.asarray(network(prepared), dtype=dtype)

    pixels: NDArray[np.floating]
    if picture.is_gray:
        pixels = through_network(picture.pixels)
        if np.shares_memory(pixels, picture.pixels):  # never touch the input
            pixels = pixels.copy()
        np.clip(pixels, 0.0, 1.0, out=pixels)
    elif resolve_color(color, task) == "rgb":
        pixels = np.empty((out_h, out_w, 3), dtype=dtype)
        for c in range(3):
            pixels[..., c] = through_network(picture.pixels[..., c])
        np.clip(pixels, 0.0, 1.0, out=pixels)
    else:
        pixels = _restore_ycbcr(picture, task, through_network, resolve_color(color, task), dtype)
    return _with_alpha(picture, task, pixels, dtype)


def network_channels(is_gray: bool, mode: ColorMode) -> tuple[int, ...]:
    """Which planes of a picture go through the network: the gray plane, Y alone (`y`), or all
    three RGB or YCbCr planes; the others are only prepared (bicubic for SR)."""
    return (0,) if is_gray or mode == "y" else (0, 1, 2)


def check_one_size(pictures: Sequence[Picture]) -> None:
    """Refuse pictures restored together that differ in size or in being gray."""
    first = pictures[0]
    if any(
        (p.height, p.width, p.is_gray) != (first.height, first.width, first.is_gray)
        for p in pictures
    ):
        raise MemNetError("pictures restored together must have one size and colour layout")


def restore_pictures(
    pictures: list[Picture],
    task: Task,
    network: BatchNetwork,
    *,
    color: str = "auto",
) -> list[Picture]:
    """`restore_picture` of each of `pictures` (one size), with one `network` call for all the
    planes that go through it: every picture's colour is split on its own, the planes are
    handed over together (picture by picture, channel by channel), the results merged back.
    """
    if not pictures:
        return []
    check_one_size(pictures)
    first = pictures[0]
    out_h, out_w = check_size(first.height, first.width, task)
    mode = resolve_color(color, task)
    channels = network_channels(first.is_gray, mode)
    inputs: list[NDArray[np.floating]] = []
    kept: list[list[NDArray[np.floating] | None]] = []  # Y/Cb/Cr planes that stay for merging
    for picture in pictures:
        dtype = _pixel_dtype(picture)
        if picture.is_gray:
            planes: list[NDArray[np.floating] | None] = [picture.pixels]
        elif mode == "rgb":
            planes = [picture.pixels[..., c] for c in range(3)]
        else:
            planes = list(_ycbcr_planes(picture, dtype))
        for c in channels:
            plane = planes[c]
            assert plane is not None
            inputs.append(_prepared(task, plane, (out_h, out_w), dtype))
            planes[c] = None
        kept.append(planes)
    outputs = iter(network(inputs))
    del inputs
    restored: list[Picture] = []
    for picture, planes in zip(pictures, kept, strict=True):
        dtype = _pixel_dtype(picture)
        done: list[NDArray[np.floating] | None] = [None, None, None]
        for c in channels:
            done[c] = np.asarray(next(outputs), dtype=dtype)
        pixels: NDArray[np.floating]
        if picture.is_gray:
            assert done[0] is not None
            pixels = done[0]
            np.clip(pixels, 0.0, 1.0, out=pixels)
        elif mode == "rgb":
            pixels = np.empty((out_h, out_w, 3), dtype=dtype)
            for c in range(3):
                pixels[..., c] = done[c]
            np.clip(pixels, 0.0, 1.0, out=pixels)
        else:
            pixels = _merge_ycbcr(task, done, planes, (out_h, out_w), dtype)
        restored.append(_with_alpha(picture, task, pixels, dtype))
    return restored


def _pixel_dtype(picture: Picture) -> type[np.floating]:
    """The precision a restored picture keeps: float32 for decoded files, else float64."""
    return np.float32 if picture.pixels.dtype == np.float32 else np.float64


def _with_alpha(
    picture: Picture, task: Task, pixels: NDArray[np.floating], dtype: type[np.floating]
) -> Picture:
    """The restored picture: `pixels`, and the input's alpha prepared (bicubic for SR)."""
    alpha = None
    if picture.alpha is not None:
        alpha = _prepared(task, picture.alpha, pixels.shape[:2], dtype)
        np.clip(alpha, 0.0, 1.0, out=alpha)
    return picture.with_pixels(pixels, alpha)


def _bands(height: int, width: int) -> Iterator[tuple[int, int]]:
    """Row ranges of about BAND_PIXELS pixels covering an image `height` rows high."""
    step = max(1, BAND_PIXELS // max(1, width))
    for start in range(0, height, step):
        yield start, min(start + step, height)


def _prepared(
    task: Task, plane: NDArray[np.floating], shape: tuple[int, int], dtype: type[np.floating]
) -> NDArray[np.floating]:
    """`task.prepare_input(plane)` as one new `dtype` plane, computed a band at a time."""
    out = np.empty(shape, dtype=dtype)
    for start, stop in _bands(*shape):
        out[start:stop] = task.prepare_rows(plane, start, stop)
    return out


def _restore_ycbcr(
    picture: Picture,
    task: Task,
    through_network: Callable[[NDArray[np.floating]], NDArray[np.floating]],
    mode: ColorMode,
    dtype: type[np.floating],
) -> NDArray[np.floating]:
    """Y (and for `ycbcr` Cb and Cr) through the network, the rest prepared; merged to RGB."""
    planes: list[NDArray[np.floating] | None] = list(_ycbcr_planes(picture, dtype))
    restored: list[NDArray[np.floating] | None] = [None, None, None]
    for c in (0, 1, 2) if mode == "ycbcr" else (0,):
        plane = planes[c]
        assert plane is not None
        restored[c] = through_network(plane)
        planes[c] = plane = None  # each input plane is freed as soon as it is done with
    shape = task.output_shape(picture.height, picture.width)
    return _merge_ycbcr(task, restored, planes, shape, dtype)


def _ycbcr_planes(
    picture: Picture, dtype: type[np.floating]
) -> tuple[NDArray[np.floating], NDArray[np.floating], NDArray[np.floating]]:
    """The picture's Y, Cb and Cr planes (MATLAB YCbCr), converted a band of rows at a time."""
    height, width = picture.height, picture.width
    planes = tuple(np.empty((height, width), dtype=dtype) for _ in range(3))
    for start, stop in _bands(height, width):
        ycbcr = rgb2ycbcr(np.asarray(picture.pixels[start:stop], dtype=np.float64))
        for c in range(3):
            planes[c][start:stop] = ycbcr[..., c]
    return planes[0], planes[1], planes[2]


def _merge_ycbcr(
    task: Task,
    restored: list[NDArray[np.floating] | None],
    planes: list[NDArray[np.floating] | None],
    shape: tuple[int, int],
    dtype: type[np.floating],
) -> NDArray[np.floating]:
    """RGB from the restored Y/Cb/Cr planes, and the others' input `planes` prepared."""
    out_h, out_w = shape
    pixels = np.empty((out_h, out_w, 3), dtype=dtype)
    for start, stop in _bands(out_h, out_w):
        band = np.empty((stop - start, out_w, 3), dtype=np.float64)
        for c in range(3):
            done, source = restored[c], planes[c]
            if done is not None:
                band[..., c] = done[start:stop]
            else:
                assert source is not None
                band[..., c] = task.prepare_rows(source, start, stop)
        pixels[start:stop] = np.clip(ycbcr2rgb(band), 0.0, 1.0)
    return pixels
