"""One memory's share of a gate unit as one kernel call: out (+)= relu(x·scale + shift)·W (+ b).

Done as PyTorch ops, a share is a BatchNorm+ReLU pass that writes a whole activated copy of the
memory, then a GEMM that reads it back. memnet's kernel (kernels/gates.cpp, through
memnet.inference.native) activates a few pixels at a time into the L1 cache and multiplies
them at once, so the memory is read once and the gate read and written once.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import torch
from torch import Tensor

from memnet.inference import native

__all__ = ["fused_gate_share", "fused_gate_shares", "takes_share"]

# kernels/gates.cpp keeps a few activated pixels of every memory of a call on the stack.
MAX_CHANNELS = 512  # per memory (MAX_C)
MAX_CALL_CHANNELS = 2048  # of all the memories summed in one call (MAX_ALL)


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


def fused_gate_shares(
    out: Tensor,
    memories: Sequence[Tensor],
    scales: Sequence[Tensor],
    shifts: Sequence[Tensor],
    matrices: Sequence[Tensor],
    bias: Tensor | None,
) -> bool:
    """out = Σ_j relu(memories[j]·scales[j] + shifts[j]) @ matrices[j] + bias in one pass that
    writes `out` once, for (pixels, C) memories of one C: to the bit what `fused_gate_share`
    gives for them in turn, the first with `bias`; False (nothing done) where the kernel cannot."""
    lib = native.library()
    tensors = [out, *memories, *scales, *shifts, *matrices, *([] if bias is None else [bias])]
    count = len(memories)
    if (
        lib is None
        or count == 0
        or not all(_usable(t) for t in tensors)
        or any(m.shape[0] != out.shape[0] for m in memories)
        or any(m.shape != matrices[0].shape for m in matrices)
        or count * matrices[0].shape[0] > MAX_CALL_CHANNELS
    ):
        return False
    channels, out_channels = matrices[0].shape

    def pointers(ts: Sequence[Tensor]) -> ctypes.Array[ctypes.c_void_p]:
        return (ctypes.c_void_p * count)(*(t.data_ptr() for t in ts))

    status = lib.memnet_gate_shares(
        pointers(memories), pointers(scales), pointers(shifts), pointers(matrices), count,
        out.shape[0], channels, out_channels, None if bias is None else bias.data_ptr(),
        out.data_ptr(), torch.get_num_threads(),
    )  # fmt: skip
    return bool(status == 0)
