"""The Winograd F(4×4, 3×3) kernel: exact to its fp32 bound, fused epilogues, the network's
choice of it, and unchanged quality of every released model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from memnet.evaluation.benchmark import evaluate, load_set
from memnet.inference import native, winograd
from memnet.inference.engine import Restorer
from memnet.inference.fast_network import InferenceMemNet
from memnet.model import MemNet, MemNetConfig
from memnet.weights import zoo
from memnet.weights.loading import load_model
from rounding import inference_bound

needs_kernel = pytest.mark.skipif(
    winograd.kernel() is None, reason=f"Winograd kernel: {winograd.kernel_status()}"
)


def channels_last(*shape: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator).contiguous(memory_format=torch.channels_last)


def exact_conv(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, pad_rows: int
) -> torch.Tensor:
    return F.conv2d(x.double(), weight.double(), bias.double(), padding=(pad_rows, 1))


@needs_kernel
@pytest.mark.parametrize("channels", [32, 64])
@pytest.mark.parametrize(
    ("batch", "height", "width", "pad_rows"),
    [(1, 37, 53, 1), (2, 18, 30, 0), (1, 5, 7, 1), (1, 3, 9, 0), (3, 1, 4, 1)],
)
def test_kernel_is_within_its_fp32_bound_elementwise(
    channels: int, batch: int, height: int, width: int, pad_rows: int
) -> None:
    # Odd sizes: partial tiles at the right and bottom edges, tiles spanning images of a batch.
    weight = channels_last(channels, channels, 3, 3, seed=1) * 0.05
    bias = torch.randn(channels, generator=torch.Generator().manual_seed(2)) * 0.1
    x = channels_last(batch, channels, height, width)
    conv = winograd.WinogradConv(weight, bias)
    y = conv(x, pad_rows)
    exact = exact_conv(x, weight, bias, pad_rows)
    assert y.shape == exact.shape
    assert y.is_contiguous(memory_format=torch.channels_last)
    bound = winograd.error_bound(x, weight, bias, pad_rows)
    assert bool(((y.double() - exact).abs() <= bound).all())
    # The bound means something: γ_k (about 5e-6 here) times a chain some hundreds of times
    # Σ|w||x| stays two orders of magnitude below the output, so an error of 1 % is caught.
    assert float(bound.max()) < 1e-2 * float(exact.abs().max())


@needs_kernel
@pytest.mark.parametrize("pad_rows", [(1, 0), (0, 1), (1, 1), (0, 0)])
def test_input_activated_as_it_is_read(pad_rows: tuple[int, int]) -> None:
    # conv(relu(scale·x + shift)) padded with zero rows only where pad_rows says: a strip at
    # the image's top, its bottom, a whole image, a strip inside it.
    channels = 32
    weight = channels_last(channels, channels, 3, 3, seed=1) * 0.05
    bias = torch.randn(channels, generator=torch.Generator().manual_seed(2)) * 0.1
    generator = torch.Generator().manual_seed(5)
    scale = torch.rand(channels, generator=generator) + 0.5
    shift = torch.rand(channels, generator=generator) - 0.5  # relu(shift) > 0 for some
    x = channels_last(1, channels, 11, 14)
    conv = winograd.WinogradConv(weight, bias)
    y = conv(x, pad_rows, pre=(scale, shift))
    per_channel = (1, -1, 1, 1)
    activated = x.double() * scale.double().view(per_channel) + shift.double().view(per_channel)
    activated = activated.clamp(min=0)
    top, bottom = pad_rows
    exact = F.conv2d(F.pad(activated, (1, 1, top, bottom)), weight.double(), bias.double())
    assert y.shape == exact.shape
    bound = winograd.error_bound(activated, weight, bias, pad_rows, activated=True)
    assert bool(((y.double() - exact).abs() <= bound).all())
    if top or bottom:
        # Activating the zero rows (relu(shift) where they should stay 0) breaks the bound.
        wrong = F.pad(x.double(), (0, 0, top, bottom)) * scale.double().view(per_channel)
        wrong = (wrong + shift.double().view(per_channel)).clamp(min=0)
        wrong = F.conv2d(F.pad(wrong, (1, 1, 0, 0)), weight.double(), bias.double())
        assert bool(((wrong - exact).abs() > bound).any())


@needs_kernel
def test_blocks_of_any_size_give_the_same_bits() -> None:
    # A tile takes the first transform pass of the two columns it shares with its left
    # neighbour in the same block, tile row and image; where blocks start differs with their
    # size, so each size shares different pairs, and all must give one result.
    channels = 32
    weight = channels_last(channels, channels, 3, 3, seed=3) * 0.05
    bias = torch.randn(channels, generator=torch.Generator().manual_seed(4)) * 0.1
    generator = torch.Generator().manual_seed(6)
    scale = torch.rand(channels, generator=generator) + 0.5
    shift = torch.rand(channels, generator=generator) - 0.5
    x = channels_last(2, channels, 13, 30, seed=7)  # 8 tiles a row, the last one partial
    conv = winograd.WinogradConv(weight, bias)
    results = []
    for block in (6, 12, 18, 600):
        conv.block = block
        results.append(conv(x, (1, 1), pre=(scale, shift)))
    assert all(torch.equal(result, results[0]) for result in results[1:])
    activated = (
        x.double() * scale.double().view(1, -1, 1, 1) + shift.double().view(1, -1, 1, 1)
    ).clamp(min=0)
    exact = F.conv2d(activated, weight.double(), bias.double(), padding=1)
    bound = winograd.error_bound(activated, weight, bias, (1, 1), activated=True)
    assert bool(((results[0].double() - exact).abs() <= bound).all())


@needs_kernel
def test_a_wrong_weight_transform_breaks_the_bound() -> None:
    weight = channels_last(32, 32, 3, 3, seed=1) * 0.05
    bias = torch.zeros(32)
    x = channels_last(1, 32, 12, 12)
    conv = winograd.WinogradConv(
        weight.transpose(2, 3), bias
    )  # the filter flipped about its diagonal
    error = (conv(x, 1).double() - exact_conv(x, weight, bias, 1)).abs()
    assert bool((error > winograd.error_bound(x, weight, bias)).any())


@needs_kernel
def test_fused_relu_and_add_in_place() -> None:
    weight = channels_last(64, 32, 3, 3, seed=1) * 0.05
    bias = torch.randn(64, generator=torch.Generator().manual_seed(3)) * 0.1
    x = channels_last(1, 32, 20, 17)
    conv = winograd.WinogradConv(weight, bias)
    exact = exact_conv(x, weight, bias, 0)
    other = channels_last(1, 64, 18, 17, seed=4)
    # Each epilogue adds at most one rounding of the result to the conv's bound.
    slack = winograd.error_bound(x, weight, bias, 0) + 2 * winograd.UNIT_ROUNDOFF * (
        exact.abs() + other.double().abs()
    )
    relu = conv(x, 0, relu=True).double()
    assert bool(((relu - exact.clamp(min=0)).abs() <= slack).all())
    added = conv(x, 0, add=other).double()
    assert bool(((added - (exact + other.double())).abs() <= slack).all())
    target = other.clone()
    assert conv(x, 0, add=target, out=target) is target
    assert torch.equal(target.double(), added)


def _split(t: torch.Tensor, rows: int) -> winograd.SplitRows:
    """`t`'s rows in two runs, stored apart as a ring buffer stores them: the last rows first."""
    ring = torch.empty_like(t)
    tail = t.shape[2] - rows
    ring[:, :, :tail] = t[:, :, rows:]
    ring[:, :, tail:] = t[:, :, :rows]
    return winograd.SplitRows(ring[:, :, tail:], ring[:, :, :tail])


@needs_kernel
@pytest.mark.parametrize("pad_rows", [(0, 0), (1, 0), (0, 1)])
@pytest.mark.parametrize(("x_cut", "y_cut"), [(1, 3), (5, 5), (9, 1), (2, 7)])
def test_rows_in_two_runs_give_the_same_bits(
    pad_rows: tuple[int, int], x_cut: int, y_cut: int
) -> None:
    # A ring buffer's rows that wrap: input, residual and output each cut at its own row. The
    # kernel reads and writes them in place, with the arithmetic of one contiguous tensor.
    weight = channels_last(32, 32, 3, 3, seed=1) * 0.05
    bias = torch.randn(32, generator=torch.Generator().manual_seed(3)) * 0.1
    conv = winograd.WinogradConv(weight, bias)
    x = channels_last(1, 32, 10, 23, seed=2)
    scale, shift = torch.rand(32) + 0.5, torch.randn(32) * 0.1
    out_rows = 10 + sum(pad_rows) - 2
    other = channels_last(1, 32, out_rows, 23, seed=4)
    target = other.clone()
    conv(x, pad_rows, pre=(scale, shift), add=target, out=target, relu=True)
    split_x, split_y = _split(x, x_cut), _split(other.clone(), min(y_cut, out_rows - 1))
    assert (
        conv(split_x, pad_rows, pre=(scale, shift), add=split_y, out=split_y, relu=True) is split_y
    )
    assert torch.equal(torch.cat([split_y.head, split_y.tail], dim=2), target)
    fresh = conv(x, pad_rows)
    into = _split(torch.empty_like(fresh), min(y_cut, out_rows - 1))
    conv(split_x, pad_rows, out=into)
    assert torch.equal(torch.cat([into.head, into.tail], dim=2), fresh)


@needs_kernel
def test_the_kernel_refuses_split_rows_of_a_batch() -> None:
    conv = winograd.WinogradConv(torch.zeros(32, 32, 3, 3), None)
    with pytest.raises(ValueError, match="cannot take"):
        conv(_split(channels_last(2, 32, 8, 8), 3), 1)


@needs_kernel
def test_the_kernel_refuses_shapes_it_cannot_take() -> None:
    assert not winograd.suits(torch.zeros(64, 1, 3, 3))  # FENet: one input channel
    assert not winograd.suits(torch.zeros(1, 64, 3, 3))  # reconstruction: one output channel
    assert not winograd.suits(torch.zeros(64, 64, 1, 1))  # a gate
    conv = winograd.WinogradConv(torch.zeros(32, 32, 3, 3), None)
    assert not conv.takes(torch.zeros(1, 32, 8, 8))  # contiguous NCHW, not channels_last
    assert not conv.takes(channels_last(1, 32, 8, 8).double())
    with pytest.raises(ValueError, match="cannot take"):
        conv(channels_last(1, 32, 2, 8), 0)  # no output row


@pytest.fixture
def winograd_chosen() -> Iterator[None]:
    """Every suitable conv takes the Winograd path, whatever this machine measured."""
    with winograd.forced(True):
        yield


@needs_kernel
@pytest.mark.usefixtures("winograd_chosen")
def test_the_network_runs_its_inner_convs_through_winograd() -> None:
    torch.manual_seed(0)
    model = MemNet(2, 2, 32).eval()
    fast = InferenceMemNet(model)
    chosen = [conv for conv in fast.modules() if getattr(conv, "winograd", None) is not None]
    # conv_a per recursion and conv_b per block; FENet (1→32) and reconstruction (32→1) stay direct.
    assert len(chosen) == 2 * (2 + 1)
    assert fast.fenet.winograd is None
    assert fast.reconstruction.winograd is None
    x = torch.rand(2, 1, 29, 35)
    with torch.inference_mode():
        plain = model(x)
        assert (fast(x) - plain).abs().max() <= inference_bound(
            model.config, plain.abs().max().item()
        )


def test_decision_is_measured_once_and_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if winograd.kernel() is None:
        assert not winograd.faster_than_direct(64, 64)
        return
    monkeypatch.setenv("MEMNET_CACHE_DIR", str(tmp_path))
    measured: list[tuple[int, int]] = []
    real = winograd._measure

    def counted(channels: int, out_channels: int, threads: int) -> bool:
        measured.append((channels, out_channels))
        return real(channels, out_channels, threads)

    monkeypatch.setattr(winograd, "_measure", counted)
    first = winograd.faster_than_direct(32, 32)
    assert winograd.faster_than_direct(32, 32) == first
    assert measured == [(32, 32)]
    record = json.loads((tmp_path / "kernels" / "winograd-decisions.json").read_text())
    assert record == {f"32x32@{torch.get_num_threads()}/{native.isa()}": first}


def test_switched_off_by_the_environment(tmp_path: Path) -> None:
    code = (
        "from memnet.inference import winograd as w; print(w.kernel() is None, w.kernel_status())"
    )
    env = {**os.environ, "MEMNET_WINOGRAD": "0", "MEMNET_CACHE_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "True off (MEMNET_WINOGRAD=0)"


def test_without_a_compiler_the_direct_conv_is_used(tmp_path: Path) -> None:
    code = (
        "from memnet.inference import winograd as w\n"
        "from memnet.inference.fast_network import InferenceMemNet\n"
        "from memnet.model import MemNet\n"
        "fast = InferenceMemNet(MemNet(1, 1, 32).eval())\n"
        "print(w.kernel() is None, fast.registered[0].conv_b.winograd is None, w.kernel_status())"
    )
    env = {
        **os.environ,
        "CXX": "no-such-compiler",
        "PATH": "/nonexistent",
        "MEMNET_CACHE_DIR": str(tmp_path),
    }
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    first, second, status = out.stdout.strip().split(" ", 2)
    assert (first, second) == ("True", "True")
    assert "compiler" in status or "AVX2" in status


# Each released model on its task's small validation set, at every level the check runs.
QUALITY_SET = {"sr": "Set5", "denoise": "Set12", "jpeg": "Classic5"}
QUALITY_LEVELS = {"sr": [2.0, 3.0, 4.0], "denoise": [25.0, 50.0], "jpeg": [10.0, 20.0]}


def _scores(name: str, datasets: Path, *, fast: bool) -> list[float]:
    entry = zoo.get(name)
    bench = load_set(QUALITY_SET[entry.task], datasets, kind=entry.task)
    # The paper-size network is 12× the work of the light ones: its smallest image keeps the
    # check short; the light ones take the 5 smallest (all of Set5).
    order = sorted(range(len(bench)), key=lambda i: bench.images[i].size)
    keep = order[: 1 if entry.config.channels > 32 else 5]
    bench = replace(
        bench,
        names=tuple(bench.names[i] for i in keep),
        images=tuple(bench.images[i] for i in keep),
    )
    with winograd.forced(fast):
        model = load_model(name).network
        assert model is not None
        restorer = Restorer(model, device="cpu")
        chosen = any(getattr(m, "winograd", None) is not None for m in restorer.optimized.modules())
        assert chosen == fast
        report = evaluate(
            entry.task, QUALITY_LEVELS[entry.task], [bench], restorer, method_name=name
        )
    return [score.psnr for score in report.summary]


@needs_kernel
@pytest.mark.datasets
@pytest.mark.parametrize("name", sorted(zoo.REGISTRY))
def test_released_models_score_the_same_with_winograd(name: str, datasets: Path) -> None:
    direct = _scores(name, datasets, fast=False)
    fast = _scores(name, datasets, fast=True)
    assert all(abs(a - b) <= 0.01 for a, b in zip(direct, fast, strict=True)), (direct, fast)


def test_config_channels_of_the_released_models_suit_the_kernel() -> None:
    # Every released network's inner convs have channel counts the kernel takes.
    for name in zoo.REGISTRY:
        config: MemNetConfig = zoo.get(name).config
        assert config.channels % 16 == 0, name


@needs_kernel
def test_forced_choice_applies_inside_only() -> None:
    model = MemNet(1, 2, 32).eval()
    with winograd.forced(False):
        assert InferenceMemNet(model).registered[0].conv_b.winograd is None
        with winograd.forced(True):
            assert InferenceMemNet(model).registered[0].conv_b.winograd is not None
        assert InferenceMemNet(model).registered[0].conv_b.winograd is None
    assert winograd._FORCED is None
