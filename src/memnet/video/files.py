"""Which files are videos, which container each output name means, and loading PyAV."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

from memnet.errors import MemNetError

__all__ = ["VIDEO_SUFFIXES", "container_format", "is_video", "require_av"]

# Output name suffix → FFmpeg muxer; the same suffixes are taken as videos on input.
VIDEO_SUFFIXES = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
    ".avi": "avi",
}


def is_video(path: str | os.PathLike[str]) -> bool:
    """Whether memnet treats `path` as a video (by its name; the content is checked on reading)."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def container_format(path: str | os.PathLike[str]) -> str:
    """The FFmpeg muxer for an output video name (the temporary file's own name says nothing)."""
    suffix = Path(path).suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise MemNetError(
            f"{path}: not a video name; use one of {', '.join(VIDEO_SUFFIXES)} for a video output"
        )
    return VIDEO_SUFFIXES[suffix]


def require_av() -> ModuleType:
    """PyAV, or a one-line reason saying how to install it."""
    try:
        import av
    except ImportError:
        raise MemNetError(
            "video needs PyAV: pip install -c constraints.txt 'memnet[video]'"
        ) from None
    return av
