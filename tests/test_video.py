"""Video restoration (memnet[video]): clips made here with PyAV, with audio and subtitles."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av", reason="video restoration needs the video extra (PyAV)")

import memnet  # noqa: E402
from memnet.cli import main  # noqa: E402
from memnet.video import EncodeOptions, restore_video  # noqa: E402
from memnet.video.frames import frame_to_array, layout_of  # noqa: E402

FRAMES = 10
RATE = Fraction(24)
WIDTH, HEIGHT = 48, 32
SAMPLE_RATE = 16000
FULL_RANGE = 2  # AVCOL_RANGE_JPEG
BT709 = 1


def _picture(index: int) -> np.ndarray:
    """A moving grey ramp with texture, from near black to near white.

    Grey keeps the chroma neutral, so 4:2:0 subsampling loses nothing and a decoded frame
    must match this picture to the rounding of the two colour conversions."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = 8 + 230 * (x + 2 * index) / (WIDTH + 2 * FRAMES)
    texture = 6 * np.sin(x * 0.9 + index) * np.cos(y * 0.7)
    grey = np.clip(np.rint(base + texture), 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def make_clip(path: Path) -> Path:
    """A lossless H.264 clip, full range BT.709, rotated 90°, with a sine AAC track and a
    subtitle."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=RATE, options={"qp": "0"})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        video.codec_context.color_range = FULL_RANGE
        video.codec_context.colorspace = BT709
        video.set_display_rotation(90)
        audio = out.add_stream("aac", rate=SAMPLE_RATE)
        subtitle = out.add_mux_stream("mov_text")
        subtitle.time_base = Fraction(1, 1000)
        seconds = np.arange(SAMPLE_RATE * FRAMES // int(RATE)) / SAMPLE_RATE
        tone = (0.3 * np.sin(2 * np.pi * 440 * seconds)).astype(np.float32)[None]
        for first in range(0, tone.shape[1], 1024):
            samples = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(tone[:, first : first + 1024]), format="fltp", layout="mono"
            )
            samples.sample_rate, samples.pts = SAMPLE_RATE, first
            out.mux(audio.encode(samples))
        out.mux(audio.encode(None))
        text = b"memnet"
        cue = av.Packet(len(text).to_bytes(2, "big") + text)
        cue.stream, cue.time_base = subtitle, subtitle.time_base
        cue.pts = cue.dts = 0
        cue.duration = 200
        out.mux(cue)
        for index in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(_picture(index), format="rgb24")
            frame = frame.reformat(
                format="yuv420p", dst_colorspace=BT709, dst_color_range=FULL_RANGE
            )
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return path


def packets(path: Path, kind: str) -> list[tuple[bytes, float | None, float | None]]:
    """(payload, pts s, duration s) of every packet of the first stream of `kind`."""
    with av.open(str(path)) as container:
        stream = next(s for s in container.streams if s.type == kind)
        return [
            (
                bytes(p),
                None if p.pts is None else float(p.pts * p.time_base),
                None if p.duration is None else float(p.duration * p.time_base),
            )
            for p in container.demux(stream)
            if p.size
        ]


def decoded(path: Path) -> tuple[list[object], object]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        return frames, (stream.average_rate, stream.frames, container.duration)


def test_video_output_frames_equal_restoring_each_frame_as_an_image(
    video_clip: Path, random_denoise_weights: Path, tmp_path: Path
) -> None:
    restorer = memnet.load(random_denoise_weights, task="denoise")
    target = tmp_path / "out.mp4"
    # ffv1 in RGB is lossless, so the decoded output is exactly what was restored.
    options = EncodeOptions(codec="ffv1", pix_fmt="bgr0")
    result = restore_video(restorer, video_clip, target, options=options)
    assert (result.frames, result.encoder, result.copied_streams) == (FRAMES, "ffv1", 2)
    inputs, _ = decoded(video_clip)
    outputs, _ = decoded(target)
    assert len(outputs) == len(inputs) == FRAMES
    for source, restored in zip(inputs, outputs, strict=True):
        as_image = restorer(frame_to_array(source, layout_of(source)))
        assert not np.array_equal(as_image, frame_to_array(source, layout_of(source)))
        assert np.array_equal(restored.to_ndarray(format="rgb24"), as_image)
        assert restored.pts is not None
    assert [p[0] for p in packets(target, "audio")] == [p[0] for p in packets(video_clip, "audio")]


def test_cli_restores_a_folder_of_videos_and_images_keeping_time_and_streams(
    video_clip: Path, random_denoise_weights: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    video_clip.rename(folder / "clip.mp4")
    from PIL import Image

    Image.fromarray(_picture(0)).save(folder / "still.png")
    out = tmp_path / "out"
    code = main(
        [
            "restore",
            "-i",
            str(folder),
            "-o",
            str(out),
            "--weights",
            str(random_denoise_weights),
            "-q",
        ]
    )
    assert code == 0
    assert (out / "still.png").is_file()
    source, target = folder / "clip.mp4", out / "clip.mp4"
    inputs, (in_rate, in_count, in_duration) = decoded(source)
    outputs, (out_rate, out_count, out_duration) = decoded(target)
    assert (out_rate, out_count, out_duration) == (in_rate, in_count, in_duration)
    assert out_rate == RATE
    assert out_count == FRAMES
    assert [f.pts * f.time_base for f in outputs] == [f.pts * f.time_base for f in inputs]
    assert all(f.rotation == 90 for f in outputs)
    assert all((f.color_range, f.colorspace) == (FULL_RANGE, BT709) for f in outputs)
    # Audio and subtitle packets are copied, not re-encoded: same bytes at the same times.
    assert packets(target, "audio") == packets(source, "audio")
    assert packets(target, "subtitle") == packets(source, "subtitle")
    assert len(packets(source, "audio")) > 1


def test_full_range_survives_the_colour_round_trip(video_clip: Path, tmp_path: Path) -> None:
    """Full-range frames decode to the pictures they were made from, and an identity restore
    into a lossless codec in the input's own format gives back the same Y plane.

    Each of RGB→YUV and YUV→RGB lands within one level (swscale's fixed-point paths are not
    exactly rounded): at most two levels apart.
    Taking full range for limited would stretch or squeeze levels by 255/219, i.e. up to ~16
    levels at the ends of the ramp."""
    target = tmp_path / "same.mp4"
    restorer = memnet.load("identity", task="denoise")
    result = restore_video(restorer, video_clip, target, options=EncodeOptions(codec="ffv1"))
    assert result.pix_fmt == "yuv420p"
    inputs, _ = decoded(video_clip)
    outputs, _ = decoded(target)
    for index, (source, restored) in enumerate(zip(inputs, outputs, strict=True)):
        rgb = frame_to_array(source, layout_of(source)).astype(int)
        assert np.abs(rgb - _picture(index)).max() <= 2
        y_in = source.to_ndarray(format="yuv420p")[:HEIGHT].astype(int)  # the raw Y plane
        y_out = restored.to_ndarray(format="yuv420p")[:HEIGHT].astype(int)
        assert np.abs(y_in - y_out).max() <= 2


def test_an_interrupted_run_leaves_no_output(video_clip: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "clip.mp4"
    target.parent.mkdir()

    def stop(done: int, total: int | None) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        restore_video(memnet.load("identity", task="denoise"), video_clip, target, progress=stop)
    assert list(target.parent.iterdir()) == []


def test_bad_video_and_mismatched_names_get_one_line_errors(
    video_clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    assert (
        main(
            [
                "restore",
                "-i",
                str(broken),
                "-o",
                str(tmp_path / "o.mp4"),
                "--task",
                "denoise",
                "--method",
                "identity",
            ]
        )
        == 1
    )
    assert (
        main(
            [
                "restore",
                "-i",
                str(video_clip),
                "-o",
                str(tmp_path / "o.png"),
                "--task",
                "denoise",
                "--method",
                "identity",
            ]
        )
        == 1
    )
    assert (
        main(
            [
                "restore",
                "-i",
                str(video_clip),
                "-o",
                str(tmp_path / "o.mp4"),
                "--task",
                "denoise",
                "--method",
                "identity",
                "--video-codec",
                "ffv1",
                "--crf",
                "10",
            ]
        )
        == 1
    )
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 3
    assert "broken.mp4: not a readable video" in errors[0]
    assert "needs one of .mp4" in errors[1]
    assert "ffv1 has no constant-quality setting" in errors[2]
    assert not (tmp_path / "o.mp4").exists()


def test_an_odd_size_for_a_subsampled_format_is_refused_with_a_reason(tmp_path: Path) -> None:
    odd = tmp_path / "odd.mkv"
    with av.open(str(odd), "w") as out:
        video = out.add_stream("ffv1", rate=10)
        video.width, video.height, video.pix_fmt = 33, 21, "yuv444p"
        for index in range(2):
            frame = av.VideoFrame.from_ndarray(np.full((21, 33, 3), 99, np.uint8), "rgb24")
            frame.pts = index
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    restorer = memnet.load("identity", task="denoise")
    target = tmp_path / "out.mkv"
    options = EncodeOptions(codec="libx264", pix_fmt="yuv420p")
    with pytest.raises(memnet.MemNetError, match="33x21 output cannot be stored as yuv420p"):
        restore_video(restorer, odd, target, options=options)
    assert not target.exists()
    assert restore_video(restorer, odd, target).pix_fmt == "yuv444p"  # the input's own format
