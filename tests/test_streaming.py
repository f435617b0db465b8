"""Row-streamed inference computes the whole-image result in memory that grows with width only."""

from __future__ import annotations

import gc
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from memnet.inference import engine, native, winograd
from memnet.inference.engine import Restorer
from memnet.inference.fast_layers import fused_conv_available
from memnet.inference.fast_network import InferenceMemNet
from memnet.inference.memory import WINDOW_COPY_BYTES
from memnet.inference.planning import PROGRESS_ROWS, STREAM_FROM_PIXELS
from memnet.inference.row_buffers import RowBuffer
from memnet.inference.streaming import StreamedMemNet, _Strip, folds_activation
from memnet.model import PRESETS
from rounding import inference_bound
from test_inference_speedpath import preset_case, trained_like

pytestmark = pytest.mark.skipif(not fused_conv_available(), reason="needs oneDNN's fused convs")


@pytest.mark.parametrize("name", list(PRESETS))
def test_streaming_matches_the_whole_image_pass_for_every_preset(name: str) -> None:
    fast, x, plain = preset_case(name)
    with torch.inference_mode():
        whole = fast(x)
        streamed = StreamedMemNet(fast, rows=5)(x)
    # The same arithmetic strip by strip; only oneDNN's choice of kernel for a strip's shape
    # (which differs between CPUs) can reorder a sum, so rounding is all that may differ.
    bound = inference_bound(fast.config, plain.abs().max().item())
    assert (streamed - whole).abs().max() <= bound
    assert (streamed - plain).abs().max() <= bound


@pytest.mark.parametrize(("height", "rows"), [(1, 4), (2, 1), (9, 1), (9, 9), (9, 64), (40, 3)])
def test_borders_and_strip_sizes(height: int, rows: int) -> None:
    # Images shorter than a strip, than the network's depth, and strips of a single row.
    fast = InferenceMemNet(trained_like("tiny", seed=1))
    x = torch.rand(2, 1, height, 11)
    with torch.inference_mode():
        whole = fast(x)
        bound = inference_bound(fast.config, whole.abs().max().item())
        assert (StreamedMemNet(fast, rows=rows)(x) - whole).abs().max() <= bound


@pytest.mark.parametrize("use_winograd", [True, False])
@pytest.mark.parametrize(
    ("height", "rows"), [(1, 4), (2, 1), (5, 4), (9, 1), (9, 4), (13, 64), (40, 3)]
)
def test_conv_a_reads_h_activated_or_an_activated_copy(
    use_winograd: bool, height: int, rows: int
) -> None:
    # With the Winograd kernel each conv_a activates H as it reads it, padding the image's top
    # and bottom with zero rows itself; without, the stream keeps an activated copy of H with
    # zero border rows. Both must be the whole-image pass, at every border and strip height.
    if use_winograd and winograd.kernel() is None:
        pytest.skip(f"Winograd kernel: {winograd.kernel_status()}")
    # The smallest width the kernel takes: two vectors (16 channels for AVX2, 32 for AVX-512).
    model = trained_like("tiny", seed=2, channels=2 * native.vector_lanes())
    with winograd.forced(use_winograd):
        fast = InferenceMemNet(model)
    assert folds_activation(fast) is use_winograd
    x = torch.rand(2, 1, height, 13)
    with torch.inference_mode():
        plain = model(x)
        streamed = StreamedMemNet(fast, rows=rows)
        result = streamed(x)
    bound = inference_bound(fast.config, plain.abs().max().item())
    assert (result - plain).abs().max() <= bound
    assert (result - fast(x)).abs().max() <= bound
    assert streamed.peak_bytes <= streamed.bytes_for_width(13)


def test_ring_buffers_wrap_and_the_result_is_the_whole_image_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With the Winograd kernel the memories, H and the inner rows are rings: on an image many
    # strips tall the kernel reads and writes rows that wrap round their storage.
    if winograd.kernel() is None:
        pytest.skip(f"Winograd kernel: {winograd.kernel_status()}")
    model = trained_like("tiny", seed=5, channels=2 * native.vector_lanes())
    with winograd.forced(True):
        fast = InferenceMemNet(model)
    split_calls = []
    run = winograd.WinogradConv.__call__

    def counting(self: winograd.WinogradConv, x: object, *args: object, **kwargs: object) -> object:
        tensors = [x, kwargs.get("out"), kwargs.get("add")]
        split_calls.append(any(isinstance(t, winograd.SplitRows) for t in tensors))
        return run(self, x, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(winograd.WinogradConv, "__call__", counting)
    x = torch.rand(1, 1, 90, 13)
    with torch.inference_mode():
        plain = model(x)
        result = StreamedMemNet(fast, rows=4)(x)
    assert _Strip(fast, x.contiguous(memory_format=torch.channels_last), 4).ring
    assert sum(split_calls) > 10
    bound = inference_bound(fast.config, plain.abs().max().item())
    assert (result - plain).abs().max() <= bound


def test_memory_depends_on_the_width_not_the_height() -> None:
    fast = InferenceMemNet(trained_like("m4r4c32", seed=2))
    peaks = {}
    for height, width in [(150, 8), (450, 8), (150, 16)]:
        streamed = StreamedMemNet(fast, rows=8)
        with torch.inference_mode():
            streamed(torch.rand(1, 1, height, width))
        peaks[height, width] = streamed.peak_bytes
        # The bound the restorer plans with holds and is not wildly pessimistic.
        assert peaks[height, width] <= streamed.bytes_for_width(width)
        assert streamed.bytes_for_width(width) <= 1.3 * peaks[height, width]
    assert peaks[450, 8] == peaks[150, 8]
    assert peaks[150, 16] == 2 * peaks[150, 8]
    whole = fast.bytes_per_pixel() * 450 * 8
    assert peaks[450, 8] < whole / 2  # far below a whole-image pass of the tall image


def test_bound_holds_for_the_paper_presets() -> None:
    for name in ("tiny", "m6r6"):
        fast = InferenceMemNet(trained_like(name, seed=3))
        for rows in (4, 16):
            streamed = StreamedMemNet(fast, rows=rows)
            with torch.inference_mode():
                streamed(torch.rand(1, 1, 200, 2))
            assert streamed.peak_bytes <= streamed.bytes_for_width(2) <= 1.5 * streamed.peak_bytes


def test_restorer_streams_and_splits_only_the_width(monkeypatch: pytest.MonkeyPatch) -> None:
    model = trained_like("tiny", seed=4)
    restorer = Restorer(model, device="cpu")
    streamed = restorer.streamed
    assert isinstance(streamed, StreamedMemNet)
    # a stream 100 px wide, and a 1000-row column that wide its input copy and output
    budget = streamed.bytes_for_width(100) + WINDOW_COPY_BYTES * 1000 * 100
    monkeypatch.setattr(engine, "memory_budget", lambda device: budget)
    assert restorer.plan(20, 20).how == "whole"  # fits whole: runs whole, not streamed
    tall = restorer.plan(3000, 100)  # too large whole, but streamed at any height
    assert (tall.how, tall.grid) == ("streamed", None)
    assert tall.views[0].batches[0].strip_rows == streamed.rows_for(100)
    assert tall.memory_bytes == streamed.bytes_for_width(100) <= budget
    wide = restorer.plan(1000, 300)
    assert wide.how == "tiled"
    assert wide.grid is not None
    assert len(wide.grid) > 1
    for rows, cols, _, _ in wide.grid:
        assert (rows.start, rows.stop) == (0, 1000)
        assert streamed.bytes_for_width(cols.stop - cols.start) <= budget
    assert all(batch.streamed for batch in wide.views[0].batches)
    assert wide.memory_bytes <= budget
    image = np.random.default_rng(0).random((1000, 300))
    whole = Restorer(model, tile=0, stream=False, device="cpu")(image)
    assert np.abs(restorer(image) - whole).max() <= inference_bound(
        model.config, np.abs(whole).max()
    )


def test_a_large_image_runs_streamed_even_where_it_fits_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Streamed strips were measured faster than one whole pass from about 600² pixels up
    # (benchmarks/whole-or-streamed-results.md); below that the whole pass runs.
    model = trained_like("tiny", seed=4)
    monkeypatch.setattr(engine, "memory_budget", lambda device: 10**12)  # everything fits
    restorer = Restorer(model, device="cpu")
    assert restorer.streamed is not None
    side = math.isqrt(STREAM_FROM_PIXELS)
    assert restorer.plan(side - 1, side - 1).how == "whole"
    large = restorer.plan(side, side)
    assert (large.how, large.grid) == ("streamed", None)
    assert large.views[0].batches[0].strip_rows == restorer.streamed.rows_for(side)
    assert Restorer(model, stream=False, device="cpu").plan(side, side).how == "whole"
    # A short, wide image whose stream would hold more than the whole pass: the budget decides.
    height, width = 6, STREAM_FROM_PIXELS // 6
    whole_bytes = height * width * restorer.bytes_per_pixel
    assert restorer.streamed.bytes_for_width(width) > whole_bytes
    monkeypatch.setattr(engine, "memory_budget", lambda device: whole_bytes)
    assert Restorer(model, device="cpu").plan(height, width).how == "whole"


def test_bad_input_is_refused() -> None:
    streamed = StreamedMemNet(InferenceMemNet(trained_like("tiny")))
    with pytest.raises(ValueError, match="expects input of shape"):
        streamed(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match="fp32 input on a CPU"):
        streamed(torch.rand(1, 1, 8, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="positive"):
        StreamedMemNet(InferenceMemNet(trained_like("tiny")), rows=0)


def test_streamed_windows_report_progress_in_bands_of_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "memory_budget", lambda device: 10**10)
    restorer = Restorer(trained_like("tiny", seed=5), device="cpu")
    # No window fits whole: every one is streamed.
    restorer.planner = replace(restorer.planner, bytes_per_pixel=10**9)
    height = 2 * PROGRESS_ROWS + 10
    assert restorer.tile_count(height, 20) == 3
    calls: list[tuple[int, int]] = []
    restorer(np.zeros((height, 20)), progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    ensemble = Restorer(trained_like("tiny", seed=5), self_ensemble=True, device="cpu")
    ensemble.planner = replace(ensemble.planner, bytes_per_pixel=10**9)
    assert ensemble.tile_count(height, 20) == 4 * 3 + 4 * 1  # rotated views are 20 rows high
    calls.clear()
    ensemble(np.zeros((height, 20)), progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (16, 16)
    assert len(calls) == 16


def test_a_finished_stream_leaves_nothing_for_the_garbage_collector() -> None:
    # The buffers' reader closures form cycles; left to the collector, every call would keep
    # its hundreds of MB alive until the next collection.
    streamed = StreamedMemNet(InferenceMemNet(trained_like("tiny", seed=6)), rows=4)
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        with torch.inference_mode():
            streamed(torch.rand(1, 1, 30, 12))
        gc.collect()
        left = [obj for obj in gc.garbage if isinstance(obj, (RowBuffer, _Strip))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == []
