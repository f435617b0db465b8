"""A streamed activation's rows read back as written, whether they move or sit in a ring."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from memnet.inference.row_buffers import RING_SLACK_ROWS, RowBuffer, runs
from memnet.inference.winograd import SplitRows

WIDTH, CHANNELS = 3, 2


def _row_values(start: int, stop: int) -> torch.Tensor:
    """A (1, C, rows, W) block whose every sample names its image row (0 in the zero border
    above row 0)."""
    rows = torch.arange(start, stop, dtype=torch.float32).clamp(min=0).view(1, 1, -1, 1)
    return rows.expand(1, CHANNELS, stop - start, WIDTH)


def _read(buffer: RowBuffer, start: int, stop: int) -> torch.Tensor:
    got = buffer.rows(start, stop)
    if isinstance(got, SplitRows):
        return torch.cat([got.head, got.tail], dim=2)
    return got


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.tuples(st.integers(1, 9), st.integers(0, 12)), min_size=1, max_size=40),
    border=st.integers(0, 1),
)
def test_ring_and_moving_buffers_keep_the_same_rows(
    steps: list[tuple[int, int]], border: int
) -> None:
    like = torch.empty(1, CHANNELS, 1, WIDTH)
    height = 10_000
    buffers = [RowBuffer(CHANNELS, height, like, border, ring=ring) for ring in (False, True)]
    keep = [0]  # how many of the newest rows the reader still needs
    for buffer in buffers:
        buffer.readers.append(lambda buffer=buffer: buffer.hi - keep[0])
    wrapped = False
    need = border  # the most rows the ring has had to hold at once
    for count, kept in steps:
        keep[0] = kept
        need = max(need, buffers[1].hi - buffers[1].lo + count)
        for buffer in buffers:
            start = buffer.hi
            buffer.append(count)
            for a, b in runs(start, buffer.hi, buffer):
                buffer.view(a, b).copy_(_row_values(a, b))
            buffer.finish(buffer.hi)
            buffer.release()
        moving, ring = buffers
        assert (moving.lo, moving.hi) == (ring.lo, ring.hi)
        for buffer in buffers:
            # Every kept row reads back as written, as one tensor or as two runs.
            assert torch.equal(
                _read(buffer, buffer.lo, buffer.hi), _row_values(buffer.lo, buffer.hi)
            )
        wrapped |= bool(ring.wraps(ring.lo, ring.hi))
        # A ring holds no more than it has had to, plus its slack.
        assert ring.data.shape[2] <= need + RING_SLACK_ROWS
    if len(steps) > 30:
        assert wrapped or all(kept == 0 for _, kept in steps)


def test_a_ring_wraps_and_its_runs_are_each_one_view() -> None:
    like = torch.empty(1, CHANNELS, 1, WIDTH)
    ring = RowBuffer(CHANNELS, 100, like, ring=True)
    ring.readers.append(lambda: ring.hi - 3)
    for _ in range(6):
        start = ring.hi
        ring.append(4)
        for a, b in runs(start, ring.hi, ring):
            ring.view(a, b).copy_(_row_values(a, b))
        ring.finish(ring.hi)
        ring.release()
    capacity = ring.data.shape[2]
    assert capacity < ring.hi  # the 24 rows written went round its storage
    split = ring.rows(ring.lo, ring.hi)
    cut = ring.wraps(ring.lo, ring.hi)
    if isinstance(split, SplitRows):
        assert cut == [ring.lo + split.head.shape[2]]
    else:
        assert cut == []
    for a, b in runs(ring.lo, ring.hi, ring):
        assert torch.equal(ring.view(a, b), _row_values(a, b))
