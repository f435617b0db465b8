"""Several pictures of one size in one forward pass: equal to one at a time, sized by the budget."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

import memnet
from memnet.errors import MemNetError
from memnet.imaging.picture import picture_from_array
from memnet.inference.api import ImageRestorer
from memnet.inference.engine import Restorer
from memnet.inference.memory import picture_plane_bytes
from memnet.model import MemNet
from memnet.weights.files import save_weights
from rounding import inference_bound

HEIGHT, WIDTH = 32, 48


def small_model() -> MemNet:
    torch.manual_seed(3)
    return MemNet(blocks=2, recursions=2, channels=8).eval()


def batching(
    restorer: Restorer,
    monkeypatch: pytest.MonkeyPatch,
    frames: float,
    *,
    height: int = HEIGHT,
    width: int = WIDTH,
    extra: int = 0,
) -> list[int]:
    """Let `restorer` batch, with a budget of `frames` whole height × width windows (and
    `extra` bytes); returns the sizes of the forward passes it then runs."""
    budget = int(frames * height * width * restorer.bytes_per_pixel) + extra
    restorer.batch_images = True
    monkeypatch.setattr(restorer, "memory_budget", lambda: budget)
    return counted_passes(restorer, monkeypatch)


def counted_passes(restorer: Restorer, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The batch size of every forward pass `restorer` runs from now on."""
    passes: list[int] = []
    network = restorer._network

    def counted(x: torch.Tensor) -> torch.Tensor:
        passes.append(int(x.shape[0]))
        return network(x)

    monkeypatch.setattr(restorer, "_network", counted)
    return passes


@pytest.mark.parametrize("optimize", [True, False])
def test_a_batch_equals_restoring_each_image_alone(
    monkeypatch: pytest.MonkeyPatch, optimize: bool
) -> None:
    model = small_model()
    restorer = Restorer(model, device="cpu", optimize=optimize)
    rng = np.random.default_rng(1)
    images = [rng.random((HEIGHT, WIDTH)).astype(np.float32) for _ in range(5)]
    images.append(rng.random((HEIGHT, WIDTH)))  # float64 comes back float64, as alone
    alone = [restorer(image) for image in images]
    passes = batching(restorer, monkeypatch, frames=4)
    together = restorer.restore_batch(images)
    assert passes == [4, 2]  # 6 images, 4 per pass: none lost, none twice
    for single, batched in zip(alone, together, strict=True):
        assert batched.dtype == single.dtype
        assert batched.shape == single.shape
        # The batched kernels may sum in another order: rounding, nothing more.
        bound = inference_bound(model.config, float(np.abs(single).max()))
        assert float(np.abs(batched - single).max()) <= bound


def test_images_per_pass_follow_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    restorer = Restorer(small_model(), device="cpu")
    assert restorer.batch_limit(HEIGHT, WIDTH) == 1  # the CPU never batches by default
    batching(restorer, monkeypatch, frames=5)
    assert restorer.batch_limit(HEIGHT, WIDTH) == 5
    batching(restorer, monkeypatch, frames=5.9)
    assert restorer.batch_limit(HEIGHT, WIDTH) == 5
    batching(restorer, monkeypatch, frames=1)  # one image barely fits
    assert restorer.batch_limit(HEIGHT, WIDTH) == 1
    batching(restorer, monkeypatch, frames=0.9)  # one image alone is streamed or tiled
    assert restorer.plan(HEIGHT, WIDTH).how != "whole"
    assert restorer.batch_limit(HEIGHT, WIDTH) == 1
    ensemble = Restorer(small_model(), device="cpu", self_ensemble=True)
    batching(ensemble, monkeypatch, frames=8)
    assert ensemble.batch_limit(HEIGHT, WIDTH) == 1


def test_a_batch_over_a_streamed_plan_runs_one_image_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    restorer = Restorer(small_model(), device="cpu", tile=16)
    rng = np.random.default_rng(2)
    images = [rng.random((HEIGHT, WIDTH)).astype(np.float32) for _ in range(3)]
    alone = [restorer(image) for image in images]
    batching(restorer, monkeypatch, frames=8)
    assert restorer.plan(HEIGHT, WIDTH).how == "tiled"
    for single, batched in zip(alone, restorer.restore_batch(images), strict=True):
        assert np.array_equal(single, batched)  # the very same calls
    with pytest.raises(ValueError, match="one size"):
        restorer.restore_batch([images[0], images[0][:, :40]])


@pytest.fixture
def weights(tmp_path: Path) -> Callable[[str], Path]:
    def make(task: str) -> Path:
        path = tmp_path / f"{task}.safetensors"
        save_weights(small_model(), path, {"task": task})
        return path

    return make


def _pictures(gray: bool, count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(4)
    shape = (HEIGHT, WIDTH) if gray else (HEIGHT, WIDTH, 3)
    return [rng.random(shape).astype(np.float32) for _ in range(count)]


@pytest.mark.parametrize(
    ("task", "color", "gray", "planes"),
    [
        ("denoise", "rgb", False, 3),
        ("jpeg", "ycbcr", False, 3),
        ("denoise", "y", False, 1),
        ("sr", "y", False, 1),
        ("denoise", "auto", True, 1),
    ],
)
def test_restore_batch_splits_colour_per_picture_and_stacks_the_planes(
    weights: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
    task: str,
    color: str,
    gray: bool,
    planes: int,
) -> None:
    levels = {"scale": 2.0} if task == "sr" else {}
    restorer = memnet.load(weights(task), task=task, color=color, device="cpu", **levels)
    assert isinstance(restorer, ImageRestorer)
    assert restorer.restorer is not None
    images = _pictures(gray, 5)
    alone = [restorer(image) for image in images]
    engine = restorer.restorer
    scale = 2 if task == "sr" else 1
    # A budget for 2 pictures' passes through the network (its input is at output size) and
    # their own planes, which share the CPU's memory, plus a little.
    budget_frames = 2 * planes * scale * scale + 0.5
    own = own_planes(images[0], task, color)
    passes = batching(engine, monkeypatch, frames=budget_frames, extra=2 * own)
    assert restorer.batch_size(images[0]) == 2
    together = restorer.restore_batch(images)
    assert passes == [2 * planes, 2 * planes, planes]  # 2 + 2 + 1 pictures
    bound = inference_bound(engine.config)
    for single, batched in zip(alone, together, strict=True):
        assert batched.shape == single.shape
        assert batched.dtype == single.dtype
        assert float(np.abs(batched - single).max()) <= bound


def own_planes(image: np.ndarray, task: str, color: str) -> int:
    """The bytes of one picture's own planes while it is restored (memory.picture_plane_bytes),
    for the array as the API takes it in."""
    picture = picture_from_array(image)
    mode = (
        "gray"
        if picture.is_gray
        else {"auto": "rgb" if task == "denoise" else "ycbcr"}.get(color, color)
    )
    scale = 2 if task == "sr" else 1
    out = (picture.height * scale, picture.width * scale)
    return picture_plane_bytes(
        picture.pixels, picture.alpha, out, mode, resamples=task == "sr", depth=None
    )


@pytest.mark.parametrize(("task", "color", "planes"), [("denoise", "rgb", 3), ("sr", "y", 1)])
def test_a_group_leaves_its_own_planes_room_in_a_shared_memory_budget(
    weights: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
    task: str,
    color: str,
    planes: int,
) -> None:
    """Room for 3 pictures' passes but for only 2.5 pictures' own planes on top: 2 per pass;
    room for 2 pictures' passes and nothing more: one by one — the planes are never left out
    (without them, both budgets would give groups of 3 and 2)."""
    levels = {"scale": 2.0} if task == "sr" else {}
    restorer = memnet.load(weights(task), task=task, color=color, device="cpu", **levels)
    assert restorer.restorer is not None
    images = _pictures(False, 4)
    one = planes * (2 if task == "sr" else 1) ** 2  # frames of one picture's passes
    own = own_planes(images[0], task, color)
    passes = batching(restorer.restorer, monkeypatch, frames=3 * one, extra=int(2.5 * own))
    assert restorer.batch_size(images[0]) == 2
    restorer.restore_batch(images)
    assert passes == [2 * planes, 2 * planes]
    passes = batching(restorer.restorer, monkeypatch, frames=2 * one)
    assert restorer.batch_size(images[0]) == 1
    restorer.restore_batch(images)
    assert max(passes) <= planes


def test_batch_size_is_one_when_one_picture_barely_fits_and_for_the_baseline(
    weights: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    restorer = memnet.load(weights("denoise"), task="denoise", color="rgb", device="cpu")
    assert restorer.restorer is not None
    image = _pictures(False, 1)[0]
    assert restorer.batch_size(image) == 1  # on the CPU
    batching(restorer.restorer, monkeypatch, frames=3)  # one picture's three planes
    assert restorer.batch_size(image) == 1
    batching(
        restorer.restorer, monkeypatch, frames=6, extra=2 * own_planes(image, "denoise", "rgb")
    )
    assert restorer.batch_size(image) == 2
    with pytest.raises(MemNetError, match="one size"):  # batched: pictures of two sizes
        restorer.restore_batch([image, image[:, :40]])
    monkeypatch.undo()  # one at a time again: pictures of two sizes are refused all the same
    with pytest.raises(MemNetError, match="one size"):
        restorer.restore_batch([image, image[:, :40]])
    baseline = memnet.load("identity", task="denoise")
    assert baseline.batch_size(image) == 1
    assert all(
        np.array_equal(out, baseline(image)) for out in baseline.restore_batch([image, image])
    )
