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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from memnet.errors import MemNetError
from memnet.imaging.bands import for_each_band
from memnet.imaging.color import ycbcr2rgb, ycbcr_channel
from memnet.imaging.picture import MAX_PIXELS, Picture, to_integer, unit_rows
from memnet.imaging.planes import copied_plane, new_plane
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
    depth: int | None = None,
) -> Picture:
    """Restore `picture` for `task` with `network` (None: the bicubic/identity baseline).

    The output has the precision of the input's pixels (float32 for decoded files and integer
    samples, float64 for float64 arrays). `depth` (8 or 16): the output holds integer samples
    of that depth instead, rounded as `write_image` rounds (writing.sample_depth says which),
    a band of rows at a time straight into the output, so no float copy of it is ever held.
    Colour conversion, the bicubic of Cb/Cr and alpha and the rounding run a band of rows at a
    time in float64, the bands shared out over the cores (memnet.imaging.bands); a channel's
    input plane is made only when it goes through the network and freed as soon as the network has it, so only the planes themselves grow with the image
    (memnet.inference.memory.picture_plane_bytes counts them).
    """
    out_h, out_w = check_size(picture.height, picture.width, task)
    dtype = _pixel_dtype(picture)
    mode: ColorMode = "y" if picture.is_gray else resolve_color(color, task)  # gray: unused
    channels = _Channels(picture, "gray" if picture.is_gray else _space(mode), dtype)
    output = _Output((out_h, out_w) if picture.is_gray else (out_h, out_w, 3), dtype, depth)

    def through_network(c: int) -> NDArray[np.floating]:
        prepared = channels.prepared(task, c, (out_h, out_w))
        if network is None:
            return prepared
        return np.asarray(network(prepared), dtype=dtype)

    if picture.is_gray:
        restored = through_network(0)
        if depth is None:
            output.keep(restored, copy=np.shares_memory(restored, picture.pixels))
        else:
            output.store_bands(restored)
    elif mode == "rgb":
        for c in range(3):
            output.store_bands(through_network(c), c)  # freed before the next channel's planes
    else:
        done: list[NDArray[np.floating] | None] = [None, None, None]
        for c in network_channels(False, mode):
            done[c] = through_network(c)
        _merge_ycbcr(task, done, channels, output)
    return _with_alpha(picture, task, output, dtype)


def _space(mode: ColorMode) -> Literal["rgb", "ycbcr"]:
    """The colour space a mode's planes are in: RGB for `rgb`, MATLAB YCbCr for `y`/`ycbcr`."""
    return "rgb" if mode == "rgb" else "ycbcr"


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
    split: list[_Channels] = []
    for picture in pictures:
        dtype = _pixel_dtype(picture)
        planes = _Channels(picture, "gray" if picture.is_gray else _space(mode), dtype)
        inputs += [planes.prepared(task, c, (out_h, out_w)) for c in channels]
        split.append(planes)
    outputs = iter(network(inputs))
    del inputs
    restored: list[Picture] = []
    for picture, planes in zip(pictures, split, strict=True):
        dtype = planes.dtype
        done: list[NDArray[np.floating] | None] = [None, None, None]
        for c in channels:
            done[c] = np.asarray(next(outputs), dtype=dtype)
        shape = (out_h, out_w) if picture.is_gray else (out_h, out_w, 3)
        output = _Output(shape, dtype, None)
        if picture.is_gray:
            assert done[0] is not None
            output.keep(done[0], copy=False)
        elif mode == "rgb":
            for c in range(3):
                plane = done[c]
                assert plane is not None
                output.store_bands(plane, c)
        else:
            _merge_ycbcr(task, done, planes, output)
        restored.append(_with_alpha(picture, task, output, dtype))
    return restored


def _pixel_dtype(picture: Picture) -> type[np.floating]:
    """The precision a restored picture keeps: float32 for decoded files (integer samples
    decode to it too), else float64."""
    return np.float32 if picture.pixels.dtype == np.float32 or picture.has_samples else np.float64


class _Output:
    """A restored picture's pixels, filled a band of rows at a time with [0, 1] floats: kept
    as `dtype` floats, or (`depth` 8 or 16) rounded to integer samples as they arrive."""

    def __init__(self, shape: tuple[int, ...], dtype: type[np.floating], depth: int | None) -> None:
        self.shape, self.dtype, self.depth = shape, dtype, depth
        self.pixels: NDArray[np.generic] | None = None

    def keep(self, values: NDArray[np.floating], *, copy: bool) -> None:
        """The whole result is `values` (floats of `dtype`): clipped in place, not copied but
        where `copy` says (never touch the input)."""
        assert self.depth is None
        pixels = copied_plane(values) if copy else values
        self.pixels = np.clip(pixels, 0.0, 1.0, out=pixels)

    def allocate(self) -> None:
        """Make the pixels, once: called when the first band is stored, after the network's
        input planes are freed, and before bands are stored from several threads."""
        if self.pixels is None:
            integer = np.uint16 if self.depth == 16 else np.uint8
            self.pixels = new_plane(self.shape, self.dtype if self.depth is None else integer)

    def store(self, index: tuple[slice | int, ...], values: NDArray[np.floating]) -> None:
        """Clipped [0, 1] `values` into `pixels[index]`: cast to `dtype`, then rounded."""
        self.allocate()
        assert self.pixels is not None
        if self.depth is None:
            self.pixels[index] = values
        else:
            self.pixels[index] = to_integer(values.astype(self.dtype, copy=False), self.depth)

    def store_bands(self, plane: NDArray[np.floating], channel: int | None = None) -> None:
        """A restored `plane`, clipped to [0, 1], into the output (`channel` of a colour one),
        a band of rows at a time."""
        self.allocate()
        columns = () if channel is None else (slice(None), channel)

        def band(start: int, stop: int) -> None:
            self.store((slice(start, stop), *columns), np.clip(plane[start:stop], 0.0, 1.0))

        height, width = self.shape[:2]
        for_each_band(height, width, band)

    def result(self) -> NDArray[np.generic]:
        assert self.pixels is not None
        return self.pixels


def _with_alpha(picture: Picture, task: Task, output: _Output, dtype: type[np.floating]) -> Picture:
    """The restored picture: `output`'s pixels, and the input's alpha prepared (bicubic for
    SR) and rounded like them."""
    pixels = output.result()
    alpha: NDArray[np.generic] | None = None
    if picture.alpha is not None:
        plain = _Channels(replace(picture, pixels=picture.alpha, alpha=None), "gray", dtype)
        prepared = plain.prepared(task, 0, pixels.shape[:2])
        np.clip(prepared, 0.0, 1.0, out=prepared)
        alpha = prepared if output.depth is None else to_integer(prepared, output.depth)
    if output.depth is None:
        return picture.with_pixels(pixels, alpha)
    return replace(picture, pixels=pixels, alpha=alpha, bit_depth=output.depth)


@dataclass(frozen=True)
class _Channels:
    """A picture's gray, RGB or MATLAB YCbCr planes as `dtype` floats at its own resolution,
    converted from its pixels (floats or integer samples) a band of rows at a time."""

    picture: Picture
    space: Literal["gray", "rgb", "ycbcr"]
    dtype: type[np.floating]

    def rows(self, c: int, start: int, stop: int) -> NDArray[np.floating]:
        """Rows start .. stop of plane `c` (a view where the pixels are floats of it)."""
        values = unit_rows(self.picture.pixels, start, stop)
        if self.space == "gray":
            return values
        if self.space == "rgb":
            return values[..., c]
        # one channel at a time: a plane is made when it is needed, so each pass converts once
        return ycbcr_channel(values, c).astype(self.dtype)

    def plane(self, c: int) -> NDArray[np.floating]:
        """Plane `c` whole: a view of float gray/RGB pixels, else a new plane."""
        if self.space != "ycbcr" and not self.picture.has_samples:
            pixels = unit_rows(self.picture.pixels, 0, self.picture.height)  # a view
            return pixels if self.space == "gray" else pixels[..., c]
        height, width = self.picture.height, self.picture.width
        plane = new_plane((height, width), self.dtype)

        def band(start: int, stop: int) -> None:
            plane[start:stop] = self.rows(c, start, stop)

        for_each_band(height, width, band)
        return plane

    def prepared(self, task: Task, c: int, shape: tuple[int, int]) -> NDArray[np.floating]:
        """`task.prepare_input` of plane `c`, one new plane of `shape`, a band at a time: from
        the whole plane where the task resamples, else each band from its own rows."""
        out = new_plane(shape, self.dtype)
        source = self.plane(c) if task.resamples else None

        def band(start: int, stop: int) -> None:
            out[start:stop] = self.prepared_rows(task, c, start, stop, source)

        for_each_band(*shape, band)
        return out

    def prepared_rows(
        self,
        task: Task,
        c: int,
        start: int,
        stop: int,
        source: NDArray[np.floating] | None,
    ) -> NDArray[np.float64]:
        """Rows start .. stop of `task.prepare_input` of plane `c` (`source`: the whole plane,
        where the task resamples)."""
        if source is not None:
            return task.prepare_rows(source, start, stop)
        return task.prepare_rows(self.rows(c, start, stop), 0, stop - start)


def _merge_ycbcr(
    task: Task,
    restored: list[NDArray[np.floating] | None],
    channels: _Channels,
    output: _Output,
) -> None:
    """RGB into `output` from the restored Y/Cb/Cr planes, and the others prepared."""
    out_h, out_w = output.shape[:2]
    # Planes not restored, whole where the task resamples them (made now, after the network).
    sources = [
        channels.plane(c) if done is None and task.resamples else None
        for c, done in enumerate(restored)
    ]
    output.allocate()

    def merge(start: int, stop: int) -> None:
        band = np.empty((stop - start, out_w, 3), dtype=np.float64)
        for c in range(3):
            done = restored[c]
            if done is not None:
                band[..., c] = done[start:stop]
            else:
                band[..., c] = channels.prepared_rows(task, c, start, stop, sources[c])
        output.store((slice(start, stop),), np.clip(ycbcr2rgb(band), 0.0, 1.0))

    for_each_band(out_h, out_w, merge)
