"""Video frames restored in batches: every frame, in order, with its time, as if alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av", reason="video restoration needs the video extra (PyAV)")

import memnet  # noqa: E402
from memnet.video import EncodeOptions, restore_video  # noqa: E402
from memnet.video.frames import frame_to_array, layout_of  # noqa: E402
from test_restore_batches import batching, counted_passes, own_planes  # noqa: E402
from test_video import FRAMES, HEIGHT, WIDTH, decoded  # noqa: E402

LOSSLESS = EncodeOptions(codec="ffv1", pix_fmt="bgr0")  # decoded output == what was restored


@pytest.mark.parametrize("frames_per_pass", [4, 3])
def test_batched_frames_keep_count_order_time_and_equal_each_frame_alone(
    video_clip: Path,
    random_denoise_weights: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    frames_per_pass: int,
) -> None:
    restorer = memnet.load(
        random_denoise_weights, task="denoise", device="cpu"
    )  # rgb: 3 planes a frame
    engine = restorer.restorer
    assert engine is not None
    inputs, _ = decoded(video_clip)
    alone = [restorer(frame_to_array(f, layout_of(f))) for f in inputs]
    # A budget for `frames_per_pass` frames' passes (and half a plane more) and their own
    # planes, which share the CPU's memory, and batching on.
    own = frames_per_pass * own_planes(
        frame_to_array(inputs[0], layout_of(inputs[0])), "denoise", "rgb"
    )
    passes = batching(
        engine, monkeypatch, 3 * frames_per_pass + 0.5, height=HEIGHT, width=WIDTH, extra=own
    )
    progress: list[tuple[int, int | None]] = []
    target = tmp_path / "out.mp4"
    result = restore_video(
        restorer, video_clip, target, options=LOSSLESS, progress=lambda *a: progress.append(a)
    )
    # FRAMES is not a multiple of either size: the last, shorter batch is kept.
    full, rest = divmod(FRAMES, frames_per_pass)
    assert passes == [3 * frames_per_pass] * full + [3 * rest]
    assert result.frames == FRAMES
    assert progress == [(done, FRAMES) for done in range(1, FRAMES + 1)]  # still per frame
    outputs, _ = decoded(target)
    assert [f.pts for f in outputs] == [f.pts for f in inputs]
    assert [f.time for f in outputs] == [f.time for f in inputs]
    for single, restored in zip(alone, outputs, strict=True):
        batched = restored.to_ndarray(format="rgb24").astype(np.int16)
        # Batched kernels may round differently (tests/test_restore_batches.py bounds it in
        # float): at most one 8-bit level, where a value sits on a rounding edge.
        assert np.abs(batched - single.astype(np.int16)).max() <= 1


def test_on_the_cpu_frames_run_one_pass_each_exactly_as_before(
    video_clip: Path, random_denoise_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    restorer = memnet.load(random_denoise_weights, task="denoise", device="cpu")
    engine = restorer.restorer
    assert engine is not None
    monkeypatch.setattr(engine, "memory_budget", lambda: 1 << 40)  # room for many frames
    passes = counted_passes(engine, monkeypatch)
    restore_video(restorer, video_clip, tmp_path / "out.mp4", options=LOSSLESS)
    assert passes == [1] * (3 * FRAMES)
    outputs, _ = decoded(tmp_path / "out.mp4")
    inputs, _ = decoded(video_clip)
    for source, restored in zip(inputs, outputs, strict=True):
        as_image = restorer(frame_to_array(source, layout_of(source)))
        assert np.array_equal(restored.to_ndarray(format="rgb24"), as_image)
