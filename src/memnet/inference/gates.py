"""One memory's share of a gate unit as one kernel call: out (+)= relu(x·scale + shift)·W (+ b).

Done as PyTorch ops, a share is a BatchNorm+ReLU pass that writes a whole activated copy of the
memory, then a GEMM that reads it back. memnet's kernel (kernels/gates.cpp, through
memnet.inference.native) activates a few pixels at a time into the L1 cache and multiplies
them at once, so the memory is read once and the gate read and written once.
"""

from __future__ import annotations

import torch
from torch import Tensor

from memnet.inference import native

__all__ = ["fused_gate_share", "takes_share"]

MAX_CHANNELS = (
    512  # per memory: kernels/gates.cpp keeps a few activated pixels on the stack (MAX_C)
)


def takes_share(channels: int, out_channels: int) -> bool:
    """Whether the kernel runs a share of a `channels`-channel memory into an `out_channels`
    gate (as kernels/gates.cpp checks: C a multiple of the vector, at most MAX_CHANNELS, K of
    two vectors); False without the kernels."""
    if native.library() is None:
        return False
    lanes = native.vector_lanes()
    return (
        channels % lanes == 0 and 0 < channels <= MAX_CHANNELS and out_channels % (2 * lanes) == 0
    )


def _usable(t: Tensor) -> bool:
    return t.dtype == torch.float32 and t.device.type == "cpu" and t.is_contiguous()


def fused_gate_share(
    out: Tensor,
    rows: Tensor,
    scale: Tensor,
    shift: Tensor,
    matrix: Tensor,
    bias: Tensor | None,
    *,
    accumulate: bool,
) -> bool:
    """out = relu(rows·scale + shift) @ matrix (+ bias), or out += that with `accumulate`, for
    (pixels, C) `rows` and (pixels, K) `out`; False (nothing done) where the kernel cannot."""
    lib = native.library()
    tensors = [out, rows, scale, shift, matrix, *([] if bias is None else [bias])]
    if lib is None or not all(_usable(t) for t in tensors) or rows.shape[0] != out.shape[0]:
        return False
    channels, out_channels = matrix.shape
    status = lib.memnet_gate_share(
        rows.data_ptr(), rows.shape[0], channels, scale.data_ptr(), shift.data_ptr(),
        matrix.data_ptr(), out_channels, None if bias is None else bias.data_ptr(),
        out.data_ptr(), int(accumulate), torch.get_num_threads(),
    )  # fmt: skip
    return bool(status == 0)
