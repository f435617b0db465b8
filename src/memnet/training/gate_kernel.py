"""The backward of one memory's share of a gate unit in training, by kernels/gate_gradients.cpp.

The share is relu(scale·x + shift) through the share's part of the gate's 1×1 conv; its
backward gives the gradients of that part of the weight, of τ's γ and β, and of the memory,
in two passes: one that reads the memory and the gate's gradient, one over the memory's
gradient (the kernel's header says how). Takes channels_last fp32 CPU tensors, with channel
counts as `memnet.inference.gates.takes_share` takes them (which FusedGateUnit checks), and
needs memnet's kernels (memnet.inference.native).
"""

from __future__ import annotations

import torch
from torch import Tensor

from memnet.inference import native

__all__ = ["share_backward"]


def share_backward(
    x: Tensor,
    grad: Tensor,
    scale: Tensor,
    shift: Tensor,
    mean: Tensor,
    invstd: Tensor,
    weight: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """For a memory x [N, C, H, W], the gate's output gradient `grad` [N, K, H, W], τ's fp32
    scale and shift and float64 mean and invstd, and the share's [K, C] weight: the memory's
    gradient, the weight's [K, C], γ's and β's."""
    lib = native.library()
    assert lib is not None
    channels, out_channels = x.shape[1], grad.shape[1]
    weight = weight.contiguous()  # held here: the kernel reads it after data_ptr() returns
    grad_x = torch.empty_like(x, memory_format=torch.channels_last)
    grad_weight = torch.empty(channels, out_channels, dtype=torch.float64)
    grad_shift = torch.empty(channels, dtype=torch.float64)
    grad_centered = torch.empty(channels, dtype=torch.float64)
    status = lib.memnet_gate_share_backward(
        x.data_ptr(), grad.data_ptr(), x.numel() // channels, channels, out_channels,
        scale.data_ptr(), shift.data_ptr(), mean.data_ptr(), invstd.data_ptr(),
        weight.data_ptr(), grad_weight.data_ptr(), grad_x.data_ptr(),
        grad_shift.data_ptr(), grad_centered.data_ptr(), torch.get_num_threads(),
    )  # fmt: skip
    if status != 0:
        raise ValueError(f"the gate's backward cannot take a {tuple(x.shape)} memory")
    return (
        grad_x,
        grad_weight.t().float(),
        (grad_centered * invstd).float(),
        grad_shift.float(),
    )
