"""Training's pre-activations τ = ReLU(BatchNorm(x)) through memnet's own kernel on a CPU.

MemNet puts a τ in front of every conv (41 in m4r4c32, 79 in m6r6), and in training each one
is a BatchNorm with batch statistics. PyTorch's CPU BatchNorm backward on channels_last
activations, with its ReLU mask, takes about 10× its forward: in a light-preset step τ took
more time than the convs. kernels/batchnorm.cpp runs τ in two passes each way (the statistics,
then the activation; the two gradient sums, then the input's gradient) with sums that do not
depend on the thread count.

`use_fused_preactivations` switches the model's τ modules in place: parameters, buffers,
state_dict keys and training states are those of the plain model, and the running statistics
are updated as BatchNorm2d updates them. A τ falls back to PyTorch's ops wherever the kernel
does not apply: in eval mode, for a SyncBatchNorm, under autocast, for an input that is not an
fp32 channels_last CPU tensor, and without the kernels (MEMNET_NATIVE=0).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from memnet.inference import native, winograd
from memnet.model import PreActivation, RecursiveUnit
from memnet.training.winograd_convs import WinogradConv2d

__all__ = [
    "FusedPreActivation",
    "FusedRecursiveUnit",
    "pre_activated_conv",
    "pre_activation",
    "use_fused_preactivations",
]


def _batch_statistics(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and biased variance of an [N, C, H, W] channels_last x, in float64."""
    lib = native.library()
    assert lib is not None
    channels = x.shape[1]
    mean = torch.empty(channels, dtype=torch.float64)
    var = torch.empty(channels, dtype=torch.float64)
    status = lib.memnet_bn_stats(
        x.data_ptr(), x.numel() // channels, channels, mean.data_ptr(), var.data_ptr(),
        torch.get_num_threads(),
    )  # fmt: skip
    if status != 0:
        raise ValueError(f"BatchNorm statistics cannot take a {tuple(x.shape)} input")
    return mean, var


def _training_statistics(x: Tensor, norm: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """The batch mean and invstd = 1/sqrt(var + eps) of x (float64), with `norm`'s running
    statistics updated from them as BatchNorm2d updates them (the variance unbiased)."""
    mean, var = _batch_statistics(x)
    pixels = x.numel() // x.shape[1]
    assert norm.running_mean is not None
    assert norm.running_var is not None
    assert norm.num_batches_tracked is not None
    with torch.no_grad():
        norm.num_batches_tracked.add_(1)
        factor = 1.0 / float(norm.num_batches_tracked) if norm.momentum is None else norm.momentum
        norm.running_mean.mul_(1 - factor).add_(mean.float(), alpha=factor)
        norm.running_var.mul_(1 - factor).add_((var * pixels / (pixels - 1)).float(), alpha=factor)
    return mean, torch.rsqrt(var + norm.eps)


def _scale_shift(
    weight: Tensor, bias: Tensor, mean: Tensor, invstd: Tensor
) -> tuple[Tensor, Tensor]:
    """τ as relu(scale·x + shift) per channel, made in float64 and rounded to fp32."""
    scale = weight.detach().double() * invstd
    return scale.float(), (bias.detach().double() - mean * scale).float()


def _backward(
    x: Tensor,
    grad: Tensor,
    scale: Tensor,
    shift: Tensor,
    mean: Tensor,
    invstd: Tensor,
    out: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """τ's gradients for its input x and its output's gradient `grad` (channels_last): the
    input's (written into `out`, which may be `grad`), γ's and β's."""
    lib = native.library()
    assert lib is not None
    if out is None:
        out = torch.empty_like(x, memory_format=torch.channels_last)
    channels = x.shape[1]
    grad_shift = torch.empty(channels, dtype=torch.float64)
    grad_centered = torch.empty(channels, dtype=torch.float64)
    lib.memnet_bn_relu_backward(
        x.data_ptr(), grad.data_ptr(), x.numel() // channels, channels, scale.data_ptr(),
        shift.data_ptr(), mean.data_ptr(), invstd.data_ptr(), out.data_ptr(),
        grad_shift.data_ptr(), grad_centered.data_ptr(), torch.get_num_threads(),
    )  # fmt: skip
    return out, (grad_centered * invstd).float(), grad_shift.float()


class _PreActivationFunction(torch.autograd.Function):
    """y = relu(γ·(x − mean)·invstd + β) for given batch statistics, and its gradients."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, weight: Tensor, bias: Tensor, mean: Tensor, invstd: Tensor
    ) -> Tensor:
        lib = native.library()
        assert lib is not None
        scale, shift = _scale_shift(weight, bias, mean, invstd)
        y = torch.empty_like(x, memory_format=torch.channels_last)
        channels = x.shape[1]
        lib.memnet_bn_relu(
            x.data_ptr(), x.numel() // channels, channels, scale.data_ptr(), shift.data_ptr(),
            y.data_ptr(), torch.get_num_threads(),
        )  # fmt: skip
        ctx.save_for_backward(x, scale, shift, mean, invstd)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, scale, shift, mean, invstd = ctx.saved_tensors
        grad = grad.contiguous(memory_format=torch.channels_last)
        grad_x, grad_weight, grad_bias = _backward(x, grad, scale, shift, mean, invstd)
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
        scale, shift = _scale_shift(weight, bias, mean, invstd)
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
        grad_x, grad_weight, grad_bias = _backward(
            x, grad_activation, scale, shift, mean, invstd, out=grad_activation
        )
        grad_add = grad if ctx.has_add else None
        return (
            grad_x, grad_weight, grad_bias, None, None, grad_conv_weight, grad_conv_bias,
            grad_add, None,
        )  # fmt: skip


def pre_activation(x: Tensor, norm: nn.BatchNorm2d) -> Tensor:
    """relu(norm(x)) of a BatchNorm2d in training mode, by the kernel, updating its running
    statistics as BatchNorm2d does. `x`: an fp32 channels_last CPU tensor (`takes`)."""
    mean, invstd = _training_statistics(x, norm)
    y: Tensor = _PreActivationFunction.apply(x, norm.weight, norm.bias, mean, invstd)
    return y


def pre_activated_conv(
    x: Tensor, norm: nn.BatchNorm2d, conv: WinogradConv2d, add: Tensor | None = None
) -> Tensor:
    """conv(relu(norm(x))) (+ add) in training mode, as `pre_activation` then `conv` would
    compute it, in one call of the Winograd kernel (`conv.runs_kernel_on(x)`)."""
    mean, invstd = _training_statistics(x, norm)
    y: Tensor = _PreActivatedConvFunction.apply(
        x, norm.weight, norm.bias, mean, invstd, conv.weight, conv.bias, add, conv.kernels()
    )
    return y


def takes(x: Tensor) -> bool:
    """Whether the kernel reads `x` in place: a 4-d fp32 channels_last CPU tensor with more
    than one value per channel (BatchNorm's own error is kept for one)."""
    return (
        x.dtype == torch.float32
        and x.device.type == "cpu"
        and x.dim() == 4
        and x.is_contiguous(memory_format=torch.channels_last)
        and x.numel() > x.shape[1]
    )


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
        and takes(x)
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


def use_fused_preactivations(model: nn.Module) -> int:
    """Switch every PreActivation of `model` to a FusedPreActivation, in place (the same module
    object, parameters and buffers: only its forward changes), and return how many were
    switched (0 without the kernels). Call it before building a DDP wrapper."""
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
    return switched
