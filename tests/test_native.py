"""memnet's own kernels: built once per machine, and the fused gate share exact to rounding."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from memnet.inference import native
from memnet.inference.fast_layers import Affine, GateShare, native_share, native_shares
from memnet.inference.fast_network import InferenceMemNet
from memnet.model import MemNet
from rounding import inference_bound

needs_library = pytest.mark.skipif(native.library() is None, reason=f"kernels: {native.status()}")
# The smallest channel counts the loaded build takes: one vector in, two vectors out.
LANES = native.vector_lanes()
U32 = 2.0**-24


def channels_last(*shape: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator).contiguous(memory_format=torch.channels_last)


class _Pre(Affine):
    """An Affine with given per-channel scale and shift."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor) -> None:
        torch.nn.Module.__init__(self)
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)


def _gate_case(
    channels: int, out_channels: int, width: int, bias: bool
) -> tuple[_Pre, GateShare, torch.Tensor]:
    generator = torch.Generator().manual_seed(channels + width)
    pre = _Pre(
        torch.rand(channels, generator=generator) + 0.5,
        torch.randn(channels, generator=generator) * 0.2,
    )
    weight = torch.randn(out_channels, channels, 1, 1, generator=generator) * 0.2
    conv = GateShare(weight, torch.randn(out_channels, generator=generator) if bias else None)
    memory = channels_last(1, channels, 3, width, seed=1)
    return pre, conv, memory


def _exact(pre: _Pre, conv: GateShare, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The share in float64, and the magnitude its fp32 rounding is relative to."""
    x = memory.double()
    activated = (
        x * pre.scale.double().view(1, -1, 1, 1) + pre.shift.double().view(1, -1, 1, 1)
    ).clamp(min=0)
    w = conv.weight.double()
    bias = None if conv.bias is None else conv.bias.double()
    exact = torch.nn.functional.conv2d(activated, w, bias)
    magnitude = torch.nn.functional.conv2d(
        activated.abs(), w.abs(), None if bias is None else bias.abs()
    )
    return exact, magnitude


@needs_library
@pytest.mark.parametrize(
    ("channels", "out_channels"), [(32, 32), (64, 64), (LANES, 2 * LANES), (64, 32)]
)
@pytest.mark.parametrize("width", [1, 5, 6, 7, 131])  # pixel counts around the 6-pixel groups
@pytest.mark.parametrize("bias", [True, False])
def test_gate_share_is_the_activated_matrix_product(
    channels: int, out_channels: int, width: int, bias: bool
) -> None:
    pre, conv, memory = _gate_case(channels, out_channels, width, bias)
    exact, magnitude = _exact(pre, conv, memory)
    # Each output is an FMA chain over C terms after one FMA for the activation: within
    # γ_(C+2) of its absolute magnitude (Higham §3.1), and twice that with the sum it goes into.
    gamma = (channels + 2) * U32 / (1 - (channels + 2) * U32)
    shape = (1, out_channels, 3, width)
    target = torch.empty(shape).contiguous(memory_format=torch.channels_last)
    assert native_share(target, memory, pre, conv, accumulate=False)
    assert bool(((target.double() - exact).abs() <= gamma * magnitude).all())
    start = channels_last(*shape, seed=2)
    total = start.clone()
    assert native_share(total, memory, pre, conv, accumulate=True)
    expected = start.double() + exact
    slack = 2 * gamma * (magnitude + start.double().abs())
    assert bool(((total.double() - expected).abs() <= slack).all())


@needs_library
@pytest.mark.parametrize(("channels", "out_channels"), [(32, 32), (64, 64), (LANES, 4 * LANES)])
@pytest.mark.parametrize("count", [1, 2, 5])
@pytest.mark.parametrize("width", [1, 7, 131])
def test_shares_summed_in_one_call_are_the_shares_added_in_turn(
    channels: int, out_channels: int, count: int, width: int
) -> None:
    # The streamed network starts each gate with its long-term memories' and H_1's shares in
    # one call; it must give the bits of one call per share, the first carrying the bias.
    cases = [_gate_case(channels, out_channels, width + j, j == 0) for j in range(count)]
    generator = torch.Generator().manual_seed(count)
    memories = [
        torch.randn(1, channels, 3, width, generator=generator).contiguous(
            memory_format=torch.channels_last
        )
        for _ in cases
    ]
    shape = (1, out_channels, 3, width)
    in_turn = torch.empty(shape).contiguous(memory_format=torch.channels_last)
    for j, ((pre, conv, _), memory) in enumerate(zip(cases, memories, strict=True)):
        assert native_share(in_turn, memory, pre, conv, accumulate=j > 0)
    at_once = torch.full(shape, float("nan")).contiguous(memory_format=torch.channels_last)
    pres = [pre for pre, _, _ in cases]
    convs = [conv for _, conv, _ in cases]
    assert native_shares(at_once, memories, pres, convs)
    assert torch.equal(at_once, in_turn)
    # Only the first share may carry a bias: the kernel adds it before every product.
    assert not native_shares(at_once, memories[::-1], pres[::-1], convs[::-1]) or count == 1


@needs_library
def test_gate_share_declines_what_it_cannot_take() -> None:
    pre, conv, memory = _gate_case(16, 8, 4, False)  # 8 outputs: fewer than two vectors
    target = torch.empty(1, 8, 3, 4).contiguous(memory_format=torch.channels_last)
    assert not native_share(target, memory, pre, conv, accumulate=False)
    pre, conv, memory = _gate_case(32, 32, 4, False)
    nchw = torch.empty(1, 32, 3, 4)  # not channels_last: no (pixels, C) rows
    assert not native_share(nchw, memory, pre, conv, accumulate=False)


def test_network_matches_the_plain_model_with_and_without_the_kernels(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = MemNet(2, 3, 32).eval()
    x = torch.rand(1, 1, 31, 40)
    with torch.inference_mode():
        plain = model(x)
        fast = InferenceMemNet(model)(x)
    assert (fast - plain).abs().max() <= inference_bound(model.config, plain.abs().max().item())
    # The same network in a process where the kernels are off: PyTorch's operators only.
    code = (
        "import torch; from memnet.inference import native; from memnet.model import MemNet\n"
        "from memnet.inference.fast_network import InferenceMemNet\n"
        "torch.manual_seed(0); model = MemNet(2, 3, 32).eval(); x = torch.rand(1, 1, 31, 40)\n"
        "with torch.inference_mode(): y = InferenceMemNet(model)(x)\n"
        f"torch.save(y, {str(tmp_path / 'y.pt')!r}); print(native.status())"
    )
    env = {**os.environ, "MEMNET_NATIVE": "0"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "off (MEMNET_NATIVE=0)"
    without = torch.load(tmp_path / "y.pt")
    assert (without - plain).abs().max() <= inference_bound(model.config, plain.abs().max().item())


@needs_library
def test_library_is_built_once_and_reused(tmp_path: Path) -> None:
    code = "from memnet.inference import native; print(native.status())"
    env = {**os.environ, "MEMNET_CACHE_DIR": str(tmp_path)}
    runs = [
        subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        for _ in range(2)
    ]
    built = list(tmp_path.glob("kernels/*/libmemnet_kernels.so"))
    assert len(built) == 1
    assert runs[0].stdout == runs[1].stdout
    assert runs[0].stdout.endswith(f" in {built[0].parent}\n")
    # Nothing half-written is left beside it.
    assert [p.name for p in built[0].parent.iterdir()] == ["libmemnet_kernels.so"]


_SAME_BITS = """
import sys, numpy as np, torch
from memnet.inference import native, winograd
from memnet.inference.fast_network import InferenceMemNet
from memnet.inference.streaming import StreamedMemNet
from memnet.model import MemNet
from memnet.training.fused_preactivations import use_fused_preactivations
from memnet.training.winograd_convs import use_winograd_convs
outputs = {}
for channels in (32, 64):  # two vectors of K per block, and (AVX-512) four
    torch.manual_seed(channels)
    model = MemNet(2, 2, channels).eval()
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.running_mean.uniform_(-0.2, 0.2)
        bn.running_var.uniform_(0.5, 1.5)
    with winograd.forced(True):
        net = InferenceMemNet(model)
    x = torch.rand(1, 1, 37, 53, generator=torch.Generator().manual_seed(1))
    outputs[f"whole{channels}"] = net(x).numpy()
    outputs[f"streamed{channels}"] = StreamedMemNet(net, rows=8)(x).numpy()
# a training step through the fused τ, recursion and gate kernels: every gradient
torch.manual_seed(0)
model = MemNet(2, 2, 32).to(memory_format=torch.channels_last).train()
use_winograd_convs(model)
use_fused_preactivations(model)
x = torch.rand(4, 1, 19, 23, generator=torch.Generator().manual_seed(2))
model(x.contiguous(memory_format=torch.channels_last)).square().sum().backward()
for name, parameter in model.named_parameters():
    outputs[f"grad.{name}"] = parameter.grad.numpy()
np.savez(sys.argv[1], **outputs)
print(native.isa())
"""


@needs_library
@pytest.mark.skipif(native.isa() != "avx512", reason="no AVX-512 here: only the AVX2 build runs")
def test_the_avx512_and_avx2_builds_give_the_same_bits(tmp_path: Path) -> None:
    """Every lane does the same fp32 operations in the same order in both builds (simd.h), so
    a network through either build gives the same output, and a training step the same
    gradients, bit for bit."""
    results = {}
    for isa in ("avx512", "avx2"):
        env = {**os.environ, "MEMNET_ISA": isa}
        done = subprocess.run(
            [sys.executable, "-c", _SAME_BITS, str(tmp_path / f"{isa}.npz")],
            env=env, capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert done.stdout.strip() == isa
        results[isa] = np.load(tmp_path / f"{isa}.npz")
    for name in results["avx2"].files:
        assert np.array_equal(results["avx512"][name], results["avx2"][name]), name


def test_an_instruction_set_is_asked_for_by_name() -> None:
    code = "from memnet.inference import native; print(native.status())"
    for asked, expected in (("sse", "not used: MEMNET_ISA must be one of avx2, avx512"),):
        env = {**os.environ, "MEMNET_ISA": asked}
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert done.stdout.strip() == expected


@needs_library
@pytest.mark.skipif(native.isa() != "avx512", reason="no AVX-512 here: nothing to fall back from")
def test_a_compiler_without_avx512_falls_back_to_the_avx2_build(tmp_path: Path) -> None:
    compiler = tmp_path / "c++"
    compiler.write_text(
        "#!/bin/sh\n"
        'case "$*" in *-mavx512f*) echo "unrecognized option -mavx512f" >&2; exit 1;; esac\n'
        f'exec {native._compiler()} "$@"\n'
    )
    compiler.chmod(0o755)
    code = "from memnet.inference import native; print(native.isa()); print(native.status())"
    env = {**os.environ, "CXX": str(compiler), "MEMNET_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    isa, status = done.stdout.splitlines()
    assert isa == "avx2"
    assert status.startswith("AVX2 build (the AVX-512 build failed: unrecognized option -mavx512f)")
