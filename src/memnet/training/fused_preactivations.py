"""Training's pre-activations τ = ReLU(BatchNorm(x)) on a CPU through memnet's own kernels,
fused with the conv that reads them where a kernel runs that conv.

MemNet puts a τ in front of every conv (41 in m4r4c32, 79 in m6r6), and in training each is a
BatchNorm with batch statistics. As PyTorch ops every τ writes an activated copy that its conv
reads back, and the gate unit first concatenates its memories; a light-preset step is mostly
such memory traffic around its convs. Three switches, each a subclass that adds no state:

- `FusedPreActivation`: τ through kernels/batchnorm.cpp, two passes each way (the statistics,
  then the activation; the two gradient sums, then the input's gradient), with sums that do not
  depend on the thread count;
- `FusedRecursiveUnit`: each recursion's two τ → conv pairs as two Winograd calls, τ applied as
  the kernel reads its input (never written out) and the residual added in its output; the
  weight gradient reads the input the same way;
- `FusedGateUnit`: the gate as one gate-kernel call over all its memories (kernels/gates.cpp,
  as in inference), with no concatenated or activated copy; its backward a memory at a time,
  each one call of kernels/gate_gradients.cpp (memnet.training.gate_kernel) that makes the
  weight's, τ's and the memory's gradients in two passes.

Measured in one process, steps of m4r4c32 (batch 32 of 31², 2 threads) interleaved: 0.19–0.20 s
with the Winograd convs alone, 0.18–0.19 s with τ's kernel, 0.17–0.18 s with the recursions
fused, 0.14 s with the gates fused too.

`use_fused_preactivations` switches a model in place: parameters, buffers, state_dict keys and
training states are those of the plain model, and the running statistics are updated as
BatchNorm2d updates them. Each module falls back to PyTorch's ops wherever its kernel does not
apply: in eval mode, for a SyncBatchNorm, under autocast, for an input that is not an fp32
channels_last CPU tensor, for channel counts the kernels do not take, and without the kernels
(MEMNET_NATIVE=0; with MEMNET_WINOGRAD=0 the recursions run τ's kernel then PyTorch's convs).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from memnet.inference import native, winograd
from memnet.inference.gates import fused_gate_share, fused_gate_shares, takes_share
from memnet.model import GateUnit, PreActivation, RecursiveUnit
from memnet.training import batchnorm_kernel as batchnorm
from memnet.training import gate_kernel
from memnet.training.winograd_convs import WinogradConv2d

__all__ = [
    "FusedGateUnit",
    "FusedPreActivation",
    "FusedRecursiveUnit",
    "pre_activated_conv",
    "pre_activated_gate",
    "pre_activation",
    "use_fused_preactivations",
]


class _PreActivationFunction(torch.autograd.Function):
    """y = relu(γ·(x − mean)·invstd + β) for given batch statistics, and its gradients."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, weight: Tensor, bias: Tensor, mean: Tensor, invstd: Tensor
    ) -> Tensor:
        scale, shift = batchnorm.scale_shift(weight, bias, mean, invstd)
        y = batchnorm.activate(x, scale, shift)
        ctx.save_for_backward(x, scale, shift, mean, invstd)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, scale, shift, mean, invstd = ctx.saved_tensors
        grad = grad.contiguous(memory_format=torch.channels_last)
        grad_x, grad_weight, grad_bias = batchnorm.backward(x, grad, scale, shift, mean, invstd)
        return grad_x, grad_weight, grad_bias, None, None


class _PreActivatedConvFunction(torch.autograd.Function):
    """y = conv3x3(relu(γ·(x − mean)·invstd + β)) (+ add) by the Winograd kernel, the
    activation applied as the kernel reads x and never written out, and its gradients."""

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        weight: Tensor,
        bias: Tensor,
        mean: Tensor,
        invstd: Tensor,
        conv_weight: Tensor,
        conv_bias: Tensor | None,
        add: Tensor | None,
        convs: tuple[winograd.WinogradConv, winograd.WinogradConv],
    ) -> Tensor:
        forward_conv, backward_conv = convs
        scale, shift = batchnorm.scale_shift(weight, bias, mean, invstd)
        ctx.save_for_backward(x, scale, shift, mean, invstd)
        ctx.backward_conv = backward_conv
        ctx.has_conv_bias, ctx.has_add = conv_bias is not None, add is not None
        return forward_conv(x, 1, pre=(scale, shift), add=add)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, scale, shift, mean, invstd = ctx.saved_tensors
        grad = grad.contiguous(memory_format=torch.channels_last)
        wants = ctx.needs_input_grad
        grad_conv_weight = (
            winograd.weight_gradient(x, grad, pre=(scale, shift)) if wants[5] else None
        )
        grad_conv_bias = grad.sum(dim=(0, 2, 3)) if wants[6] and ctx.has_conv_bias else None
        grad_activation = ctx.backward_conv(grad, 1)  # a fresh tensor: τ's backward takes it
        grad_x, grad_weight, grad_bias = batchnorm.backward(
            x, grad_activation, scale, shift, mean, invstd, out=grad_activation
        )
        grad_add = grad if ctx.has_add else None
        return (
            grad_x, grad_weight, grad_bias, None, None, grad_conv_weight, grad_conv_bias,
            grad_add, None,
        )  # fmt: skip


def _rows(x: Tensor) -> Tensor:
    """A channels_last [N, C, H, W] tensor as its [N·H·W, C] matrix of pixel rows (a view)."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


class _PreActivatedGateFunction(torch.autograd.Function):
    """The gate unit, conv1x1(relu(γ·(cat(memories) − mean)·invstd + β)), without the
    concatenation: forward by the gate kernel (each memory activated as it is read, no
    concatenated or activated copy written), backward by the gate's backward kernel, a memory
    at a time."""

    @staticmethod
    def forward(
        ctx: Any,
        weight: Tensor,
        bias: Tensor,
        mean: Tensor,
        invstd: Tensor,
        conv_weight: Tensor,
        conv_bias: Tensor,
        *memories: Tensor,
    ) -> Tensor:
        scale, shift = batchnorm.scale_shift(weight, bias, mean, invstd)
        n, channels, height, width = memories[0].shape
        out_channels = conv_weight.shape[0]
        out = torch.empty(
            n, out_channels, height, width, dtype=torch.float32, memory_format=torch.channels_last
        )
        matrix = conv_weight.detach().reshape(out_channels, -1).t()  # [C_total, K]
        shares = [slice(j * channels, (j + 1) * channels) for j in range(len(memories))]
        # All memories in one call, which writes the gate once; one call per memory (the same
        # bits) where they are too many channels for one.
        if not fused_gate_shares(
            _rows(out), [_rows(x) for x in memories], [scale[s].contiguous() for s in shares],
            [shift[s].contiguous() for s in shares], [matrix[s].contiguous() for s in shares],
            conv_bias.detach(),
        ):  # fmt: skip
            for j, (x, share) in enumerate(zip(memories, shares, strict=True)):
                accepted = fused_gate_share(
                    _rows(out), _rows(x), scale[share].contiguous(), shift[share].contiguous(),
                    matrix[share].contiguous(), conv_bias.detach() if j == 0 else None,
                    accumulate=j > 0,
                )  # fmt: skip
                assert accepted, "the gate kernel refused a shape FusedGateUnit checked"
        ctx.save_for_backward(scale, shift, mean, invstd, conv_weight, *memories)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        scale, shift, mean, invstd, conv_weight, *memories = ctx.saved_tensors
        grad = grad.contiguous(memory_format=torch.channels_last)
        channels, out_channels = memories[0].shape[1], grad.shape[1]
        matrix = conv_weight.detach().reshape(out_channels, -1)  # [K, C_total]
        grads_x, grads_conv, grads_weight, grads_bias = [], [], [], []
        for j, x in enumerate(memories):
            share = slice(j * channels, (j + 1) * channels)
            grad_x, grad_conv, grad_weight, grad_bias = gate_kernel.share_backward(
                x, grad, scale[share].contiguous(), shift[share].contiguous(), mean[share],
                invstd[share], matrix[:, share],
            )  # fmt: skip
            grads_x.append(grad_x)
            grads_conv.append(grad_conv)
            grads_weight.append(grad_weight)
            grads_bias.append(grad_bias)
        return (
            torch.cat(grads_weight), torch.cat(grads_bias), None, None,
            torch.cat(grads_conv, dim=1).reshape(conv_weight.shape), grad.sum(dim=(0, 2, 3)),
            *grads_x,
        )  # fmt: skip


def pre_activation(x: Tensor, norm: nn.BatchNorm2d) -> Tensor:
    """relu(norm(x)) of a BatchNorm2d in training mode, by the kernel, updating its running
    statistics as BatchNorm2d does. `x`: an fp32 channels_last CPU tensor (`takes`)."""
    mean, invstd = batchnorm.training_statistics([x], norm)
    y: Tensor = _PreActivationFunction.apply(x, norm.weight, norm.bias, mean, invstd)
    return y


def pre_activated_conv(
    x: Tensor, norm: nn.BatchNorm2d, conv: WinogradConv2d, add: Tensor | None = None
) -> Tensor:
    """conv(relu(norm(x))) (+ add) in training mode, as `pre_activation` then `conv` would
    compute it, in one call of the Winograd kernel (`conv.runs_kernel_on(x)`)."""
    mean, invstd = batchnorm.training_statistics([x], norm)
    y: Tensor = _PreActivatedConvFunction.apply(
        x, norm.weight, norm.bias, mean, invstd, conv.weight, conv.bias, add, conv.kernels()
    )
    return y


def pre_activated_gate(memories: list[Tensor], norm: nn.BatchNorm2d, conv: nn.Conv2d) -> Tensor:
    """conv(relu(norm(cat(memories)))) of a gate unit in training mode, as its modules would
    compute it, without the concatenation (`FusedGateUnit` checks the shapes)."""
    mean, invstd = batchnorm.training_statistics(memories, norm)
    assert conv.bias is not None
    y: Tensor = _PreActivatedGateFunction.apply(
        norm.weight, norm.bias, mean, invstd, conv.weight, conv.bias, *memories
    )
    return y


def _kernel_applies(pre: PreActivation, x: Tensor) -> bool:
    """Whether τ runs through the kernel on `x`: in training mode, for a plain BatchNorm2d
    that keeps running statistics, outside autocast, on a tensor the kernel `takes`."""
    norm = pre.norm
    return (
        pre.training
        and type(norm) is nn.BatchNorm2d
        and norm.affine
        and norm.track_running_stats
        and not torch.is_autocast_enabled("cpu")
        and native.library() is not None
        and batchnorm.takes(x)
    )


class FusedPreActivation(PreActivation):
    """A PreActivation whose training-mode forward runs through the kernel where it applies."""

    def forward(self, x: Tensor) -> Tensor:
        if _kernel_applies(self, x):
            return pre_activation(x, self.norm)
        y: Tensor = super().forward(x)
        return y


class FusedRecursiveUnit(RecursiveUnit):
    """A RecursiveUnit whose two τ → conv pairs each run as one Winograd kernel call in
    training (the residual added in the second's output), where both convs run the kernel."""

    def forward(self, h: Tensor, conv_a: nn.Conv2d, conv_b: nn.Conv2d) -> Tensor:
        if (
            isinstance(conv_a, WinogradConv2d)
            and isinstance(conv_b, WinogradConv2d)
            and conv_a.runs_kernel_on(h)
            and _kernel_applies(self.pre_a, h)
            and _kernel_applies(self.pre_b, h)
        ):
            t = pre_activated_conv(h, self.pre_a.norm, conv_a)
            return pre_activated_conv(t, self.pre_b.norm, conv_b, add=h)
        y: Tensor = super().forward(h, conv_a, conv_b)
        return y


class FusedGateUnit(GateUnit):
    """A GateUnit that runs in training as one gate-kernel call over its memories (backwards,
    one call of the gate's backward kernel per memory), where the kernels take every memory
    (same shape, channel counts as `memnet_gate_share` takes them)."""

    def forward(self, memories: list[Tensor]) -> Tensor:
        conv, first = self.conv, memories[0]
        if (
            type(conv) is nn.Conv2d
            and conv.kernel_size == (1, 1)
            and conv.bias is not None
            and conv.weight.dtype == torch.float32
            and takes_share(first.shape[1], conv.out_channels)
            and conv.in_channels == first.shape[1] * len(memories)
            and all(m.shape == first.shape and _kernel_applies(self.pre, m) for m in memories)
        ):
            return pre_activated_gate(memories, self.pre.norm, conv)
        y: Tensor = super().forward(memories)
        return y


def use_fused_preactivations(model: nn.Module) -> int:
    """Switch `model`'s PreActivation, RecursiveUnit and GateUnit modules to their fused
    subclasses, in place (the same module objects, parameters and buffers: only their forward
    changes), and return how many PreActivations were switched (0, and nothing switched,
    without the kernels). Call it before building a DDP wrapper."""
    if native.library() is None:
        return 0
    switched = 0
    for module in model.modules():
        # Subclasses that add no state: reassigning the class keeps every tensor and hook.
        if type(module) is PreActivation:
            module.__class__ = FusedPreActivation
            switched += 1
        elif type(module) is RecursiveUnit:
            module.__class__ = FusedRecursiveUnit
        elif type(module) is GateUnit:
            module.__class__ = FusedGateUnit
    return switched
