"""Inference engine: run a MemNet over one-channel images of any size, in exact tiles.

A tile is processed with `tile_pad` pixels of real image context on every side that has
neighbours; where a tile touches the image border the network pads with zeros exactly as it
does for the whole image. With a context of at least half the receptive field the stitched
result equals whole-image inference (up to float rounding), while memory is bounded by the tile.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from memnet.model import MemNet, receptive_field

__all__ = ["DEFAULT_TILE", "Restorer", "TileGrid", "exact_context"]

# Output-side tile edge used when the caller gives none. Large enough that the context overhead
# of an m6r6 (74 px per side) stays modest, small enough that activations stay within a few GB.
DEFAULT_TILE = 384


def exact_context(model: MemNet) -> int:
    """Context (px per side) that makes tiled inference equal to whole-image inference."""
    return (receptive_field(model) - 1) // 2


@dataclass(frozen=True)
class TileGrid:
    """Tiles of at most `tile` × `tile` covering an H × W image, each with its padded source window."""

    height: int
    width: int
    tile: int
    pad: int

    def _spans(self, length: int) -> list[tuple[int, int]]:
        # Spread the tiles evenly so that they all have (nearly) the same size.
        count = max(1, math.ceil(length / self.tile))
        step = math.ceil(length / count)
        return [(start, min(start + step, length)) for start in range(0, length, step)]

    def __iter__(self) -> Iterator[tuple[slice, slice, slice, slice]]:
        """Yield (source rows, source cols, core rows, core cols); the core is relative to the source."""
        for top, bottom in self._spans(self.height):
            for left, right in self._spans(self.width):
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
        return len(self._spans(self.height)) * len(self._spans(self.width))


class Restorer:
    """Apply a MemNet to (H, W) float arrays in [0, 1] units, whole or in exact tiles.

    `tile=0` processes the whole image at once. `tile_pad=None` uses the exact context derived
    from the model's receptive field.
    """

    def __init__(
        self,
        model: MemNet,
        *,
        device: str | torch.device = "cpu",
        tile: int | None = DEFAULT_TILE,
        tile_pad: int | None = None,
    ) -> None:
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.tile = DEFAULT_TILE if tile is None else int(tile)
        self.tile_pad = exact_context(model) if tile_pad is None else int(tile_pad)
        if self.tile < 0 or self.tile_pad < 0:
            raise ValueError("tile size and tile context must be non-negative")
        self._network: Callable[[torch.Tensor], torch.Tensor] = self._plain_forward

    def _plain_forward(self, x: torch.Tensor) -> torch.Tensor:
        module: nn.Module = self.model
        return module(x)

    @torch.inference_mode()
    def _run(self, window: NDArray[np.float64]) -> NDArray[np.float64]:
        x = torch.from_numpy(np.ascontiguousarray(window, dtype=np.float32))[None, None].to(
            self.device
        )
        y = self._network(x)
        return y[0, 0].to("cpu", torch.float64).numpy()

    def __call__(self, image: NDArray[np.floating]) -> NDArray[np.float64]:
        """Restore one (H, W) network input; returns float64, unclipped."""
        array = np.asarray(image, dtype=np.float64)
        if array.ndim != 2:
            raise ValueError(f"Restorer expects one channel (H, W), got shape {array.shape}")
        height, width = array.shape
        if self.tile == 0 or (height <= self.tile and width <= self.tile):
            return self._run(array)
        output = np.empty_like(array)
        grid = TileGrid(height, width, self.tile, self.tile_pad)
        for src_rows, src_cols, core_rows, core_cols in grid:
            restored = self._run(array[src_rows, src_cols])
            out_rows = slice(src_rows.start + core_rows.start, src_rows.start + core_rows.stop)
            out_cols = slice(src_cols.start + core_cols.start, src_cols.start + core_cols.stop)
            output[out_rows, out_cols] = restored[core_rows, core_cols]
        return output
