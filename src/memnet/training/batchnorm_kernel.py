"""τ = ReLU(BatchNorm(x)) with batch statistics, forward and backward, by kernels/batchnorm.cpp:
the calls the fused training modules (memnet.training.fused_preactivations) are made of.

Every function takes channels_last fp32 CPU tensors (`takes`) and needs memnet's kernels
(memnet.inference.native). The statistics are float64 per channel; scale and shift, the fp32
form of τ that every kernel applies, are made from them in float64.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from memnet.inference import native

__all__ = [
    "activate",
    "backward",
    "batch_statistics",
    "scale_shift",
    "takes",
    "training_statistics",
]


def batch_statistics(x: Tensor) -> tuple[Tensor, Tensor]:
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


def training_statistics(xs: list[Tensor], norm: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """The batch mean and invstd = 1/sqrt(var + eps) (float64) of the channels of xs, as if
    concatenated, with `norm`'s running statistics updated from them as BatchNorm2d updates
    them (the variance unbiased)."""
    statistics = [batch_statistics(x) for x in xs]
    mean = torch.cat([m for m, _ in statistics]) if len(xs) > 1 else statistics[0][0]
    var = torch.cat([v for _, v in statistics]) if len(xs) > 1 else statistics[0][1]
    pixels = xs[0].numel() // xs[0].shape[1]
    assert norm.running_mean is not None
    assert norm.running_var is not None
    assert norm.num_batches_tracked is not None
    with torch.no_grad():
        norm.num_batches_tracked.add_(1)
        factor = 1.0 / float(norm.num_batches_tracked) if norm.momentum is None else norm.momentum
        norm.running_mean.mul_(1 - factor).add_(mean.float(), alpha=factor)
        norm.running_var.mul_(1 - factor).add_((var * pixels / (pixels - 1)).float(), alpha=factor)
    return mean, torch.rsqrt(var + norm.eps)


def scale_shift(
    weight: Tensor, bias: Tensor, mean: Tensor, invstd: Tensor
) -> tuple[Tensor, Tensor]:
    """τ as relu(scale·x + shift) per channel, made in float64 and rounded to fp32."""
    scale = weight.detach().double() * invstd
    return scale.float(), (bias.detach().double() - mean * scale).float()


def activate(x: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
    """relu(scale·x + shift) per channel of a channels_last x, written out (one fma each)."""
    lib = native.library()
    assert lib is not None
    y = torch.empty_like(x, memory_format=torch.channels_last)
    channels = x.shape[1]
    lib.memnet_bn_relu(
        x.data_ptr(), x.numel() // channels, channels, scale.data_ptr(), shift.data_ptr(),
        y.data_ptr(), torch.get_num_threads(),
    )  # fmt: skip
    return y


def backward(
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
