"""The Restorer: exact batched tiles, automatic tile size, self-ensemble, device and dtype."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from memnet.devices import resolve_device, resolve_dtype
from memnet.errors import MemNetError
from memnet.inference import engine
from memnet.inference.engine import Restorer
from memnet.inference.memory import plain_bytes_per_pixel
from memnet.inference.planning import TileGrid
from memnet.model import MemNet, create_model, exact_context
from rounding import EPS32, inference_bound


def small_model(blocks: int = 2, recursions: int = 2, channels: int = 8) -> MemNet:
    torch.manual_seed(3)
    model = MemNet(blocks=blocks, recursions=recursions, channels=channels).eval()
    # Keep the random network's output in a realistic range so float32 rounding stays small.
    model.reconstruction.weight.data.mul_(0.05)
    return model


def test_batched_tiles_equal_whole_image_with_borders_and_corners() -> None:
    model = small_model()
    image = np.random.default_rng(0).random((101, 90))
    whole = Restorer(model, tile=0, device="cpu")(image)
    for batch in (1, 16):
        tiled = Restorer(model, tile=24, batch_size=batch, device="cpu")(image)
        assert np.abs(whole - tiled).max() <= inference_bound(model.config, np.abs(whole).max())
    grid = TileGrid(101, 90, 24, exact_context(model))
    assert len(grid) == 5 * 4  # several tiles in each direction, corners included


def test_tiles_run_in_batches_of_equal_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    model = small_model()
    restorer = Restorer(model, tile=16, batch_size=8, device="cpu")
    shapes: list[tuple[int, ...]] = []
    plain = restorer._network

    def counting(x: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(x.shape))
        return plain(x)

    restorer._network = counting
    image = np.random.default_rng(1).random((100, 100))
    calls: list[tuple[int, int]] = []
    restorer(image, progress=lambda done, total: calls.append((done, total)))
    tiles = len(TileGrid(100, 100, 16, restorer.tile_pad))
    assert sum(s[0] for s in shapes) == tiles
    assert max(s[0] for s in shapes) == 8  # inner tiles share a window size and run together
    assert len(shapes) < tiles
    assert calls[-1] == (tiles, tiles)
    assert len(calls) == tiles


@pytest.mark.slow
def test_m6r6_depth_tiles_are_exact_with_the_74px_context() -> None:
    # Same depth and receptive field (149 px) as the paper's m6r6, fewer channels for speed.
    model = small_model(6, 6, 8)
    assert exact_context(model) == 74
    image = np.random.default_rng(2).random((170, 150))
    whole = Restorer(model, tile=0, device="cpu")(image)
    tiled = Restorer(model, tile=56, device="cpu")(image)
    assert len(TileGrid(170, 150, 56, 74)) == 4 * 3
    assert np.abs(whole - tiled).max() <= inference_bound(model.config, np.abs(whole).max())


@pytest.mark.slow
def test_true_m6r6_tiles_are_exact() -> None:
    torch.manual_seed(5)
    model = create_model("m6r6").eval()
    model.reconstruction.weight.data.mul_(0.05)
    # A strip: its inner tiles see 74 px of real context on both sides, not the whole image.
    image = np.random.default_rng(3).random((40, 260))
    whole = Restorer(model, tile=0, device="cpu")(image)
    tiled = Restorer(model, tile=56, device="cpu")(image)
    assert np.abs(whole - tiled).max() <= inference_bound(model.config, np.abs(whole).max())


def test_automatic_tile_size_follows_the_memory_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    # Windows run whole (the GPU path; streamed CPU windows are in tests/test_streaming.py).
    model = small_model()
    per_pixel = Restorer(model, stream=False, device="cpu").bytes_per_pixel
    monkeypatch.setattr(engine, "memory_budget", lambda device: 10**12)
    fits = Restorer(model, stream=False, device="cpu").plan(500, 500)
    assert (fits.how, fits.grid) == ("whole", None)  # fits: whole image at once
    budget = 120 * 120 * per_pixel
    monkeypatch.setattr(engine, "memory_budget", lambda device: budget)
    restorer = Restorer(model, stream=False, device="cpu")
    plan = restorer.plan(500, 500)
    assert plan.how == "tiled"
    assert plan.grid is not None
    # every padded window fits the budget, and so does every batch
    for rows, cols, _, _ in plan.grid:
        assert (rows.stop - rows.start) * (cols.stop - cols.start) * per_pixel <= budget
    assert plan.memory_bytes <= budget
    image = np.random.default_rng(4).random((150, 140))
    assert restorer.tile_count(150, 140) > 1
    whole = Restorer(model, tile=0, stream=False, device="cpu")(image)
    assert np.abs(restorer(image) - whole).max() <= inference_bound(
        model.config, np.abs(whole).max()
    )


def test_memory_estimate_scales_with_the_network() -> None:
    small = plain_bytes_per_pixel(create_model("m4r4c32").config)
    paper = plain_bytes_per_pixel(create_model("m6r6").config)
    assert paper > 2 * small
    assert 4 * 64 * (6 + 6) < paper < 4 * 64 * 80  # at least the memories, far below all layers


def test_self_ensemble_averages_the_eight_flips_and_rotations() -> None:
    model = small_model()
    image = np.random.default_rng(5).random((33, 47))
    plain = Restorer(model, tile=0, device="cpu")
    ensemble = Restorer(model, tile=0, self_ensemble=True, device="cpu")(image)
    manual = np.zeros_like(image)
    for k in range(4):
        for flip in (False, True):
            view = np.rot90(image, k)
            view = view[:, ::-1] if flip else view
            out = plain(np.ascontiguousarray(view))
            out = out[:, ::-1] if flip else out
            manual += np.rot90(out, -k)
    bound = inference_bound(model.config, np.abs(manual / 8).max())
    assert np.abs(ensemble - manual / 8).max() <= bound
    # the eight views really differ: by far more than rounding could explain
    assert np.abs(ensemble - plain(image)).max() > 10 * bound


def test_identity_network_returns_its_input() -> None:
    model = MemNet(blocks=2, recursions=2, channels=8, identity_init=True).eval()
    image = np.random.default_rng(6).random((40, 30))
    # The image passes through float32 (half an ulp) and the mean of the M branches adds up to
    # one rounding per branch: M + 1 ulps of a value at most 1.
    bound = (model.config.blocks + 1) * EPS32
    assert np.abs(Restorer(model, tile=12, device="cpu")(image) - image).max() <= bound


def test_half_precision_is_refused_on_cpu_with_a_reason() -> None:
    with pytest.raises(MemNetError, match="slower in half precision"):
        resolve_dtype("fp16", torch.device("cpu"))
    with pytest.raises(MemNetError, match="half precision"):
        Restorer(small_model(), dtype="bf16", device="cpu")
    with pytest.raises(MemNetError, match="unknown dtype"):
        resolve_dtype("fp8", torch.device("cpu"))
    assert resolve_dtype("fp32", torch.device("cpu")) == torch.float32


def test_devices_are_resolved_or_refused_clearly() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(MemNetError, match="unknown device"):
        resolve_device("tpu:banana")
    if not torch.cuda.is_available():
        with pytest.raises(MemNetError, match="CUDA is not available"):
            resolve_device("cuda:0")


def test_bad_inputs_are_rejected() -> None:
    restorer = Restorer(small_model(), tile=0, device="cpu")
    with pytest.raises(ValueError, match="one channel"):
        restorer(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        Restorer(small_model(), tile=-1, device="cpu")
