"""Video restoration: frames decoded, restored with the image restorer (in batches of frames of
one size where the device and memory make that faster, see transcode.py), encoded as a stream,
audio and subtitles copied untouched. Needs the `video` extra (PyAV); `import memnet`
and this package work without it, only `restore_video` asks for it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from memnet.video.files import VIDEO_SUFFIXES, is_video

if TYPE_CHECKING:
    from memnet.video.encoder import EncodeOptions
    from memnet.video.transcode import VideoResult, restore_video

__all__ = ["VIDEO_SUFFIXES", "EncodeOptions", "VideoResult", "is_video", "restore_video"]


def __getattr__(name: str) -> Any:
    # PyAV is imported only when video work is actually asked for.
    if name == "EncodeOptions":
        from memnet.video import encoder

        return encoder.EncodeOptions
    if name in ("VideoResult", "restore_video"):
        from memnet.video import transcode

        return getattr(transcode, name)
    raise AttributeError(f"module 'memnet.video' has no attribute {name!r}")
