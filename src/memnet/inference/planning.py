"""One plan per image: how the network runs over it, in which batches, within what memory.

A `Plan` is decided once per image from its size, the network, the device's memory budget
(read once) and the restorer's settings, and then only executed: every view of the image
(one, or the 8 flips/rotations of self-ensemble) runs whole, streamed over strips of rows or
as a grid of tiles, in batches of equal-size windows; the plan knows the memory it expects
(memnet.inference.memory) and the progress units its execution reports.

A tile is processed with `pad` pixels of real image context on every side that has
neighbours; where a tile touches the image border the network pads with zeros exactly as it
does for the whole image. With a context of at least half the receptive field the stitched
result equals whole-image inference (up to float rounding), while memory is bounded by the tile.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from memnet.inference.memory import WINDOW_COPY_BYTES, streamed_bytes_for_width
from memnet.inference.streaming import default_strip_rows
from memnet.model import MemNetConfig

__all__ = ["Batch", "Layout", "Plan", "Planner", "TileGrid", "best_grid"]

# Bound for the automatic tile size: below MIN_AUTO_TILE the context overhead dominates.
MIN_AUTO_TILE = 64
# Most tiles per image side the automatic tiling considers.
MAX_AUTO_SPLITS = 64
MAX_BATCH = 16
# A streamed window reports progress every this many output rows (a "part" of the image).
PROGRESS_ROWS = 128
# Where streaming is possible, an image of at least this many pixels runs streamed even when it
# fits whole: a whole pass sends every layer's activations through DRAM, a stream keeps a few
# rows of each in the cache. For memnet-sr, streamed was 1.03-1.27× faster from 640² up and
# whole up to 1.10× faster at 512² and below; for m6r6 the two were even up to 640² and
# streamed 1.28-1.60× faster from 1 Mpx (benchmarks/whole-or-streamed-results.md).
STREAM_FROM_PIXELS = 600 * 600

# (source rows, source cols, core rows, core cols); the core is relative to the source.
Tile = tuple[slice, slice, slice, slice]


@dataclass(frozen=True)
class TileGrid:
    """Tiles of at most `tile` × `tile` covering an H × W image, each with its padded source window."""

    height: int
    width: int
    tile: int
    pad: int
    tile_width: int = 0  # 0: tiles are `tile` wide as well as high

    def __iter__(self) -> Iterator[Tile]:
        """Yield (source rows, source cols, core rows, core cols); the core is relative to the source."""
        for top, bottom in _spans(self.height, self.tile):
            for left, right in _spans(self.width, self.tile_width or self.tile):
                src_top, src_left = max(top - self.pad, 0), max(left - self.pad, 0)
                src_bottom = min(bottom + self.pad, self.height)
                src_right = min(right + self.pad, self.width)
                yield (
                    slice(src_top, src_bottom),
                    slice(src_left, src_right),
                    slice(top - src_top, bottom - src_top),
                    slice(left - src_left, right - src_left),
                )

    def __len__(self) -> int:
        rows = len(_spans(self.height, self.tile))
        return rows * len(_spans(self.width, self.tile_width or self.tile))


def _spans(length: int, tile: int) -> list[tuple[int, int]]:
    # Spread the tiles evenly so that they all have (nearly) the same size.
    count = max(1, math.ceil(length / tile))
    step = math.ceil(length / count)
    return [(start, min(start + step, length)) for start in range(0, length, step)]


def _window_lengths(length: int, tile: int, pad: int) -> list[int]:
    # Border tiles get context on their inner side only.
    return [min(stop + pad, length) - max(start - pad, 0) for start, stop in _spans(length, tile)]


def best_grid(height: int, width: int, pad: int, max_window_pixels: int) -> TileGrid:
    """The tiling of an H × W image that computes the fewest pixels with windows that fit.

    Context is recomputed where windows overlap, so fewer, larger and rectangular windows
    (e.g. two full-width strips) often beat a grid of squares. Falls back to the smallest
    windows considered when none fits.
    """
    best: tuple[int, int, TileGrid] | None = None
    smallest: tuple[int, TileGrid] | None = None
    for rows in range(1, min(height, MAX_AUTO_SPLITS) + 1):
        tile_h = math.ceil(height / rows)
        if rows > 1 and tile_h < MIN_AUTO_TILE:
            break
        heights = _window_lengths(height, tile_h, pad)
        for cols in range(1, min(width, MAX_AUTO_SPLITS) + 1):
            tile_w = math.ceil(width / cols)
            if cols > 1 and tile_w < MIN_AUTO_TILE:
                break
            widths = _window_lengths(width, tile_w, pad)
            grid = TileGrid(height, width, tile_h, pad, tile_w)
            largest = max(heights) * max(widths)
            if smallest is None or largest < smallest[0]:
                smallest = (largest, grid)
            if largest > max_window_pixels:
                continue
            key = (sum(heights) * sum(widths), len(heights) * len(widths))
            if best is None or key < best[:2]:
                best = (*key, grid)
    if best is not None:
        return best[2]
    assert smallest is not None
    return smallest[1]


@dataclass(frozen=True)
class Batch:
    """Windows of one size that run in one forward pass (streamed ones one after another)."""

    tiles: tuple[Tile, ...]
    height: int
    width: int
    # Rows per strip when the windows run streamed; None when each runs whole.
    strip_rows: int | None
    memory_bytes: int

    @property
    def streamed(self) -> bool:
        """Whether the windows run streamed over strips of rows."""
        return self.strip_rows is not None

    @property
    def parts(self) -> int:
        """Progress units of one window: once when whole, every PROGRESS_ROWS rows streamed."""
        return math.ceil(self.height / PROGRESS_ROWS) if self.streamed else 1

    @property
    def units(self) -> int:
        """Progress units of the whole batch."""
        return len(self.tiles) * self.parts


@dataclass(frozen=True)
class Layout:
    """How one H × W view runs: whole, streamed (whole, over strips) or tiled, and its batches."""

    height: int
    width: int
    how: Literal["whole", "streamed", "tiled"]
    grid: TileGrid | None  # None: the view is one window
    batches: tuple[Batch, ...]

    @property
    def units(self) -> int:
        """Progress units of this view."""
        return sum(batch.units for batch in self.batches)

    @property
    def memory_bytes(self) -> int:
        """Expected activation memory of the largest batch."""
        return max(batch.memory_bytes for batch in self.batches)


@dataclass(frozen=True)
class Plan:
    """The plan for one H × W image: one layout per view that goes through the network."""

    height: int
    width: int
    budget: int  # the memory budget it was planned with (bytes)
    views: tuple[Layout, ...]  # one, or the 8 flips/rotations of self-ensemble in order

    @property
    def units(self) -> int:
        """Progress units its execution reports: what a progress bar counts to."""
        return sum(view.units for view in self.views)

    @property
    def memory_bytes(self) -> int:
        """Expected activation memory of its largest forward pass."""
        return max(view.memory_bytes for view in self.views)

    @property
    def how(self) -> Literal["whole", "streamed", "tiled"]:
        """How the upright view runs."""
        return self.views[0].how

    @property
    def grid(self) -> TileGrid | None:
        """The upright view's tile grid (None: one window)."""
        return self.views[0].grid


@dataclass(frozen=True)
class Planner:
    """A restorer's fixed planning settings; `plan(H, W, budget)` decides one image."""

    config: MemNetConfig
    bytes_per_pixel: int  # of one whole window, for the network that runs
    pad: int  # tile context, px per side
    tile: int | None = None  # None: automatic; 0: always whole; N: tiles of at most N × N
    batch_size: int | None = None  # None: as many windows as the budget holds
    self_ensemble: bool = False
    can_stream: bool = False  # windows too large whole may run streamed

    def plan(self, height: int, width: int, budget: int) -> Plan:
        """The plan for an H × W image with `budget` bytes of activation memory."""
        upright = self.layout(height, width, budget)
        if not self.self_ensemble:
            return Plan(height, width, budget, (upright,))
        # Four of the eight views are rotated by 90°: H and W swap.
        turned = upright if height == width else self.layout(width, height, budget)
        views = tuple(turned if k % 2 else upright for k in range(8))
        return Plan(height, width, budget, views)

    def layout(self, height: int, width: int, budget: int) -> Layout:
        """How one H × W view runs."""
        grid = self._grid(height, width, budget)
        if grid is None:
            whole = (slice(0, height), slice(0, width), slice(0, height), slice(0, width))
            batch = self._batch((whole,), height, width, budget)
            return Layout(height, width, "streamed" if batch.streamed else "whole", None, (batch,))
        # Windows of equal size (all inner tiles, and each kind of border tile) run together.
        groups: dict[tuple[int, int], list[Tile]] = defaultdict(list)
        for tile in grid:
            rows, cols = tile[0], tile[1]
            groups[(rows.stop - rows.start, cols.stop - cols.start)].append(tile)
        batches: list[Batch] = []
        for (win_h, win_w), tiles in groups.items():
            size = self._batch_size(win_h * win_w, budget)
            for first in range(0, len(tiles), size):
                chunk = tuple(tiles[first : first + size])
                batches.append(self._batch(chunk, win_h, win_w, budget, copied=True))
        return Layout(height, width, "tiled", grid, tuple(batches))

    def images_per_pass(self, plan: Plan) -> int:
        """How many images of `plan`'s size fit one forward pass together within its budget
        (the memory one image's plan may use): 1 unless one image runs whole, without
        self-ensemble."""
        if self.self_ensemble or plan.how != "whole":
            return 1
        return self._batch_size(plan.height * plan.width, plan.budget)

    def _grid(self, height: int, width: int, budget: int) -> TileGrid | None:
        if self.tile is not None:
            tile = int(self.tile)
            if tile == 0 or (height <= tile and width <= tile):
                return None
            return TileGrid(height, width, tile, self.pad)
        if height * width * self.bytes_per_pixel <= budget:
            return None
        if self.can_stream:
            return self._column_grid(height, width, budget)
        grid = best_grid(height, width, self.pad, budget // self.bytes_per_pixel)
        return None if len(grid) == 1 else grid

    def _column_grid(self, height: int, width: int, budget: int) -> TileGrid | None:
        """Full-height windows, as few as fit: streamed memory depends on the width only."""
        columns, tile_w = 1, width
        for columns in range(1, max(1, width // MIN_AUTO_TILE) + 1):
            tile_w = math.ceil(width / columns)
            widest = max(_window_lengths(width, tile_w, self.pad))
            # a column (not the whole image) also holds its input copy and output
            copies = 0 if columns == 1 else WINDOW_COPY_BYTES * height * widest
            if self._streamed_bytes(widest) + copies <= budget:
                break
        return None if columns == 1 else TileGrid(height, width, height, self.pad, tile_w)

    def _streamed_bytes(self, width: int) -> int:
        # Counting the activated copies that a stream without the Winograd kernel keeps: the
        # bound holds whichever path the network takes.
        return streamed_bytes_for_width(self.config, width, default_strip_rows(width))

    def _batch_size(self, window_pixels: int, budget: int) -> int:
        if self.batch_size is not None:
            return int(self.batch_size)
        return max(1, min(MAX_BATCH, budget // max(1, window_pixels * self.bytes_per_pixel)))

    def _batch(
        self,
        tiles: tuple[Tile, ...],
        height: int,
        width: int,
        budget: int,
        copied: bool = False,
    ) -> Batch:
        # A window runs streamed when it does not fit the budget whole, or when it is a whole
        # image large enough to run faster so (and its stream fits); a streamed tile
        # (`copied`: not the whole image) holds its input copy and output besides.
        fits = height * width * self.bytes_per_pixel <= budget
        large = not copied and height * width >= STREAM_FROM_PIXELS
        if self.can_stream and (not fits or (large and self._streamed_bytes(width) <= budget)):
            rows = default_strip_rows(width)
            copies = WINDOW_COPY_BYTES * height * width if copied else 0
            return Batch(tiles, height, width, rows, self._streamed_bytes(width) + copies)
        memory = len(tiles) * height * width * self.bytes_per_pixel
        return Batch(tiles, height, width, None, memory)
