"""Tiled inference with the exact context equals whole-image inference."""

from __future__ import annotations

import numpy as np
import torch

from memnet.inference.engine import Restorer
from memnet.inference.planning import TileGrid
from memnet.model import MemNet, exact_context
from rounding import inference_bound


def test_grid_covers_every_pixel_once() -> None:
    grid = TileGrid(height=103, width=50, tile=32, pad=7)
    hits = np.zeros((103, 50), dtype=int)
    for rows, cols, core_rows, core_cols in grid:
        block = hits[rows, cols]
        block[core_rows, core_cols] += 1
    assert (hits == 1).all()
    assert len(grid) == 4 * 2


def test_tiles_equal_whole_image_inference() -> None:
    torch.manual_seed(3)
    model = MemNet(blocks=2, recursions=2, channels=8).eval()
    model.reconstruction.weight.data.mul_(0.05)
    image = np.random.default_rng(0).random((97, 83))
    whole = Restorer(model, tile=0, device="cpu")(image)
    tiled = Restorer(model, tile=24, device="cpu")(image)
    assert exact_context(model) == 10
    bound = inference_bound(model.config, np.abs(whole).max())
    assert np.abs(whole - tiled).max() <= bound
    # too little context is visibly different, far beyond rounding: the test can fail
    short = Restorer(model, tile=24, tile_pad=2, device="cpu")(image)
    assert np.abs(whole - short).max() > 10 * bound
