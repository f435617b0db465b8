"""Inference engine: run a MemNet over one-channel images of any size, in exact, batched tiles.

A tile is processed with `tile_pad` pixels of real image context on every side that has
neighbours; where a tile touches the image border the network pads with zeros exactly as it
does for the whole image. With a context of at least half the receptive field the stitched
result equals whole-image inference (up to float rounding), while memory is bounded by the tile.
Tiles whose padded windows have the same size run together in one forward pass.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from memnet import devices
from memnet.cpu_settings import retain_freed_memory

# The device and dtype resolvers live in memnet.devices; re-exported for earlier callers.
from memnet.devices import DTYPES, resolve_device, resolve_dtype
from memnet.inference.fast_network import InferenceMemNet, fused_conv_available
from memnet.inference.streaming import StreamedMemNet
from memnet.model import MemNet, MemNetConfig, exact_context

__all__ = [
    "DEFAULT_TILE",
    "DTYPES",
    "Restorer",
    "TileGrid",
    "activation_bytes_per_pixel",
    "best_grid",
    "memory_budget",
    "resolve_device",
    "resolve_dtype",
]

# Output-side tile edge of the former fixed default; kept for callers that want a fixed size.
DEFAULT_TILE = 384
# Bound for the automatic tile size: below MIN_AUTO_TILE the context overhead dominates.
MIN_AUTO_TILE = 64
# Most tiles per image side the automatic tiling considers.
MAX_AUTO_SPLITS = 64
# Activation memory the automatic tiling allows itself on a CPU (and at most a quarter of what
# the machine has free), so that a laptop stays usable while an image is restored: with the
# optimised network this keeps the whole process near 1.3 GB at any image size.
CPU_BUDGET_CAP = 1024**3
MAX_BATCH = 16
# A streamed window reports progress every this many output rows (a "part" of the image).
PROGRESS_ROWS = 128

ProgressCallback = Callable[[int, int], None]


def activation_bytes_per_pixel(config: MemNetConfig, element_bytes: int = 4) -> int:
    """Peak activation memory per input pixel of one forward pass, from the network's shape.

    At the gate of the last block the network holds the M long-term and R short-term memories,
    their concatenation and its normalised copy ((M+R)·C channels each), plus a few C-channel
    temporaries of the recursion. This deliberately errs on the high side.
    """
    m, r, c = config.blocks, config.recursions, config.channels
    return element_bytes * c * (3 * (m + r) + 8)


def _available_memory() -> int:
    """Bytes the OS can still give this process (MemAvailable; physical memory as a fallback)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) // 2
    return CPU_BUDGET_CAP


def memory_budget(device: torch.device) -> int:
    """Activation memory (bytes) that automatic tiling may use on `device`."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free * 0.6)
    if device.type == "mps":
        recommended = getattr(torch.mps, "recommended_max_memory", None)
        total = int(recommended()) if recommended is not None else 8 * 1024**3
        return min(total // 4, CPU_BUDGET_CAP)
    return min(_available_memory() // 4, CPU_BUDGET_CAP)


@dataclass(frozen=True)
class TileGrid:
    """Tiles of at most `tile` × `tile` covering an H × W image, each with its padded source window."""

    height: int
    width: int
    tile: int
    pad: int
    tile_width: int = 0  # 0: tiles are `tile` wide as well as high

    def __iter__(self) -> Iterator[tuple[slice, slice, slice, slice]]:
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


# The 8 flips/rotations of self-ensemble, each with its inverse.
def _dihedral(array: NDArray[np.floating], k: int) -> NDArray[np.floating]:
    out = np.rot90(array, k % 4)
    return out[:, ::-1] if k >= 4 else out


def _dihedral_inverse(array: NDArray[np.floating], k: int) -> NDArray[np.floating]:
    out = array[:, ::-1] if k >= 4 else array
    return np.rot90(out, -(k % 4))


class Restorer:
    """Apply a MemNet to (H, W) float arrays in [0, 1] units, whole or in exact tiles.

    `device` is resolved by memnet.devices.resolve_device, like memnet.load's: the default
    `auto` is the first CUDA GPU, else Apple MPS, else the CPU, so on a machine with neither it
    is the CPU (the default was `cpu` before, with the same results there). `tile=None` picks the tile size from the device's free memory (the whole image when it
    fits), `tile=0` always processes the whole image at once, `tile=N` uses tiles of at most
    N × N output pixels. `tile_pad=None` uses the exact context derived from the model's
    receptive field. `dtype` is fp32, fp16 or bf16 (half precision through autocast, GPU only);
    `self_ensemble` averages the 8 flips/rotations of the input. `optimize=False` calls the
    plain model instead of its faster, leaner rearrangement (memnet.inference.fast_network). On a CPU
    in fp32 a window too large for the activation budget runs streamed over strips of rows
    (memnet.inference.streaming: memory grows with the width only, nothing is recomputed), so only very
    wide images need splitting; `stream=False` tiles instead. Calls from several threads at
    once are safe (each keeps its own buffers); the process-wide allocator setting made here
    (memnet.cpu_settings.retain_freed_memory) is idempotent.
    """

    def __init__(
        self,
        model: MemNet,
        *,
        device: str | torch.device = "auto",
        tile: int | None = None,
        tile_pad: int | None = None,
        dtype: str | torch.dtype = "fp32",
        self_ensemble: bool = False,
        batch_size: int | None = None,
        optimize: bool = True,
        stream: bool = True,
    ) -> None:
        self.device = devices.resolve_device(device)
        self.dtype = devices.resolve_dtype(dtype, self.device)
        self.model = model.eval().to(self.device)
        self.config = model.config
        self.tile = tile
        self.tile_pad = exact_context(model) if tile_pad is None else int(tile_pad)
        if (tile is not None and int(tile) < 0) or self.tile_pad < 0:
            raise ValueError("tile size and tile context must be non-negative")
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError("batch size must be positive")
        self.batch_size = batch_size
        self.self_ensemble = bool(self_ensemble)
        # How many restorers run side by side in this process (a server's workers): each plans
        # with its share of the device's budget, so together they stay within it.
        self.budget_share = 1
        element_bytes = 2 if self.dtype != torch.float32 else 4
        self.bytes_per_pixel = activation_bytes_per_pixel(self.config, element_bytes)
        # The one place the network is called: an optimised module can replace it here.
        self._network: Callable[[torch.Tensor], torch.Tensor] = self._plain_forward
        self.optimized: InferenceMemNet | None = None
        self.streamed: StreamedMemNet | None = None
        if self.device.type == "cpu":
            # Without it glibc unmaps every large freed activation and the next one is
            # page-faulted and zeroed afresh: a third of the time of a whole-image pass.
            retain_freed_memory()
        if optimize:
            # The same function as the model, rearranged for speed and a quarter of the memory.
            self.optimized = InferenceMemNet(self.model).to(self.device)
            self.bytes_per_pixel = self.optimized.bytes_per_pixel(element_bytes)
            self._network = self.optimized
            cpu_fp32 = self.device.type == "cpu" and self.dtype == torch.float32
            if stream and cpu_fp32 and fused_conv_available():
                # For what does not fit whole: no context recomputed (unlike tiles), a few
                # hundred rows of memory, within ~10 % of a whole pass's speed
                # (benchmarks/strips-results.md).
                self.streamed = StreamedMemNet(self.optimized)

    def memory_budget(self) -> int:
        """Activation bytes this restorer may plan with: its share of the device's budget."""
        return memory_budget(self.device) // max(1, int(self.budget_share))

    def _plain_forward(self, x: torch.Tensor) -> torch.Tensor:
        module: nn.Module = self.model
        return module(x)

    # ---------------------------------------------------------------- tile and batch planning

    def tile_for(self, height: int, width: int) -> int:
        """Output-side tile height for an H × W image (0 = whole image in one pass)."""
        if self.tile is not None:
            return int(self.tile)
        grid = self.plan(height, width)
        return 0 if grid is None else grid.tile

    def plan(self, height: int, width: int) -> TileGrid | None:
        """The tile grid for an H × W image, or None when it runs whole."""
        if self.tile is not None:
            tile = int(self.tile)
            if tile == 0 or (height <= tile and width <= tile):
                return None
            return TileGrid(height, width, tile, self.tile_pad)
        budget = self.memory_budget()
        if height * width * self.bytes_per_pixel <= budget:
            return None
        if self.streamed is not None:
            return self._column_plan(height, width, budget)
        grid = best_grid(height, width, self.tile_pad, budget // self.bytes_per_pixel)
        return None if len(grid) == 1 else grid

    def _column_plan(self, height: int, width: int, budget: int) -> TileGrid | None:
        """Full-height windows, as few as fit: streamed memory depends on the width only."""
        assert self.streamed is not None
        columns, tile_w = 1, width
        for columns in range(1, max(1, width // MIN_AUTO_TILE) + 1):
            tile_w = math.ceil(width / columns)
            widest = max(_window_lengths(width, tile_w, self.tile_pad))
            if self.streamed.bytes_for_width(widest) <= budget:
                break
        return None if columns == 1 else TileGrid(height, width, height, self.tile_pad, tile_w)

    def streams(self, height: int, width: int, budget: int | None = None) -> bool:
        """Whether an H × W window runs streamed (it does not fit the budget whole)."""
        if self.streamed is None:
            return False
        budget = self.memory_budget() if budget is None else budget
        return height * width * self.bytes_per_pixel > budget

    def _parts(self, height: int, width: int, budget: int) -> int:
        # Streamed windows report progress in bands of rows; others once, when done.
        return math.ceil(height / PROGRESS_ROWS) if self.streams(height, width, budget) else 1

    def tile_count(self, height: int, width: int) -> int:
        """Progress steps of one call on an H × W image: forward windows, or parts of them.

        A window run whole counts once; a streamed window once per PROGRESS_ROWS output rows.
        """
        if self.self_ensemble:
            # Four of the eight views are rotated by 90°: H and W swap.
            return 4 * (self._steps(height, width) + self._steps(width, height))
        return self._steps(height, width)

    def _steps(self, height: int, width: int) -> int:
        grid = self.plan(height, width)
        budget = self.memory_budget()  # read once, not per window
        if grid is None:
            return self._parts(height, width, budget)
        return sum(
            self._parts(rows.stop - rows.start, cols.stop - cols.start, budget)
            for rows, cols, _, _ in grid
        )

    def _batch_for(self, window_pixels: int) -> int:
        if self.batch_size is not None:
            return int(self.batch_size)
        budget = self.memory_budget()
        return max(1, min(MAX_BATCH, budget // max(1, window_pixels * self.bytes_per_pixel)))

    # ---------------------------------------------------------------- running

    @torch.inference_mode()
    def _run_batch(
        self, windows: list[NDArray[np.floating]], progress: Callable[[], None] | None = None
    ) -> NDArray[np.floating]:
        """The network on equal-size windows; `progress()` once per window or streamed part.

        Returns float32 when the windows are float32, float64 otherwise.
        """
        out_dtype = torch.float32 if windows[0].dtype == np.float32 else torch.float64
        if len(windows) == 1 and windows[0].dtype == np.float32 and windows[0].flags.c_contiguous:
            stacked = windows[0][None, None]  # a whole float32 image: no copy (read only)
        else:
            stacked = np.stack([np.asarray(w, dtype=np.float32) for w in windows])[:, None]
        x = torch.from_numpy(stacked).to(self.device)
        height, width = stacked.shape[2:]
        streamed = self.streams(height, width) and self._network is self.optimized
        parts = math.ceil(height / PROGRESS_ROWS) if streamed else 1
        reported = [0] * len(windows)

        def on_rows(image: int, rows: int) -> None:
            finished = parts if rows == height else rows // PROGRESS_ROWS
            for _ in range(finished - reported[image]):
                if progress is not None:
                    progress()
            reported[image] = finished

        if streamed:
            assert self.streamed is not None
            y = self.streamed(x, on_rows=on_rows)
        elif self.dtype == torch.float32:
            y = self._network(x)
        else:
            with torch.autocast(device_type=self.device.type, dtype=self.dtype):
                y = self._network(x)
        for image in range(len(windows)):
            on_rows(image, height)  # windows not streamed count once, here
        del x, stacked
        return y[:, 0].to("cpu", out_dtype).numpy()

    def _restore_once(
        self, array: NDArray[np.floating], progress: Callable[[], None] | None
    ) -> NDArray[np.floating]:
        height, width = array.shape
        grid = self.plan(height, width)
        if grid is None:
            return self._run_batch([array], progress)[0]
        output = np.empty((height, width), dtype=array.dtype)
        # Windows of equal size (all inner tiles, and each kind of border tile) run together.
        groups: dict[tuple[int, int], list[tuple[slice, slice, slice, slice]]] = defaultdict(list)
        for tile in grid:
            rows, cols = tile[0], tile[1]
            groups[(rows.stop - rows.start, cols.stop - cols.start)].append(tile)
        for (win_h, win_w), tiles in groups.items():
            batch = self._batch_for(win_h * win_w)
            for first in range(0, len(tiles), batch):
                chunk = tiles[first : first + batch]
                windows = [array[rows, cols] for rows, cols, _, _ in chunk]
                restored = self._run_batch(windows, progress)
                for result, (rows, cols, core_rows, core_cols) in zip(restored, chunk, strict=True):
                    out_rows = slice(rows.start + core_rows.start, rows.start + core_rows.stop)
                    out_cols = slice(cols.start + core_cols.start, cols.start + core_cols.stop)
                    output[out_rows, out_cols] = result[core_rows, core_cols]
        return output

    def __call__(
        self, image: NDArray[np.floating], *, progress: ProgressCallback | None = None
    ) -> NDArray[np.floating]:
        """Restore one (H, W) network input; returns float64 (float32 for float32 input:
        the network computes in float32, so nothing is lost and half the memory is), unclipped.

        `progress(done, total)` is called after every forward window (tile or whole image) or,
        when streamed, every PROGRESS_ROWS rows of one; `total` is `tile_count(H, W)`.
        """
        array = np.asarray(image)
        if array.dtype != np.float32:
            array = np.asarray(array, dtype=np.float64)
        if array.ndim != 2:
            raise ValueError(f"Restorer expects one channel (H, W), got shape {array.shape}")
        if array.size == 0:
            raise ValueError("Restorer got an empty image")
        total = self.tile_count(*array.shape)
        done = 0

        def step() -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total)

        if not self.self_ensemble:
            return self._restore_once(array, step)
        accumulated = np.zeros(array.shape, dtype=np.float64)
        for k in range(8):
            view = np.ascontiguousarray(_dihedral(array, k))
            accumulated += _dihedral_inverse(self._restore_once(view, step), k)
        accumulated /= 8.0
        return accumulated.astype(array.dtype, copy=False)
