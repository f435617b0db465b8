"""One plan per image: decided once, executed as planned, counted as executed; the model passed
to a Restorer is only read."""

from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np
import pytest
import torch

import memnet
from memnet import cli, cpu_settings
from memnet.imaging.picture import Picture
from memnet.inference import engine
from memnet.inference.engine import Restorer
from memnet.inference.fast_layers import fused_conv_available
from memnet.inference.memory import folded_bytes_per_pixel, streamed_bytes_for_width
from memnet.inference.planning import PROGRESS_ROWS
from memnet.model import MemNet, create_model
from memnet.weights.files import save_weights
from rounding import inference_bound

needs_streaming = pytest.mark.skipif(not fused_conv_available(), reason="needs oneDNN")


def tiny() -> MemNet:
    torch.manual_seed(0)
    model = create_model("tiny").eval()
    model.reconstruction.weight.data.mul_(0.05)
    return model


def counted_budget(monkeypatch: pytest.MonkeyPatch, budget: int) -> list[int]:
    """Make the device's budget `budget` and count how often it is read."""
    reads: list[int] = []

    def reading(device: torch.device) -> int:
        reads.append(budget)
        return budget

    monkeypatch.setattr(engine, "memory_budget", reading)
    return reads


def run_counting(restorer: Restorer, image: np.ndarray) -> tuple[int, list[tuple[int, int]]]:
    """The plan's units and every progress report of one call."""
    plan = restorer.plan(*image.shape)
    calls: list[tuple[int, int]] = []
    restorer(image, plan=plan, progress=lambda done, total: calls.append((done, total)))
    return plan.units, calls


def assert_counts_to(units: int, calls: list[tuple[int, int]]) -> None:
    assert len(calls) == units
    assert [done for done, _ in calls] == list(range(1, units + 1))
    assert {total for _, total in calls} == {units}


def test_a_whole_plan_reports_one_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    counted_budget(monkeypatch, 10**12)
    restorer = Restorer(tiny(), device="cpu")
    plan = restorer.plan(40, 30)
    assert (plan.how, plan.grid, len(plan.views[0].batches)) == ("whole", None, 1)
    assert plan.memory_bytes == folded_bytes_per_pixel(restorer.config) * 40 * 30
    units, calls = run_counting(restorer, np.random.default_rng(0).random((40, 30)))
    assert units == 1
    assert_counts_to(units, calls)


@needs_streaming
def test_a_streamed_plan_reports_its_bands_of_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    height, width = 2 * PROGRESS_ROWS + 7, 24
    model = tiny()
    fits_streamed = streamed_bytes_for_width(model.config, width, 64)
    counted_budget(monkeypatch, fits_streamed)  # far below the whole image, enough for a stream
    restorer = Restorer(model, device="cpu")
    plan = restorer.plan(height, width)
    assert (plan.how, plan.grid) == ("streamed", None)
    (batch,) = plan.views[0].batches
    assert batch.streamed
    assert plan.memory_bytes == streamed_bytes_for_width(model.config, width, batch.strip_rows or 0)
    units, calls = run_counting(restorer, np.random.default_rng(1).random((height, width)))
    assert units == 3
    assert_counts_to(units, calls)


@pytest.mark.parametrize("stream", [True, False])
def test_a_tiled_plan_reports_every_window(monkeypatch: pytest.MonkeyPatch, stream: bool) -> None:
    model = tiny()
    image = np.random.default_rng(2).random((150, 200))
    per_pixel = folded_bytes_per_pixel(model.config)
    budget = 90 * 90 * per_pixel if not stream else streamed_bytes_for_width(model.config, 70, 64)
    counted_budget(monkeypatch, budget)
    restorer = Restorer(model, stream=stream, device="cpu")
    plan = restorer.plan(*image.shape)
    assert plan.how == "tiled"
    assert plan.grid is not None
    windows = sum(len(batch.tiles) for batch in plan.views[0].batches)
    assert windows == len(plan.grid) > 1
    assert plan.memory_bytes <= budget
    units, calls = run_counting(restorer, image)
    assert units >= windows
    assert_counts_to(units, calls)
    whole = Restorer(model, tile=0, stream=False, device="cpu")(image)
    bound = inference_bound(model.config, np.abs(whole).max())
    assert np.abs(restorer(image) - whole).max() <= bound


def test_fixed_tiles_in_batches_count_every_window() -> None:
    restorer = Restorer(tiny(), tile=16, batch_size=3, device="cpu")
    plan = restorer.plan(100, 90)
    sizes = [len(batch.tiles) for batch in plan.views[0].batches]
    assert max(sizes) == 3
    assert sum(sizes) == len(plan.grid or [])
    units, calls = run_counting(restorer, np.random.default_rng(3).random((100, 90)))
    assert units == sum(sizes)
    assert_counts_to(units, calls)


def test_a_windows_output_is_freed_before_the_next_window_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The plan counts one window's output at a time (memory.WINDOW_COPY_BYTES); holding the
    # previous batch's while the next one runs would exceed it by a whole window.
    restorer = Restorer(tiny(), tile=16, batch_size=1, device="cpu")
    alive: list[weakref.ref[np.ndarray]] = []
    run_batch = Restorer._run_batch

    def watched(self: Restorer, *args: object, **kwargs: object) -> np.ndarray:
        assert all(ref() is None for ref in alive), "an earlier window's output is still held"
        out = run_batch(self, *args, **kwargs)  # type: ignore[arg-type]
        alive.append(weakref.ref(out))
        return out

    monkeypatch.setattr(Restorer, "_run_batch", watched)
    restorer(np.random.default_rng(4).random((40, 40), dtype=np.float32))
    assert len(alive) == len(restorer.plan(40, 40).grid or []) > 1


def test_self_ensemble_plans_all_eight_views(monkeypatch: pytest.MonkeyPatch) -> None:
    reads = counted_budget(monkeypatch, 10**12)
    restorer = Restorer(tiny(), tile=16, self_ensemble=True, device="cpu")
    image = np.random.default_rng(4).random((20, 40))
    plan = restorer.plan(*image.shape)
    assert len(plan.views) == 8
    assert [(v.height, v.width) for v in plan.views[:2]] == [(20, 40), (40, 20)]
    reads.clear()
    calls: list[tuple[int, int]] = []
    restorer(image, progress=lambda done, total: calls.append((done, total)))
    assert_counts_to(plan.units, calls)
    assert len(reads) == 1


def test_the_budget_is_read_once_per_image(monkeypatch: pytest.MonkeyPatch) -> None:
    reads = counted_budget(monkeypatch, 10**12)
    restorer = Restorer(
        tiny(), tile=12, device="cpu"
    )  # a fixed grid still asks the budget for its batches
    assert reads == []  # nothing is read before there is an image
    restorer(np.random.default_rng(5).random((30, 30)))
    assert len(reads) == 1
    reads.clear()
    plan = restorer.plan(30, 30)
    restorer(np.zeros((30, 30)), plan=plan)
    assert len(reads) == 1  # the plan given is executed, not decided again


def test_a_colour_picture_is_planned_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "tiny-denoise.safetensors"
    save_weights(tiny(), path, {"task": "denoise"})
    restorer = memnet.load(path, device="cpu", color="rgb")
    reads = counted_budget(monkeypatch, 10**12)
    calls: list[tuple[int, int]] = []
    picture = Picture(np.random.default_rng(6).random((24, 20, 3)))
    restorer.restore_picture(picture, progress=lambda done, total: calls.append((done, total)))
    assert len(reads) == 1  # three channels through the network, one plan
    assert_counts_to(3, calls)


def test_a_plan_for_another_size_is_refused() -> None:
    restorer = Restorer(tiny(), tile=0, device="cpu")
    with pytest.raises(ValueError, match="plan is for 10x12"):
        restorer(np.zeros((12, 10)), plan=restorer.plan(10, 12))


@pytest.mark.parametrize("optimize", [True, False])
def test_the_callers_model_is_left_as_it_was(
    monkeypatch: pytest.MonkeyPatch, optimize: bool
) -> None:
    applied: list[bool] = []
    monkeypatch.setattr(cpu_settings, "retain_freed_memory", lambda: applied.append(True))
    model = tiny().train()
    before = {name: t.clone() for name, t in model.state_dict().items()}
    storage = {name: p.data_ptr() for name, p in model.named_parameters()}
    restorer = Restorer(model, optimize=optimize, device="cpu")
    restorer(np.random.default_rng(7).random((20, 20)))
    assert model.training
    assert all(module.training for module in model.modules())
    assert all(p.requires_grad for p in model.parameters())
    assert {p.device for p in model.parameters()} == {torch.device("cpu")}
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert storage == {name: p.data_ptr() for name, p in model.named_parameters()}
    after = model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert applied == []  # nothing process-wide


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cpu_model_stays_on_the_cpu_when_restoring_on_a_gpu() -> None:
    model = tiny()
    restorer = Restorer(model, device="cuda", tile=0)
    restorer(np.random.default_rng(8).random((20, 20)))
    assert {p.device.type for p in model.parameters()} == {"cpu"}


def test_the_memnet_command_keeps_freed_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    applied: list[bool] = []
    monkeypatch.setattr(cpu_settings, "retain_freed_memory", lambda: applied.append(True))
    assert cli.main(["info", "tiny"]) == 0
    assert applied == [True]


def test_a_pictures_planes_come_out_of_the_budget(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from memnet.inference import api
    from memnet.inference.memory import picture_plane_bytes

    path = tmp_path / "tiny-denoise.safetensors"
    save_weights(tiny(), path, {"task": "denoise"})
    restorer = memnet.load(path, device="cpu", color="rgb")
    samples = np.random.default_rng(7).integers(0, 256, (24, 20, 3), dtype=np.uint8)
    picture = Picture(samples)
    planes = picture_plane_bytes(samples, None, (24, 20), "rgb", resamples=False, depth=8)
    budgets: list[int] = []
    planning = engine.Restorer.plan

    def plan(self: Restorer, height: int, width: int, budget: int | None = None) -> object:
        budgets.append(-1 if budget is None else budget)
        return planning(self, height, width, budget)

    monkeypatch.setattr(engine.Restorer, "plan", plan)
    counted_budget(monkeypatch, 10**6)
    restored = restorer.restore_for_file(picture, tmp_path / "out.png")
    assert budgets == [10**6 - planes]  # the network gets what the planes leave
    assert restored.pixels.dtype == np.uint8
    counted_budget(monkeypatch, planes // 2)  # planes beyond the budget: the smallest plan
    restorer.restore_for_file(picture, tmp_path / "out.png")
    assert budgets[-1] == 0
    assert api.activation_budget(10**6, planes, torch.device("cuda")) == 10**6  # GPU memory
