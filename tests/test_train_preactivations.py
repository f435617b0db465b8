"""Training's pre-activations through memnet's kernel (memnet.training.fused_preactivations):
the activation, its gradients and the running statistics within bounds derived from the
kernel's fp32 sums, the same bits for any thread count, and the plain module's state."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from memnet.inference import native, winograd
from memnet.model import GateUnit, MemNet, PreActivation
from memnet.training import fused_preactivations
from memnet.training.fused_preactivations import FusedPreActivation, use_fused_preactivations
from memnet.training.winograd_convs import use_winograd_convs
from rounding import float32_bound, winograd_growth
from test_train_winograd import step_gradients
from test_winograd import needs_kernel

EPS32 = 2.0**-24
CHUNK = 128  # kernels/batchnorm.cpp: pixels per fp32 partial sum

needs_kernels = pytest.mark.skipif(
    native.library() is None, reason=f"memnet's kernels are not used here: {native.status()}"
)


def gamma(k: int) -> float:
    """γ_k: the relative error bound of a chain of k fp32 roundings (Higham §3.1)."""
    return k * EPS32 / (1 - k * EPS32)


def activations(n: int, c: int, h: int, w: int, seed: int) -> torch.Tensor:
    """A channels_last batch with an offset and spread per channel, as a conv's output has."""
    generator = torch.Generator().manual_seed(seed)
    offset = torch.randn(1, c, 1, 1, generator=generator) * 3
    spread = torch.rand(1, c, 1, 1, generator=generator) + 0.1
    x = offset + spread * torch.randn(n, c, h, w, generator=generator)
    return x.contiguous(memory_format=torch.channels_last)


def fused_copy(pre: PreActivation) -> PreActivation:
    fast = copy.deepcopy(pre)
    assert use_fused_preactivations(fast) == 1
    return fast


def statistics_errors(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact batch mean and variance (float64) and bounds on the kernel's errors in them: its
    sums of d = x − x[0] run in fp32 over at most CHUNK pixels (one rounding for d, one per add,
    one for d² by fma), then in float64; var = mean(d²) − mean(d)²."""
    x64 = x.double()
    mean, var = x64.mean(dim=(0, 2, 3)), x64.var(dim=(0, 2, 3), unbiased=False)
    d = (x64 - x64[:1, :, :1, :1]).abs()
    mean_d = d.mean(dim=(0, 2, 3))
    error_mean = gamma(CHUNK + 1) * mean_d
    error_var = gamma(CHUNK + 2) * (d.pow(2).mean(dim=(0, 2, 3)) + 2 * mean_d * mean_d)
    return mean, var, torch.stack([error_mean, error_var])


def counted_calls(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """A list that grows by one at each call of fused_preactivations.`name`."""
    calls: list[int] = []
    function = getattr(fused_preactivations, name)

    def counted(*args: object, **kwargs: object) -> torch.Tensor:
        calls.append(1)
        result: torch.Tensor = function(*args, **kwargs)
        return result

    monkeypatch.setattr(fused_preactivations, name, counted)
    return calls


def per_channel(t: torch.Tensor) -> torch.Tensor:
    return t.view(1, -1, 1, 1)


@needs_kernels
@pytest.mark.parametrize("channels", [1, 32, 40])
def test_activation_gradients_and_running_statistics_within_their_fp32_bounds(
    channels: int,
) -> None:
    torch.manual_seed(0)
    plain = PreActivation(channels)
    with torch.no_grad():
        plain.norm.weight.uniform_(0.5, 1.5)
        plain.norm.bias.uniform_(-0.5, 0.5)
    fast = fused_copy(plain)
    x = activations(6, channels, 23, 29, seed=1).requires_grad_()
    grad = activations(6, channels, 23, 29, seed=2)
    y = fast(x)
    y.backward(grad)
    assert x.grad is not None
    norm = fast.norm
    assert norm.weight.grad is not None
    assert norm.bias.grad is not None

    mean, var, (error_mean, error_var) = statistics_errors(x.detach())
    eps, u = plain.norm.eps, EPS32
    invstd = torch.rsqrt(var + eps)
    weight = plain.norm.weight.detach().double()
    scale, shift = weight * invstd, plain.norm.bias.detach().double() - mean * weight * invstd
    x64 = x.detach().double()
    centered = x64 - per_channel(mean)
    # A relative error ε in var + eps moves invstd by ε/2.
    error_invstd = error_var / (2 * (var + eps))

    # Forward: the statistics' errors carried through scale·x + shift, then the roundings of
    # scale and shift to fp32 and the fma (ReLU moves nothing by more than its input).
    pre = per_channel(scale) * x64 + per_channel(shift)
    bound_y = per_channel(scale.abs()) * (
        per_channel(error_mean) + centered.abs() * per_channel(error_invstd)
    ) + 3 * u * ((per_channel(scale) * x64).abs() + per_channel(shift.abs()))
    assert bool(((y.detach().double() - pre.clamp(min=0)).abs() <= bound_y).all())

    # Backward, with the kernel's own ReLU mask (an input within rounding of the kink may fall
    # either side of it): g = dy·mask, the sums Σg and Σg·(x − mean) over ≤ CHUNK-term fp32
    # partials, then dx = scale·(g − Σg/P − (x − mean)·invstd²·Σg·(x − mean)/P).
    pixels = x.numel() // channels
    g = grad.double() * (y.detach() > 0)
    sum_g, sum_gx = g.sum(dim=(0, 2, 3)), (g * centered).sum(dim=(0, 2, 3))
    a, b = sum_g / pixels, invstd**2 * sum_gx / pixels
    exact_dx = per_channel(scale) * (g - per_channel(a) - centered * per_channel(b))
    abs_g = g.abs().sum(dim=(0, 2, 3))
    error_sum_g = gamma(CHUNK) * abs_g
    error_sum_gx = (
        gamma(CHUNK + 2) * (g.abs() * centered.abs()).sum(dim=(0, 2, 3))
        + (u * mean.abs() + error_mean) * abs_g
    )
    error_a = error_sum_g / pixels + u * a.abs()
    error_b = invstd**2 * error_sum_gx / pixels + b.abs() * (2 * error_invstd + 2 * u)
    inner = g.abs() + per_channel(a.abs()) + centered.abs() * per_channel(b.abs())
    bound_dx = per_channel(scale.abs()) * (
        per_channel(error_a + error_mean * b.abs())
        + centered.abs() * per_channel(error_b)
        + 4 * u * inner
    ) + exact_dx.abs() * per_channel(u + error_invstd)
    assert bool(((x.grad.double() - exact_dx).abs() <= bound_dx).all())
    exact_dweight = invstd * sum_gx
    bound_dweight = invstd * error_sum_gx + exact_dweight.abs() * (error_invstd + 2 * u)
    assert bool(((norm.weight.grad.double() - exact_dweight).abs() <= bound_dweight).all())
    assert bool(((norm.bias.grad.double() - sum_g).abs() <= error_sum_g + u * sum_g.abs()).all())
    # The bounds mean something: far below the magnitudes they bound (a lost term, a wrong
    # mask or a wrong mean moves these by a sizeable part of them).
    assert float(bound_dx.max()) < 1e-3 * float(exact_dx.abs().max())
    assert float(bound_y.max()) < 1e-4 * float(pre.abs().max())

    # The running statistics move as BatchNorm2d moves them (the variance unbiased).
    m = plain.norm.momentum
    assert m is not None
    expected_mean = m * mean
    expected_var = (1 - m) + m * var * pixels / (pixels - 1)
    assert norm.running_mean is not None
    assert norm.running_var is not None
    bound_mean = m * error_mean + 4 * u * (expected_mean.abs() + m * mean.abs())
    assert bool(((norm.running_mean.double() - expected_mean).abs() <= bound_mean).all())
    bound_var = m * error_var * pixels / (pixels - 1) + 4 * u * expected_var
    assert bool(((norm.running_var.double() - expected_var).abs() <= bound_var).all())
    assert int(norm.num_batches_tracked) == 1


@needs_kernels
def test_the_same_bits_with_one_thread_or_two() -> None:
    """The sums are taken per fixed chunk of pixels and the chunks added in order."""
    pre = PreActivation(32)
    results = []
    threads = torch.get_num_threads()
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            fast = fused_copy(pre)
            x = activations(4, 32, 31, 31, seed=3).requires_grad_()
            y = fast(x)
            y.backward(activations(4, 32, 31, 31, seed=4))
            assert fast.norm.weight.grad is not None
            results.append((y, x.grad, fast.norm.weight.grad, fast.norm.running_var))
    finally:
        torch.set_num_threads(threads)
    for one, two in zip(*results, strict=True):
        assert torch.equal(one, two)


@needs_kernels
def test_a_gate_gives_the_same_bits_with_one_thread_or_two() -> None:
    """The gate's backward sums its weight's gradient per fixed run of pixels, in order."""
    plain = GateUnit(memories=3, channels=32)
    results = []
    threads = torch.get_num_threads()
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            fast = copy.deepcopy(plain).to(memory_format=torch.channels_last)
            use_fused_preactivations(fast)
            memories = [activations(8, 32, 31, 31, seed=30 + j).requires_grad_() for j in range(3)]
            y = fast(memories)
            y.backward(activations(8, 32, 31, 31, seed=40))
            results.append((y, *(m.grad for m in memories), *(p.grad for p in fast.parameters())))
    finally:
        torch.set_num_threads(threads)
    for one, two in zip(*results, strict=True):
        assert one is not None
        assert two is not None
        assert torch.equal(one, two)


@needs_kernels
def test_the_switch_keeps_the_module_and_falls_back_where_the_kernel_does_not_apply() -> None:
    torch.manual_seed(0)
    model = MemNet(2, 2, 32).to(memory_format=torch.channels_last)
    keys = list(model.state_dict())
    parameters = [id(p) for p in model.parameters()]
    pres = [id(m) for m in model.modules() if isinstance(m, PreActivation)]
    # FENet's, two per recursion, each gate's, each branch's
    assert use_fused_preactivations(model) == 1 + 2 * 2 * 2 + 2 + 2
    assert list(model.state_dict()) == keys
    assert [id(p) for p in model.parameters()] == parameters
    assert [id(m) for m in model.modules() if isinstance(m, FusedPreActivation)] == pres

    plain = PreActivation(32)
    fast = fused_copy(plain)
    x = activations(2, 32, 9, 9, seed=5)
    cases = {
        "NCHW input": (x.contiguous(), True),
        "eval mode": (x, False),
        "float64 input": (x.double(), True),
    }
    for case, (inputs, training) in cases.items():
        for module in (plain, fast):
            module.train(training)
            module.to(inputs.dtype)
        assert torch.equal(fast(inputs), plain(inputs)), case
    fast.float().train()
    untracked = fused_copy(PreActivation(32))
    untracked.norm.track_running_stats = False
    untracked.norm.running_mean = untracked.norm.running_var = None
    reference = nn.Sequential(nn.BatchNorm2d(32, track_running_stats=False), nn.ReLU())
    assert torch.equal(untracked(x), reference(x))


@needs_kernel
@winograd.forced(True)
def test_a_training_step_as_the_trainer_runs_it_is_as_close_to_exact_as_rounding_allows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The trainer's CPU model (both switches) against the same step in float64, within the
    depth-wise fp32 bound of tests/rounding.py (each 3×3 conv through Winograd rounding
    `winograd_growth` times more); with the pre-activations alone, within the plain bound.
    With the Winograd convs, each recursion's two τ → conv pairs run as two fused calls."""
    fused_calls = counted_calls(monkeypatch, "pre_activated_conv")
    torch.manual_seed(0)
    model = MemNet(2, 3, 32).to(memory_format=torch.channels_last).train()
    x = torch.rand(8, 1, 20, 20).contiguous(memory_format=torch.channels_last)
    target = torch.rand(8, 1, 20, 20)
    exact = step_gradients(copy.deepcopy(model).double(), x.double(), target.double())
    bound = float32_bound(model.config, float(exact.norm()))
    assert use_fused_preactivations(model) == 1 + 2 * 3 * 2 + 2 + 2
    fused = step_gradients(model, x, target)
    assert float((fused - exact).norm()) <= bound
    assert not fused_calls  # no Winograd convs yet: τ alone
    assert use_winograd_convs(model) == 4
    every = step_gradients(model, x, target)
    assert len(fused_calls) == 2 * 2 * 3
    assert float((every - exact).norm()) <= bound * winograd_growth()


@needs_kernels
def test_a_gate_runs_as_one_kernel_call_per_memory_as_close_to_exact_as_rounding_allows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fused gate unit (no concatenation, each memory activated as the gate kernel reads
    it) against the plain one in float64: its output and every gradient within the fp32
    bound of tests/rounding.py for a τ and a 1×1 conv summing all the memories' channels."""
    calls = counted_calls(monkeypatch, "pre_activated_gate")
    torch.manual_seed(0)
    plain = GateUnit(memories=3, channels=32)
    with torch.no_grad():
        plain.pre.norm.weight.uniform_(0.5, 1.5)
        plain.pre.norm.bias.uniform_(-0.5, 0.5)
        plain.conv.bias.uniform_(-0.5, 0.5)
    exact = copy.deepcopy(plain).double()
    fast = copy.deepcopy(plain).to(memory_format=torch.channels_last)
    use_fused_preactivations(fast)
    memories = [activations(4, 32, 13, 17, seed=10 + j).requires_grad_() for j in range(3)]
    grad = activations(4, 32, 13, 17, seed=20)
    memories64 = [m.detach().double().requires_grad_() for m in memories]
    exact(memories64).backward(grad.double())
    y = fast(memories)
    y.backward(grad)
    assert calls == [1]
    assert y.is_contiguous(memory_format=torch.channels_last)

    def bound(reference: torch.Tensor) -> float:
        # two layers of rounding (τ, the conv), the conv's sum over all 96 channels
        return 2 * math.sqrt(96) * EPS32 * float(reference.norm())

    y64 = exact(memories64).detach()
    pairs = [(y.detach(), y64)]
    pairs += [(m.grad, m64.grad) for m, m64 in zip(memories, memories64, strict=True)]
    pairs += [
        (p.grad, p64.grad) for p, p64 in zip(fast.parameters(), exact.parameters(), strict=True)
    ]
    for fused, reference in pairs:
        assert fused is not None
        assert reference is not None
        assert float((fused.double() - reference).norm()) <= bound(reference)
    # the running statistics are those of one BatchNorm over the concatenation
    concatenated = torch.cat([m.detach() for m in memories], dim=1)
    mean, _, (error_mean, _) = statistics_errors(concatenated)
    momentum = plain.pre.norm.momentum
    assert momentum is not None
    assert fast.pre.norm.running_mean is not None
    expected = momentum * mean
    bound_mean = momentum * error_mean + 4 * EPS32 * (expected.abs() + momentum * mean.abs())
    assert bool(((fast.pre.norm.running_mean.double() - expected).abs() <= bound_mean).all())
