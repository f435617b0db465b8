"""The optimised inference network computes what the plain model computes, for every preset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from memnet.inference import fast_layers
from memnet.inference.engine import Restorer
from memnet.inference.fast_network import InferenceMemNet
from memnet.inference.planning import TileGrid, best_grid
from memnet.model import PRESETS, MemNet, create_model
from rounding import inference_bound


def trained_like(name: str, seed: int = 0, **overrides: int) -> MemNet:
    """A preset (with `overrides` of its config) whose BatchNorms hold real statistics and
    non-trivial affines, as after training."""
    torch.manual_seed(seed)
    model = create_model(name, **overrides)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # cumulative: the statistics of the calibration batch
            with torch.no_grad():
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    model.train()
    with torch.no_grad():
        model(torch.rand(2, model.config.in_channels, 24, 24))
    return model.eval()


def preset_case(name: str) -> tuple[InferenceMemNet, torch.Tensor, torch.Tensor]:
    """The optimised network of a preset, an input, and the plain model's output for it."""
    model = trained_like(name)
    x = torch.rand(2, model.config.in_channels, 23, 30)
    with torch.inference_mode():
        plain = model(x)
    assert plain.abs().max() > 0.1  # a meaningful output, not a vanishing one
    return InferenceMemNet(model), x, plain


@pytest.mark.parametrize("name", list(PRESETS))
def test_matches_the_plain_model(name: str) -> None:
    fast, x, plain = preset_case(name)
    with torch.inference_mode():
        optimised = fast(x)
    assert optimised.shape == plain.shape
    # Folding and fusing reorder the sums: they may differ by float32 rounding, no more.
    assert (optimised - plain).abs().max() <= inference_bound(fast.config, plain.abs().max().item())


def test_matches_without_fused_convolutions(monkeypatch: pytest.MonkeyPatch) -> None:
    # The path other devices (and PyTorch builds without oneDNN) take.
    model = trained_like("tiny", seed=1)
    monkeypatch.setattr(fast_layers, "_FUSED", None)
    x = torch.rand(1, 1, 20, 17)
    with torch.inference_mode():
        plain = model(x)
        bound = inference_bound(model.config, plain.abs().max().item())
        assert (InferenceMemNet(model)(x) - plain).abs().max() <= bound


def test_networks_without_biases_or_affines_fold_too() -> None:
    model = trained_like("tiny", seed=2)
    model.fenet.bias = None
    model.blocks[0].conv_a.bias = None
    model.reconstruction.bias = None
    x = torch.rand(1, 1, 16, 16)
    with torch.inference_mode():
        plain = model(x)
        bound = inference_bound(model.config, plain.abs().max().item())
        assert (InferenceMemNet(model)(x) - plain).abs().max() <= bound


def test_restorer_uses_it_by_default_and_matches_the_plain_path() -> None:
    model = trained_like("tiny", seed=3)
    image = np.random.default_rng(0).random((45, 38))
    fast = Restorer(model, tile=16, device="cpu")
    plain = Restorer(model, tile=16, optimize=False, device="cpu")
    assert isinstance(fast.optimized, InferenceMemNet)
    assert fast._network is fast.optimized
    assert plain.optimized is None
    assert fast.bytes_per_pixel < plain.bytes_per_pixel
    bound = inference_bound(model.config, np.abs(plain(image)).max())
    assert np.abs(fast(image) - plain(image)).max() <= bound
    assert np.abs(fast(image) - Restorer(model, tile=0, device="cpu")(image)).max() <= bound


def area(tile: tuple[slice, slice, slice, slice]) -> int:
    rows, cols = tile[0], tile[1]
    return (rows.stop - rows.start) * (cols.stop - cols.start)


def test_best_grid_recomputes_the_least_context() -> None:
    # Two full-width strips beat four squares once a strip fits.
    pad = 74
    strip = 1024 * (512 + pad)
    grid = best_grid(1024, 1024, pad, strip)
    assert len(grid) == 2
    assert max(area(t) for t in grid) <= strip
    smaller = best_grid(1024, 1024, pad, strip - 1)
    assert len(smaller) > 2
    computed = sum(area(t) for t in smaller)
    assert computed <= sum(area(t) for t in TileGrid(1024, 1024, 512, pad))
    # every output pixel is covered exactly once
    covered = np.zeros((1024, 1024), dtype=int)
    for rows, cols, core_rows, core_cols in smaller:
        covered[
            rows.start + core_rows.start : rows.start + core_rows.stop,
            cols.start + core_cols.start : cols.start + core_cols.stop,
        ] += 1
    assert (covered == 1).all()
