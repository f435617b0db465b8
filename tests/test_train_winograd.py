"""CPU training through the Winograd kernel (memnet.training.winograd_convs): each gradient
within its fp32 bound, the switch invisible to parameters and states, and a whole step's
gradients as close to exact as rounding allows."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from memnet.inference import winograd
from memnet.model import MemNet
from memnet.training.winograd_convs import WinogradConv2d, use_winograd_convs
from rounding import float32_bound, winograd_growth
from test_winograd import channels_last, needs_kernel

EPS32 = 2.0**-24


def gamma(k: int) -> float:
    """γ_k: the relative error bound of a chain of k fp32 roundings (Higham §3.1)."""
    return k * EPS32 / (1 - k * EPS32)


def weight_gradient_bound(x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """Componentwise bound on the kernel's weight gradient: γ_k times the absolute chain
    |G|ᵀ[Σ_tiles (|Bᵀ||d||B|) ⊙ (|A||dy||Aᵀ|)]|G|, k counting two passes of Bᵀ and of A (4
    non-zeros per row each, a rounding per add), the sum over every tile, the threads' sum and
    the final rounding to fp32 (the G passes run in float64)."""
    bt, g, at = (
        torch.tensor(m, dtype=torch.float64).abs() for m in (winograd.BT, winograd.G, winograd.AT)
    )
    n, _, h, w = x.shape
    th, tw = -(-h // 4), -(-w // 4)
    d = F.pad(x.double().abs(), (1, tw * 4 + 1 - w, 1, th * 4 + 1 - h))
    v = torch.einsum("ij,ncabjk,lk->ncabil", bt, d.unfold(2, 6, 4).unfold(3, 6, 4), bt)
    dy = F.pad(grad.double().abs(), (0, tw * 4 - w, 0, th * 4 - h))
    dm = torch.einsum("ji,nkabjl,lm->nkabim", at, dy.unfold(2, 4, 4).unfold(3, 4, 4), at)
    du = torch.einsum("ncabij,nkabij->kcij", v, dm)
    chain = torch.einsum("ia,kcij,jb->kcab", g, du, g)
    k = 2 * 4 + 2 * 4 + n * th * tw + torch.get_num_threads() + 1
    return gamma(k) * chain


@needs_kernel
@winograd.forced(True)
def test_forward_and_every_gradient_within_their_fp32_bounds() -> None:
    torch.manual_seed(0)
    plain = torch.nn.Conv2d(32, 32, 3, padding=1)
    fast = WinogradConv2d.taking_over(plain)
    x = channels_last(4, 32, 13, 19, seed=1).requires_grad_()
    grad = channels_last(4, 32, 13, 19, seed=2)
    y = fast(x)
    y.backward(grad)
    assert x.grad is not None
    assert fast.weight.grad is not None
    assert fast.bias is not None
    assert fast.bias.grad is not None

    x64, w64 = x.detach().double(), plain.weight.detach().double()
    exact = F.conv2d(x64, w64, plain.bias.detach().double(), padding=1)
    bound = winograd.error_bound(x.detach(), plain.weight.detach(), plain.bias.detach())
    assert bool(((y.detach().double() - exact).abs() <= bound).all())

    # The input's gradient is a conv of the output's gradient with the filter rotated by 180°
    # and its channels swapped, through the same kernel: the same bound for that conv.
    exact_grad_x = torch.nn.grad.conv2d_input(x.shape, w64, grad.double(), padding=1)
    rotated = plain.weight.detach().flip(2, 3).transpose(0, 1)
    bound_x = winograd.error_bound(grad, rotated, None)
    assert bool(((x.grad.double() - exact_grad_x).abs() <= bound_x).all())

    # The weight's gradient by the kernel's tiles, the bias's a sum over every output pixel.
    exact_grad_w = torch.nn.grad.conv2d_weight(x64, w64.shape, grad.double(), padding=1)
    bound_w = weight_gradient_bound(x.detach(), grad)
    assert bool(((fast.weight.grad.double() - exact_grad_w).abs() <= bound_w).all())
    n, _, h, w = x.shape
    exact_grad_b = grad.double().sum(dim=(0, 2, 3))
    bound_b = gamma(n * h * w) * grad.double().abs().sum(dim=(0, 2, 3))
    assert bool(((fast.bias.grad.double() - exact_grad_b).abs() <= bound_b).all())
    # The bounds mean something: each is far below the magnitude it bounds.
    assert float(bound_x.max()) < 1e-2 * float(exact_grad_x.abs().max())
    assert float(bound_w.max()) < 1e-2 * float(exact_grad_w.abs().max())


@needs_kernel
@winograd.forced(True)
def test_the_switch_keeps_parameters_keys_and_falls_back_where_the_kernel_cannot_read() -> None:
    torch.manual_seed(0)
    model = MemNet(2, 2, 32).to(memory_format=torch.channels_last)
    keys = list(model.state_dict())
    parameters = [id(p) for p in model.parameters()]
    # conv_a and conv_b of each block; FENet (1→32), reconstruction (32→1), gates (1×1) stay.
    assert use_winograd_convs(model) == 4
    assert list(model.state_dict()) == keys
    assert [id(p) for p in model.parameters()] == parameters
    fast = model.memory_blocks[0].conv_a
    assert isinstance(fast, WinogradConv2d)
    x = torch.randn(2, 32, 9, 9)  # not channels_last: the direct conv
    assert torch.equal(fast(x), F.conv2d(x, fast.weight, fast.bias, padding=1))


@needs_kernel
def test_nothing_switches_when_the_kernel_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMNET_WINOGRAD", "0")
    with winograd.forced(True):
        assert use_winograd_convs(MemNet(2, 2, 32)) == 0


def step_gradients(model: MemNet, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """All parameter gradients of one multi-supervised training step, flattened."""
    model.zero_grad(set_to_none=True)
    out = model(x, branches=True)
    loss = F.mse_loss(out.restored, target) + sum(F.mse_loss(b, target) for b in out.branches)
    loss.backward()
    return torch.cat([p.grad.flatten().double() for p in model.parameters() if p.grad is not None])


@needs_kernel
@winograd.forced(True)
def test_a_training_step_is_as_close_to_exact_as_winograd_rounding_allows() -> None:
    """Against the same step in float64 (exact to fp32 rounding), the fast step's gradients err
    no more than fp32 rounding along the network's depth allows, each 3×3 conv rounding
    `winograd_growth` times more than a direct one (tests/rounding.py): the backward pass is the
    forward's transpose, as deep and with the same sums. A wrong gradient (the filter not
    rotated, say) is off by a tenth of the gradient itself, a hundred times the bound."""
    torch.manual_seed(0)
    model = MemNet(2, 3, 32).to(memory_format=torch.channels_last).train()
    x = torch.rand(8, 1, 20, 20).contiguous(memory_format=torch.channels_last)
    target = torch.rand(8, 1, 20, 20)
    exact = step_gradients(model.double(), x.double(), target.double())
    model.float()
    plain = step_gradients(model, x, target)
    assert use_winograd_convs(model) == 4
    fast = step_gradients(model, x, target)
    assert not torch.equal(fast, plain)  # the kernel ran: its rounding differs
    bound = float32_bound(model.config, float(exact.norm())) * winograd_growth()
    assert float((fast - exact).norm()) <= bound
    assert float((plain - exact).norm()) <= float32_bound(model.config, float(exact.norm()))


@needs_kernel
@winograd.forced(True)
def test_the_switch_draws_no_random_numbers() -> None:
    """A run's random stream after building its model is the same with the kernel or without."""
    torch.manual_seed(0)
    use_winograd_convs(MemNet(2, 2, 32))
    after_switch = torch.rand(4)
    torch.manual_seed(0)
    MemNet(2, 2, 32)
    assert torch.equal(after_switch, torch.rand(4))
