"""Restore a video as a stream: demux, decode, restore frames in batches, encode, mux — nothing
on disk but the output, which is written to a temporary file beside it and renamed when complete.

Memory does not grow with the length: up to `ImageRestorer.batch_size` consecutive decoded
frames of one size are collected, restored together (`ImageRestorer.restore_batch`: one forward
pass on a GPU when they fit the budget one frame would get; one frame at a time on the CPU, or
when a frame alone is streamed or tiled) and handed to the encoder in order before the next
frame is decoded, so what is held is one batch plus the encoder's own look-ahead. The size is
read from the memory budget again for every batch; the last batch is as short as the video
leaves it, and progress is reported per encoded frame. Audio and subtitle packets are remuxed
as they are (never decoded), and the video keeps its timestamps, frame rate, display matrix
(rotation), sample aspect ratio and colour range, matrix, primaries and transfer.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from numpy.typing import NDArray

from memnet.errors import MemNetError
from memnet.fsutil import atomic_path
from memnet.inference.api import ImageRestorer
from memnet.tasks import Task
from memnet.video.encoder import EncodeOptions, EncoderChoice, choose_encoder
from memnet.video.files import container_format, require_av
from memnet.video.frames import (
    FrameLayout,
    array_to_frame,
    display_matrix,
    frame_to_array,
    layout_of,
)

__all__ = ["FrameProgress", "VideoResult", "restore_video"]

# progress(frames done, frames expected or None when the container does not say)
FrameProgress = Callable[[int, "int | None"], None]
COPIED_STREAM_TYPES = ("audio", "subtitle")
DEFAULT_RATE = Fraction(25)


@dataclass(frozen=True)
class VideoResult:
    """What one video run wrote."""

    frames: int
    megapixels: float
    encoder: str
    pix_fmt: str
    copied_streams: int


def restore_video(
    restorer: ImageRestorer,
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    options: EncodeOptions | None = None,
    progress: FrameProgress | None = None,
) -> VideoResult:
    """Restore every frame of `source` with `restorer` and write `target` atomically."""
    av = require_av()
    source, target = Path(source), Path(target)
    muxer = container_format(target)
    task = restorer.make_task()
    try:
        container = av.open(str(source))
    except (av.error.FFmpegError, UnicodeDecodeError) as error:
        raise MemNetError(f"{source}: not a readable video ({_one_line(error)})") from None
    try:
        with container as inp, atomic_path(target) as tmp:
            if not inp.streams.video:
                raise MemNetError(f"{source}: has no video stream")
            run = _Transcode(av, restorer, task, inp, options or EncodeOptions(), progress)
            return run.into(tmp, muxer)
    except av.error.FFmpegError as error:
        raise MemNetError(f"{source}: {_one_line(error)}") from None


def _one_line(error: BaseException) -> str:
    # FFmpeg errors read "[Errno N] text: 'file'"; the text is what helps.
    text = getattr(error, "strerror", None) or str(error)
    return " ".join(str(text).split()) or type(error).__name__


class _Transcode:
    """One pass from an open input container to a new output file."""

    def __init__(
        self,
        av: Any,
        restorer: ImageRestorer,
        task: Task,
        inp: Any,
        options: EncodeOptions,
        progress: FrameProgress | None,
    ) -> None:
        self.av, self.restorer, self.task, self.inp = av, restorer, task, inp
        self.options, self.progress = options, progress
        self.video_in = inp.streams.video[0]
        self.video_in.thread_type = "AUTO"
        self.copied = [s for s in inp.streams if s.type in COPIED_STREAM_TYPES]
        self.rate = self.video_in.average_rate or self.video_in.guessed_rate or DEFAULT_RATE
        self.total: int | None = None
        self.choice: EncoderChoice | None = None
        self.frames, self.megapixels = 0, 0.0

    def expected_frames(self) -> int | None:
        """The container's frame count, else one estimated from its duration."""
        if self.video_in.frames:
            return int(self.video_in.frames)
        if self.video_in.duration and self.video_in.time_base:
            return round(self.video_in.duration * self.video_in.time_base * self.rate)
        if self.inp.duration:
            return round(self.inp.duration / 1_000_000 * self.rate)
        return None

    def into(self, tmp: Path, muxer: str) -> VideoResult:
        out = self.av.open(str(tmp), "w", format=muxer)
        try:
            result = self._run(out, muxer)
        except BaseException:
            with contextlib.suppress(Exception):  # the partial file is deleted anyway
                out.close()
            raise
        out.close()
        return result

    def _run(self, out: Any, muxer: str) -> VideoResult:
        out.metadata.update(self.inp.metadata)
        self.total = self.expected_frames()
        mapping: dict[int, Any] = {}
        video_out: Any = None
        layout: FrameLayout | None = None
        # Packets of copied streams that arrive before the first frame is decoded wait here:
        # the output video stream (size, display matrix) is known only from that frame, and
        # every stream must exist before the first packet is written.
        held: list[Any] = []
        # Decoded frames (as arrays, with their timestamps) waiting to be restored together.
        pending: list[tuple[NDArray[Any], int]] = []
        batch = 1
        decoded = 0
        for packet in self.inp.demux(self.video_in, *self.copied):
            if packet.stream.index != self.video_in.index:
                if packet.size == 0:  # the demuxer's end-of-stream marker
                    continue
                if video_out is None:
                    held.append(packet)
                else:
                    packet.stream = mapping[packet.stream.index]
                    out.mux(packet)
                continue
            for frame in packet.decode():
                if video_out is None:
                    layout = layout_of(frame)
                    video_out, self.choice, mapping = self._open_streams(out, muxer, frame, layout)
                    for waiting in held:
                        waiting.stream = mapping[waiting.stream.index]
                        out.mux(waiting)
                    held.clear()
                assert layout is not None
                array = frame_to_array(frame, layout)
                if pending and pending[0][0].shape != array.shape:
                    self._encode(out, video_out, layout, pending)  # a batch has one size
                if not pending:  # the budget is read again for every batch
                    batch = self.restorer.batch_size(array)
                pts = frame.pts if frame.pts is not None else self._pts_of(decoded)
                pending.append((array, pts))
                decoded += 1
                if len(pending) >= batch:
                    self._encode(out, video_out, layout, pending)
        if video_out is None or self.choice is None or layout is None:
            raise MemNetError("no video frame could be decoded")
        self._encode(out, video_out, layout, pending)
        for piece in video_out.encode(None):
            out.mux(piece)
        choice = self.choice
        return VideoResult(
            self.frames, self.megapixels, choice.codec, choice.pix_fmt, len(self.copied)
        )

    def _encode(
        self,
        out: Any,
        video_out: Any,
        layout: FrameLayout,
        pending: list[tuple[NDArray[Any], int]],
    ) -> None:
        """Restore the pending frames in one batch, encode them in order and empty `pending`."""
        if not pending:
            return
        assert self.choice is not None
        restored = self.restorer.restore_batch([array for array, _ in pending])
        for (_, pts), array in zip(pending, restored, strict=True):
            encoded = array_to_frame(array, layout, self.choice.pix_fmt)
            encoded.pts = pts
            encoded.time_base = self.video_in.time_base
            for piece in video_out.encode(encoded):
                out.mux(piece)
            self.frames += 1
            self.megapixels += encoded.width * encoded.height / 1e6
            if self.progress is not None:
                self.progress(self.frames, self.total)
        pending.clear()

    def _open_streams(
        self, out: Any, muxer: str, frame: Any, layout: FrameLayout
    ) -> tuple[Any, EncoderChoice, dict[int, Any]]:
        """The output streams in the input's order: the restored video and the copied ones."""
        mapping: dict[int, Any] = {}
        video_out: Any = None
        choice: EncoderChoice | None = None
        for stream in self.inp.streams:
            if stream.index == self.video_in.index:
                video_out, choice = self._open_video(out, muxer, frame, layout)
            elif stream.type in COPIED_STREAM_TYPES:
                try:
                    copy = out.add_stream_from_template(stream)
                except ValueError:
                    raise MemNetError(
                        f"the {muxer} container cannot hold the {stream.codec_context.name} "
                        f"{stream.type} stream #{stream.index} (copied untouched); write another "
                        "container, e.g. the input's own"
                    ) from None
                copy.metadata.update(stream.metadata)
                mapping[stream.index] = copy
        assert choice is not None
        return video_out, choice, mapping

    def _pts_of(self, index: int) -> int:
        # Only for frames without a timestamp (some AVI files): evenly spaced at the frame rate.
        return round(index / (self.rate * self.video_in.time_base))

    def _open_video(
        self, out: Any, muxer: str, frame: Any, layout: FrameLayout
    ) -> tuple[Any, EncoderChoice]:
        source = self.video_in
        choice = choose_encoder(
            self.av,
            input_codec=source.codec_context.name,
            input_pix_fmt=frame.format.name,
            supported=set(out.supported_codecs),
            container=muxer,
            codec=self.options.codec,
            crf=self.options.crf,
            pix_fmt=self.options.pix_fmt,
        )
        height, width = self.task.output_shape(frame.height, frame.width)
        _check_subsampling(self.av, choice.pix_fmt, width, height)
        stream = out.add_stream(choice.codec, rate=self.rate)
        stream.width, stream.height, stream.pix_fmt = width, height, choice.pix_fmt
        stream.options = dict(choice.options)
        # Timestamps go through in the input's units, so every frame keeps its exact time.
        stream.time_base = source.time_base
        context = stream.codec_context
        context.time_base = source.time_base
        context.color_range = layout.color_range
        context.colorspace = layout.colorspace
        context.color_primaries = frame.color_primaries
        context.color_trc = frame.color_trc
        if source.sample_aspect_ratio:
            stream.sample_aspect_ratio = source.sample_aspect_ratio
        matrix = display_matrix(frame)
        if matrix is not None:
            stream.set_display_matrix(matrix)
        stream.metadata.update(
            {k: v for k, v in source.metadata.items() if k in ("language", "title")}
        )
        return stream, choice


def _check_subsampling(av: Any, pix_fmt: str, width: int, height: int) -> None:
    """Refuse sizes a chroma-subsampled format cannot hold (FFmpeg would only say "error")."""
    probe = av.VideoFormat(pix_fmt, 64, 64)
    step_x, step_y = 64 // probe.chroma_width(), 64 // probe.chroma_height()
    if width % step_x or height % step_y:
        raise MemNetError(
            f"the {width}x{height} output cannot be stored as {pix_fmt} (it needs a size "
            f"divisible by {step_x}x{step_y}); use e.g. --pix-fmt yuv444p"
        )
