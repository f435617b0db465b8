"""The tiling of the authors' MATLAB test scripts, to reproduce their published numbers exactly.

Their scripts (test/MemNet_M6R6_80C64/test_MemNet_M6R6_{SR,GD,JD}.m) cut every image into
n = ceil(H / (T + 16)) bands of s = ceil(H / n) rows (and the same for the columns), T = 150
(120 for denoising). Tile k covers rows k·s .. (k+1)·s − 1 and is run on a window that adds 16
rows of real context above (none for the first tile) and up to 16 below (where the image
allows; the last window ends at the image border); the tile's own rows of the output are kept.
(Their loop lets a last window reach the border and a later one overwrite the overlap, which
leaves each pixel to the tile that starts at or before it last, i.e. the bands above.)

Since s > T/2 + 8 > 16 whenever n ≥ 2, every tile but the first has its full 16 rows of context,
so this is exactly memnet's `TileGrid` with tiles of T + 16 and a tile context of 16: the
`Restorer(tile=T + 16, tile_pad=16)` that `authors_tiling` returns the settings for. With a
receptive field of 149 px (M6R6) 16 px of context is not enough for tiled output to equal
whole-image output, which is why the tiling matters for matching their numbers.
"""

from __future__ import annotations

__all__ = ["AUTHORS_CONTEXT", "AUTHORS_TILE", "authors_tiling"]

AUTHORS_TILE = {"sr": 150, "denoise": 120, "jpeg": 150}  # thresh_hei / thresh_wid
AUTHORS_CONTEXT = 16  # rf


def authors_tiling(task: str) -> tuple[int, int]:
    """(tile, tile_pad) for `memnet.Restorer` that reproduce the authors' tiles for `task`."""
    try:
        tile = AUTHORS_TILE[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}; use one of {', '.join(AUTHORS_TILE)}") from None
    return tile + AUTHORS_CONTEXT, AUTHORS_CONTEXT
