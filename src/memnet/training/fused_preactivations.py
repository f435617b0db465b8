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

from memnet.inference import native
from memnet.model import PreActivation

__all__ = ["FusedPreActivation", "pre_activation", "use_fused_preactivations"]


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


class _PreActivationFunction(torch.autograd.Function):
    """y = relu(γ·(x − mean)·invstd + β) for given batch statistics, and its gradients."""

    @staticmethod
    def forward(
        ctx: Any, x: Tensor, weight: Tensor, bias: Tensor, mean: Tensor, invstd: Tensor
    ) -> Tensor:
        lib = native.library()
        assert lib is not None
        scale64 = weight.detach().double() * invstd
        scale = scale64.float()
        shift = (bias.detach().double() - mean * scale64).float()
        y = torch.empty_like(x, memory_format=torch.channels_last)
        channels = x.shape[1]
        lib.memnet_bn_relu(
            x.data_ptr(), x.numel() // channels, channels, scale.data_ptr(), shift.data_ptr(),
            y.data_ptr(), torch.get_num_threads(),
        )  # fmt: skip
        ctx.save_for_backward(x, mean, invstd, scale, shift)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        lib = native.library()
        assert lib is not None
        x, mean, invstd, scale, shift = ctx.saved_tensors
        grad = grad.contiguous(memory_format=torch.channels_last)
        channels = x.shape[1]
        grad_x = torch.empty_like(x, memory_format=torch.channels_last)
        grad_shift = torch.empty(channels, dtype=torch.float64)
        grad_centered = torch.empty(channels, dtype=torch.float64)
        lib.memnet_bn_relu_backward(
            x.data_ptr(), grad.data_ptr(), x.numel() // channels, channels, scale.data_ptr(),
            shift.data_ptr(), mean.data_ptr(), invstd.data_ptr(), grad_x.data_ptr(),
            grad_shift.data_ptr(), grad_centered.data_ptr(), torch.get_num_threads(),
        )  # fmt: skip
        grad_weight = (grad_centered * invstd).float() if ctx.needs_input_grad[1] else None
        grad_bias = grad_shift.float() if ctx.needs_input_grad[2] else None
        return grad_x, grad_weight, grad_bias, None, None


def pre_activation(x: Tensor, norm: nn.BatchNorm2d) -> Tensor:
    """relu(norm(x)) of a BatchNorm2d in training mode, by the kernel, updating its running
    statistics as BatchNorm2d does. `x`: an fp32 channels_last CPU tensor (`takes`)."""
    mean, var = _batch_statistics(x)
    pixels = x.numel() // x.shape[1]
    assert norm.running_mean is not None
    assert norm.running_var is not None
    assert norm.num_batches_tracked is not None
    with torch.no_grad():
        norm.num_batches_tracked.add_(1)
        factor = 1.0 / float(norm.num_batches_tracked) if norm.momentum is None else norm.momentum
        # the running variance is the unbiased one, as BatchNorm2d keeps it
        norm.running_mean.mul_(1 - factor).add_(mean.float(), alpha=factor)
        norm.running_var.mul_(1 - factor).add_((var * pixels / (pixels - 1)).float(), alpha=factor)
    invstd = torch.rsqrt(var + norm.eps)
    y: Tensor = _PreActivationFunction.apply(x, norm.weight, norm.bias, mean, invstd)
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


class FusedPreActivation(PreActivation):
    """A PreActivation whose training-mode forward runs through the kernel where it applies."""

    def forward(self, x: Tensor) -> Tensor:
        norm = self.norm
        if (
            self.training
            and type(norm) is nn.BatchNorm2d
            and norm.affine
            and norm.track_running_stats
            and not torch.is_autocast_enabled("cpu")
            and native.library() is not None
            and takes(x)
        ):
            return pre_activation(x, norm)
        y: Tensor = super().forward(x)
        return y


def use_fused_preactivations(model: nn.Module) -> int:
    """Switch every PreActivation of `model` to a FusedPreActivation, in place (the same module
    object, parameters and buffers: only its forward changes), and return how many were
    switched (0 without the kernels). Call it before building a DDP wrapper."""
    if native.library() is None:
        return 0
    switched = 0
    for module in model.modules():
        if type(module) is PreActivation:
            # A subclass that adds no state: reassigning the class keeps every tensor and hook.
            module.__class__ = FusedPreActivation
            switched += 1
    return switched
