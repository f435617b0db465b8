"""Video frames ↔ the image arrays memnet.load's restorer takes, keeping range and colour space.

A frame becomes an (H, W, 3) RGB array (uint8, or uint16 above 8 bits per sample; (H, W) for a
gray video), converted with the frame's own colour range and matrix, and comes back the same way.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["FrameLayout", "array_to_frame", "display_matrix", "frame_to_array", "layout_of"]

DISPLAY_MATRIX = "DISPLAYMATRIX"


@dataclass(frozen=True)
class FrameLayout:
    """How frames of one video are turned into arrays: the array format and colour tags."""

    array_format: str  # rgb24, rgb48le, gray or gray16le
    color_range: int  # FFmpeg AVColorRange of the source (0: unspecified)
    colorspace: int  # FFmpeg AVColorSpace (matrix) of the source (2: unspecified)

    @property
    def range_or_none(self) -> int | None:
        return self.color_range or None

    @property
    def colorspace_or_none(self) -> int | None:
        # 2 is AVCOL_SPC_UNSPECIFIED; 0 is RGB (no matrix): both leave swscale's default.
        return None if self.colorspace in (0, 2) else self.colorspace


def layout_of(frame: Any) -> FrameLayout:
    """The array layout for a decoded frame: gray or RGB, 8 or 16 bits."""
    video_format = frame.format
    gray = len(video_format.components) == 1 and not video_format.has_palette
    deep = max(component.bits for component in video_format.components) > 8
    names = {(True, False): "gray", (True, True): "gray16le"}
    names.update({(False, False): "rgb24", (False, True): "rgb48le"})
    return FrameLayout(names[(gray, deep)], int(frame.color_range), int(frame.colorspace))


def frame_to_array(frame: Any, layout: FrameLayout) -> NDArray[Any]:
    """A decoded frame as the RGB (or gray) array the image restorer takes."""
    return np.asarray(
        frame.to_ndarray(
            format=layout.array_format,
            src_colorspace=layout.colorspace_or_none,
            src_color_range=layout.range_or_none,
        )
    )


def array_to_frame(array: NDArray[Any], layout: FrameLayout, pix_fmt: str) -> Any:
    """A restored array as a frame in the encoder's pixel format, with the source's colour tags."""
    import av

    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format=layout.array_format)
    return frame.reformat(
        format=pix_fmt,
        dst_colorspace=layout.colorspace_or_none,
        dst_color_range=layout.range_or_none,
    )


def display_matrix(frame: Any) -> list[int] | None:
    """The frame's display matrix (rotation and flips) as 9 integers, if it has one."""
    for entry in frame.side_data:
        if str(entry.type).rsplit(".", 1)[-1] == DISPLAY_MATRIX:
            return list(struct.unpack("=9i", bytes(entry)[:36]))
    return None
