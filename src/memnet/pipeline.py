"""Restore a whole picture: task input, colour split, the network per channel, alpha, merge.

MemNet restores one channel. How a colour picture's channels go through it is a choice:

- `y`: the luminance (MATLAB YCbCr) through the network, Cb/Cr only prepared by the task
  (MATLAB bicubic for SR, unchanged otherwise) — what the authors did, the default for SR;
- `rgb`: every RGB channel through the network — the default for denoising, because a photo's
  noise sits in every channel and a luminance-only denoiser would leave the colour noise;
- `ycbcr`: Y, Cb and Cr each through the network — the default for JPEG, because JPEG codes
  (and blocks) the chroma channels too, usually more coarsely than the luminance.

Gray pictures always go through the network directly. Alpha is prepared like Cb/Cr (bicubic
for SR) and kept. `network=None` is the baseline method: bicubic for SR, identity otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from memnet.errors import MemNetError
from memnet.imaging.color import rgb2ycbcr, ycbcr2rgb
from memnet.io import MAX_PIXELS, Picture
from memnet.tasks import Task

__all__ = [
    "COLOR_MODES",
    "DEFAULT_COLOR",
    "MIN_SIDE",
    "ColorMode",
    "resolve_color",
    "restore_picture",
]

ColorMode = Literal["auto", "y", "ycbcr", "rgb"]
COLOR_MODES: tuple[ColorMode, ...] = ("auto", "y", "ycbcr", "rgb")
DEFAULT_COLOR: dict[str, ColorMode] = {"sr": "y", "denoise": "rgb", "jpeg": "ycbcr"}

# Smaller pictures carry too little to restore (one JPEG block is 8 × 8).
MIN_SIDE = 8

Network = Callable[[NDArray[np.float64]], NDArray[np.float64]]


def resolve_color(mode: str, task: Task) -> ColorMode:
    """The colour handling for `task`: `auto` becomes the task's documented default."""
    if mode not in COLOR_MODES:
        raise MemNetError(f"unknown colour mode {mode!r}; use {', '.join(COLOR_MODES)}")
    return DEFAULT_COLOR[task.kind] if mode == "auto" else mode


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
    """Restore `picture` for `task` with `network` (None: the bicubic/identity baseline)."""
    check_size(picture.height, picture.width, task)
    run: Network = network if network is not None else (lambda x: x)

    def through_network(channel: NDArray[np.float64]) -> NDArray[np.float64]:
        return run(task.prepare_input(channel))

    if picture.is_gray:
        pixels = through_network(picture.pixels)
    else:
        mode = resolve_color(color, task)
        if mode == "rgb":
            pixels = _stack([through_network(picture.pixels[..., c]) for c in range(3)])
        else:
            ycbcr = np.asarray(rgb2ycbcr(picture.pixels), dtype=np.float64)
            luma = through_network(np.ascontiguousarray(ycbcr[..., 0]))
            chroma = [np.ascontiguousarray(ycbcr[..., c]) for c in (1, 2)]
            del ycbcr
            prepare = through_network if mode == "ycbcr" else task.prepare_input
            merged = ycbcr2rgb(_stack([luma, *(prepare(c) for c in chroma)]))
            pixels = np.asarray(merged, dtype=np.float64)
    alpha = None
    if picture.alpha is not None:
        alpha = np.clip(task.prepare_input(picture.alpha), 0.0, 1.0)
    if np.shares_memory(pixels, picture.pixels):  # the identity baseline: never touch the input
        pixels = pixels.copy()
    np.clip(pixels, 0.0, 1.0, out=pixels)
    return picture.with_pixels(pixels, alpha)


def _stack(channels: list[NDArray[np.float64]]) -> NDArray[np.float64]:
    out = np.empty((*channels[0].shape, len(channels)), dtype=np.float64)
    for index, channel in enumerate(channels):
        out[..., index] = channel
    return out
