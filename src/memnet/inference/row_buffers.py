"""The rows of one activation that a streamed network (memnet.inference.streaming) still needs.

A `RowBuffer` holds rows [lo, hi) of a (1, C, H, W) activation, addressed by their image row,
in one channels_last tensor, where any run of rows is a contiguous (rows·W, C) block that convs
and matrix products read and write in place. The pipeline appends rows at the bottom and its
readers release them from the top, so the rows kept slide down the image. Two ways to store
that:

- moving: rows are stored in order; when the next rows do not fit below the last, the kept
  ones are moved to the front. Every view is one tensor, as oneDNN's convs need. A long-term
  memory keeps ~40 rows for the last gate, so it moves them about once per strip written.
- ring: row r is stored at index (r - origin) mod capacity, and nothing ever moves. A run that
  crosses the end is two tensors (`rows` gives them as `winograd.SplitRows`, which memnet's
  Winograd kernel reads and writes in place); element-wise work is cut where it wraps (`runs`).
  In a cProfile of a 12 Mpx `memnet restore --scale 4` of memnet-sr the moves took 1.6 s of
  23 s (benchmarks/winograd.md); a ring also needs no slack to move into.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import torch
from torch import Tensor

from memnet.inference.winograd import Rows, SplitRows

__all__ = ["RING_SLACK_ROWS", "RowBuffer", "runs"]

# A ring grows (copying its rows once) when more must be kept than it holds: while the
# pipeline fills up, and where what is kept varies by a row or two from step to step. This much
# room beyond the need makes the second rare.
RING_SLACK_ROWS = 4


class RowBuffer:
    """Rows of one (1, C, H, W) activation that some later layer still reads.

    `done` is the number of finished rows (a gate still being accumulated is stored ahead of
    it). A buffer read by a conv also holds `border` zero rows above row 0 and below the last
    row: the conv's zero padding at the image's edges. `ring`: store the rows as a ring (only
    for buffers that memnet's Winograd kernel and element-wise ops alone read and write).
    """

    def __init__(
        self, channels: int, height: int, like: Tensor, border: int = 0, *, ring: bool = False
    ) -> None:
        self.height, self.border, self.ring = height, border, ring
        self.data = _strip_tensor((1, channels, 0, like.shape[-1]), like)
        self.origin = self.lo = self.hi = -border  # image row stored at index 0; stored rows
        self.done = 0
        self.readers: list[Callable[[], int]] = []  # each: the lowest row a reader still needs
        if border:
            self._zero_next(border)

    def nbytes(self) -> int:
        return self.data.numel() * self.data.element_size()

    def _index(self, row: int) -> int:
        capacity = self.data.shape[2]
        return (row - self.origin) % capacity if self.ring and capacity else row - self.origin

    def view(self, start: int, stop: int) -> Tensor:
        """Rows start .. stop as one tensor; in a ring, a run that does not wrap (`runs`)."""
        first = self._index(start)
        if self.ring and stop > start:
            assert first + stop - start <= self.data.shape[2], "a ring's run wraps: cut it"
        return self.data[:, :, first : first + stop - start]

    def rows(self, start: int, stop: int) -> Rows:
        """Rows start .. stop for the Winograd kernel: one tensor, or two where a ring wraps."""
        first, capacity = self._index(start), self.data.shape[2]
        if not self.ring or first + stop - start <= capacity:
            return self.data[:, :, first : first + stop - start]
        return SplitRows(
            self.data[:, :, first:], self.data[:, :, : stop - start - (capacity - first)]
        )

    def wraps(self, start: int, stop: int) -> list[int]:
        """The rows in (start, stop) where a ring's storage starts again at its front."""
        capacity = self.data.shape[2]
        if not self.ring or not capacity:
            return []
        row = start + (-(start - self.origin)) % capacity
        return [row] if start < row < stop else []

    def append(self, count: int) -> None:
        """Room for the next `count` rows (uninitialised): rows hi .. hi + count."""
        live = self.hi - self.lo
        if self.ring:
            if live + count > self.data.shape[2]:
                self._regrow(live + count + RING_SLACK_ROWS)
        elif self.hi + count - self.origin > self.data.shape[2]:
            if live + count > self.data.shape[2]:
                # Grow with slack as large as what is kept, so that moving the kept rows
                # to the front happens only every few steps.
                self._regrow(live + count + max(live, 4))
            else:
                if live:
                    kept = self.view(self.lo, self.hi)
                    overlaps = self.lo - self.origin < live
                    self.data[:, :, :live] = kept.clone() if overlaps else kept
                self.origin = self.lo
        self.hi += count

    def _regrow(self, capacity: int) -> None:
        """Move the kept rows to the front of new storage of `capacity` rows."""
        grown = _strip_tensor((*self.data.shape[:2], capacity, self.data.shape[3]), self.data)
        for start, stop in runs(self.lo, self.hi, self):
            grown[:, :, start - self.lo : stop - self.lo] = self.view(start, stop)
        self.data, self.origin = grown, self.lo

    def _zero_next(self, count: int) -> None:
        start = self.hi
        self.append(count)
        for a, b in runs(start, self.hi, self):
            self.view(a, b).zero_()

    def finish(self, rows: int) -> None:
        """Mark rows up to `rows` finished; the bottom border follows the last row."""
        self.done = rows
        if rows == self.height and self.border and self.hi == self.height:
            self._zero_next(self.border)

    def readable(self, radius: int) -> int:
        """Rows a consumer with this vertical reach can compute from what is finished."""
        return self.height if self.done == self.height else self.done - radius

    def release(self) -> None:
        if self.readers:
            self.lo = max(self.lo, min(min(reader() for reader in self.readers), self.hi))

    def close(self) -> None:
        """Free the storage now: the readers' closures make cycles that the garbage collector
        would otherwise free only at its next run, hundreds of MB later."""
        self.readers.clear()
        self.data = self.data.new_empty(0)


def runs(start: int, stop: int, *buffers: RowBuffer) -> list[tuple[int, int]]:
    """start .. stop cut where any of `buffers` wraps: over each run every buffer's `view` is
    one tensor. Element-wise work done run by run gives what it gives over the whole span."""
    cuts = sorted({row for buffer in buffers for row in buffer.wraps(start, stop)})
    edges = [start, *cuts, stop]
    return [(a, b) for a, b in pairwise(edges) if b > a]


def _strip_tensor(shape: tuple[int, int, int, int], like: Tensor) -> Tensor:
    """Uninitialised storage, channels_last as the whole-image pass has it.

    One channel is stored the same either way, but oneDNN picks its kernel by the strides:
    the plain ones are what `x.contiguous(memory_format=torch.channels_last)` gives a
    one-channel input, so the stream's first conv matches the whole-image pass bit for bit.
    """
    layout = torch.contiguous_format if shape[1] == 1 else torch.channels_last
    return torch.empty(shape, dtype=like.dtype, device=like.device, memory_format=layout)
