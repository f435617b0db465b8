"""The output encoder: codec, pixel format and quality from the options and the input video."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memnet.errors import MemNetError

__all__ = ["DEFAULT_CODEC", "DEFAULT_CRF", "EncodeOptions", "EncoderChoice", "choose_encoder"]

DEFAULT_CODEC = "libx264"
DEFAULT_CRF = 18  # visually lossless for x264/x265; the restored detail is what the user wants
# Encoders with a constant-quality knob (--crf), and lossless ones (nothing to tune).
CRF_ENCODERS = ("libx264", "libx264rgb", "libx265", "libvpx-vp9", "libvpx", "libaom-av1")
LOSSLESS_ENCODERS = ("ffv1", "utvideo", "huffyuv", "ffvhuff", "png", "qtrle")
FALLBACK_BY_CONTAINER = {"webm": "libvpx-vp9"}


@dataclass(frozen=True)
class EncodeOptions:
    """How the restored video is encoded (None: chosen from the input, see choose_encoder)."""

    codec: str | None = None
    crf: int | None = None
    pix_fmt: str | None = None


@dataclass(frozen=True)
class EncoderChoice:
    """What the output video stream is encoded with."""

    codec: str
    pix_fmt: str
    options: dict[str, str]


def _encoder(av: Any, name: str) -> Any | None:
    try:
        return av.Codec(name, "w")
    except (ValueError, av.error.FFmpegError):
        return None


def choose_encoder(
    av: Any,
    *,
    input_codec: str,
    input_pix_fmt: str,
    supported: set[str],
    container: str = "",
    codec: str | None = None,
    crf: int | None = None,
    pix_fmt: str | None = None,
) -> EncoderChoice:
    """The encoder for an output `container` (FFmpeg muxer) that holds the codecs in `supported`.

    By default the input's own codec when PyAV's FFmpeg can encode it with a quality setting
    (or losslessly) and the container takes it, else libx264 (VP9 for WebM); the input's pixel
    format when the encoder takes it, else yuv420p; CRF 18.
    """
    if codec is not None:
        encoder = _encoder(av, codec)
        if encoder is None:
            raise MemNetError(f"--video-codec {codec}: no such encoder in PyAV's FFmpeg")
    else:
        own = _encoder(av, input_codec)
        tunable = own is not None and own.name in (*CRF_ENCODERS, *LOSSLESS_ENCODERS)
        if own is not None and tunable and own.name in supported:
            encoder = own
        else:
            encoder = _encoder(av, FALLBACK_BY_CONTAINER.get(container, DEFAULT_CODEC))
            if encoder is None:
                raise MemNetError("no H.264 encoder in PyAV's FFmpeg; give --video-codec")
    if encoder.type != "video":
        raise MemNetError(f"--video-codec {encoder.name}: not a video encoder")
    if encoder.name not in supported:
        raise MemNetError(
            f"the output container cannot hold {encoder.name} video; choose another --video-codec or output extension"
        )
    formats = [f.name for f in (encoder.video_formats or ())]
    if pix_fmt is not None:
        if formats and pix_fmt not in formats:
            raise MemNetError(f"--pix-fmt {pix_fmt}: {encoder.name} takes {', '.join(formats)}")
        chosen = pix_fmt
    elif not formats or input_pix_fmt in formats:
        chosen = input_pix_fmt
    else:
        chosen = "yuv420p" if "yuv420p" in formats else formats[0]
    options: dict[str, str] = {}
    if encoder.name in CRF_ENCODERS:
        options["crf"] = str(DEFAULT_CRF if crf is None else crf)
        if encoder.name.startswith("libvpx"):
            options["b"] = "0"  # constant quality: no bitrate target
    elif crf is not None:
        raise MemNetError(
            f"--crf: {encoder.name} has no constant-quality setting"
            + (" (it is lossless)" if encoder.name in LOSSLESS_ENCODERS else "")
        )
    return EncoderChoice(encoder.name, chosen, options)
