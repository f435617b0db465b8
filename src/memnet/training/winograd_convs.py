"""The memory blocks' 3×3 convs of CPU training through memnet's Winograd kernel: fewer multiplies.

A training step on a CPU spends most of its time in the memory blocks' 3×3 convs, three times
each: the forward, the gradient of the input and the gradient of the weight. The first two are
convolutions of the same shape — the input's gradient is the output's gradient convolved with
the filter rotated by 180° and its in/out channels swapped — so the F(4×4, 3×3) kernel of
inference (memnet.inference.winograd) runs both; the weight's gradient runs the same tiles
backwards (`winograd.weight_gradient`). Measured at the training shapes (batch 32 of 31², 32
and 64 channels), each of the three runs 1.4–1.9× faster than oneDNN's
(benchmarks/winograd_training.py).

A conv is switched only where inference would switch it (`winograd.faster_than_direct`, for the
forward's and the backward's channels) and falls back to the direct conv for any input the
kernel cannot read (not fp32 channels_last on the CPU, or under autocast); MEMNET_WINOGRAD=0
switches none. Its rounding is the kernel's (`winograd.error_bound`, tests/test_train_winograd.py);
parameters, state_dict keys and training states are those of the plain model.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from memnet.inference import winograd

__all__ = ["WinogradConv2d", "use_winograd_convs"]


class _WinogradConvFunction(torch.autograd.Function):
    """y = conv3x3(x, weight) + bias (padding 1), and its three gradients, by the kernel."""

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        forward_conv: winograd.WinogradConv,
        backward_conv: winograd.WinogradConv,
    ) -> Tensor:
        ctx.save_for_backward(x)
        ctx.backward_conv = backward_conv
        ctx.has_bias = bias is not None
        return forward_conv(x, 1)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        (x,) = ctx.saved_tensors
        grad = grad.contiguous(memory_format=torch.channels_last)
        wants_x, wants_weight, wants_bias = ctx.needs_input_grad[:3]
        grad_x = ctx.backward_conv(grad, 1) if wants_x else None
        grad_weight = winograd.weight_gradient(x, grad) if wants_weight else None
        grad_bias = grad.sum(dim=(0, 2, 3)) if wants_bias and ctx.has_bias else None
        return grad_x, grad_weight, grad_bias, None, None


def _rotated(weight: Tensor) -> Tensor:
    """The filter of the input gradient's conv: rotated by 180°, in/out channels swapped."""
    return weight.detach().flip(2, 3).transpose(0, 1).contiguous()


class WinogradConv2d(nn.Conv2d):
    """A 3×3, stride 1, padding 1 conv that trains through the Winograd kernel on the CPU.

    The transformed weights are made once per optimizer step (the weight's version counter
    tells when it changed) and shared by every recursion that lends the conv.
    """

    _transformed: tuple[winograd.WinogradConv, winograd.WinogradConv] | None = None
    _transformed_for: tuple[int, ...] = ()

    @classmethod
    def taking_over(cls, conv: nn.Conv2d) -> WinogradConv2d:
        """A WinogradConv2d with `conv`'s own parameters (the same tensors, not copies)."""
        # skip_init: no initialisation of parameters about to be replaced, no random numbers drawn
        fast = nn.utils.skip_init(
            cls, conv.in_channels, conv.out_channels, 3, padding=1, bias=conv.bias is not None
        )
        fast.weight = conv.weight
        fast.bias = conv.bias
        fast.train(conv.training)
        return fast

    def kernels(self) -> tuple[winograd.WinogradConv, winograd.WinogradConv]:
        """The kernels of the forward conv and of the input gradient's (rotated) conv."""
        bias_version = -1 if self.bias is None else self.bias._version
        key = (self.weight.data_ptr(), self.weight._version, bias_version)
        if self._transformed is None or self._transformed_for != key:
            with torch.no_grad():
                self._transformed = (
                    winograd.WinogradConv(self.weight, self.bias),
                    winograd.WinogradConv(_rotated(self.weight), None),
                )
            self._transformed_for = key
        return self._transformed

    def runs_kernel_on(self, x: Tensor) -> bool:
        """Whether the kernel runs this conv on `x` (else the direct conv does)."""
        return (
            winograd.WinogradConv.takes(x)
            and self.weight.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu")
        )

    def forward(self, x: Tensor) -> Tensor:
        if not self.runs_kernel_on(x):
            return super().forward(x)
        forward_conv, backward_conv = self.kernels()
        y: Tensor = _WinogradConvFunction.apply(
            x, self.weight, self.bias, forward_conv, backward_conv
        )
        return y


def _switches(conv: nn.Conv2d) -> bool:
    """Whether this conv's forward and input-gradient shapes take the kernel, measured faster."""
    shape_ok = (
        conv.kernel_size == (3, 3)
        and conv.stride == (1, 1)
        and conv.padding == (1, 1)
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
        and conv.weight.device.type == "cpu"
    )
    k, c = conv.out_channels, conv.in_channels
    return (
        shape_ok
        and winograd.suits(conv.weight)
        and winograd.suits(_rotated(conv.weight))
        and winograd.faster_than_direct(c, k)
        and winograd.faster_than_direct(k, c)
    )


def use_winograd_convs(model: nn.Module) -> int:
    """Switch every 3×3 conv of `model` that the kernel runs faster to a WinogradConv2d, in
    place, and return how many were switched (0 without the kernel, on a GPU, or with
    MEMNET_WINOGRAD=0). Call it before building the optimizer or DDP wrapper."""
    if winograd.kernel() is None:
        return 0
    switched = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Conv2d and _switches(child):
                setattr(parent, name, WinogradConv2d.taking_over(child))
                switched += 1
    return switched
