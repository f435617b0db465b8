"""How much memory inference needs, and how much it may use: the one place for both.

Three ways of running the network need three estimates, all from the network's shape and all
erring on the high side: the plain model and its folded rearrangement (bytes per input pixel,
the whole window at once) and the row-streamed pipeline (bytes per image width, any height).
`memory_budget` is what a device can give; `memnet.inference.planning` compares the two.
The budget covers a picture's own planes too (`picture_plane_bytes`, held in host memory
while the network runs): on a device that shares that memory the network's plan gets what
they leave (`activation_budget`), so the whole restore stays within the budget plus a fixed
overhead (Python, torch, the model, the bands of rows being converted).
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import torch
from numpy.typing import NDArray

from memnet.model import MemNetConfig

__all__ = [
    "CPU_BUDGET_CAP",
    "WINDOW_COPY_BYTES",
    "activation_budget",
    "folded_bytes_per_pixel",
    "memory_budget",
    "picture_plane_bytes",
    "plain_bytes_per_pixel",
    "streamed_bytes_for_width",
]

# Activation memory the automatic plan allows itself on a CPU (and at most a quarter of what
# the machine has free), so that a laptop stays usable while an image is restored: with the
# optimised network this keeps the whole process near 1.3 GB at any image size.
CPU_BUDGET_CAP = 1024**3
# Bytes per pixel of a tile's window outside the network's activations: the float32 copy of
# its input and its float32 output (memnet.inference.engine), before it goes into the plane.
WINDOW_COPY_BYTES = 8


def plain_bytes_per_pixel(config: MemNetConfig, element_bytes: int = 4) -> int:
    """Peak activation memory per input pixel of one forward pass of the plain `MemNet`.

    At the gate of the last block the network holds the M long-term and R short-term memories,
    their concatenation and its normalised copy ((M+R)·C channels each), plus a few C-channel
    temporaries of the recursion. This deliberately errs on the high side.
    """
    m, r, c = config.blocks, config.recursions, config.channels
    return element_bytes * c * (3 * (m + r) + 8)


def folded_bytes_per_pixel(config: MemNetConfig, element_bytes: int = 4) -> int:
    """Peak activation memory per input pixel of one `InferenceMemNet` pass (errs high).

    In block M-1 the network holds B0 .. B_{M-2}, the gate output, H, two temporaries and
    the reconstruction sum, C channels each; one more covers the input, output and allocator.
    """
    return element_bytes * config.channels * (config.blocks + 5)


def streamed_bytes_for_width(
    config: MemNetConfig,
    width: int,
    rows: int,
    element_bytes: int = 4,
    *,
    activated_copies: bool = True,
) -> int:
    """Upper bound of the streamed pipeline's memory for one image `width` pixels wide, any
    height, in strips of `rows` rows.

    Counted in rows of W × C values: every conv input keeps a strip plus a few rows of halo and
    slack (2·R·M + 2 of them, R·M + 2 where each conv_a activates H as it reads it and no
    activated copy is kept: `activated_copies=False`), the gates and H buffers a strip each,
    and each long-term memory B_j the rows between its writer and the last block's gate, twice
    over for slack; three strips cover the transient conv outputs. tests/test_streaming.py
    checks it against the measured peak.
    """
    blocks, recursions = config.blocks, config.recursions
    halo_buffers = (2 if activated_copies else 1) * recursions * blocks + 2
    fixed = 2 * recursions * blocks * (blocks - 1) + 4 * recursions * blocks + 6 * halo_buffers
    per_strip_row = halo_buffers + 3 * blocks + 7
    return width * config.channels * element_bytes * (fixed + rows * per_strip_row)


def _available_memory() -> int:
    """Bytes the OS can still give this process (MemAvailable; physical memory as a fallback)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    with contextlib.suppress(ValueError, OSError, AttributeError):
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) // 2
    return CPU_BUDGET_CAP


def memory_budget(device: torch.device) -> int:
    """Activation memory (bytes) that automatic planning may use on `device` right now."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free * 0.6)
    if device.type == "mps":
        recommended = getattr(torch.mps, "recommended_max_memory", None)
        total = int(recommended()) if recommended is not None else 8 * 1024**3
        return min(total // 4, CPU_BUDGET_CAP)
    return min(_available_memory() // 4, CPU_BUDGET_CAP)


def picture_plane_bytes(
    pixels: NDArray[np.generic],
    alpha: NDArray[np.generic] | None,
    out_shape: tuple[int, int],
    mode: str,
    *,
    resamples: bool,
    depth: int | None,
) -> int:
    """Upper bound of the bytes of image planes `memnet.inference.pictures.restore_picture`
    holds at once while the network runs or after it, for a picture of `pixels` (and `alpha`)
    restored to `out_shape` with colour `mode` (`gray`, `y`, `rgb` or `ycbcr`); `resamples`:
    the task's input is resampled from whole planes (SR); `depth`: integer samples out.

    Held all along: the decoded pixels (and alpha) as they are. While the network runs: its
    input and output plane, for `ycbcr` the two restored planes waiting for the merge, for a
    resampling task the whole plane at the input's size the bicubic reads, for `rgb` the
    output (filled channel by channel). Then, merging or rounding: the restored planes, the
    output (integer samples or floats), for `y` with a resampling task Cb and Cr at the
    input's size. Alpha is prepared and rounded last. Float64 pictures add the float32 copies
    the network computes on. Bands of rows being converted are not planes: their few tens of
    MB are part of the fixed overhead whatever the image size.
    """
    in_pixels = int(pixels.shape[0]) * int(pixels.shape[1])
    out_pixels = out_shape[0] * out_shape[1]
    floats = 8 if pixels.dtype == np.float64 else 4
    sample = floats if depth is None else (2 if depth == 16 else 1)
    output = (1 if mode == "gray" else 3) * sample * out_pixels
    waiting = 2 if mode == "ycbcr" else 0
    running = (waiting + 2) * floats * out_pixels + (output if mode == "rgb" else 0)
    merging = (waiting + 1) * floats * out_pixels + output
    if resamples:
        running += floats * in_pixels
        merging += (2 if mode == "y" else 0) * floats * in_pixels
    held = int(pixels.nbytes) + (0 if alpha is None else int(alpha.nbytes))
    held += max(running, merging)
    if floats == 8:
        held += 8 * out_pixels  # the float32 input and output of the network
    if alpha is not None:
        held += (floats + sample) * out_pixels
    return held


def activation_budget(budget: int, plane_bytes: int, device: torch.device) -> int:
    """What the network's plan may use of `budget` while a picture's planes (`plane_bytes`)
    are held: the rest where they share the device's memory (a CPU, Apple's unified memory),
    all of it on a CUDA GPU. Never below zero: planes larger than the budget leave the network
    its smallest plan (the narrowest windows), and the peak exceeds the budget by what the
    planes do."""
    if device.type == "cuda":
        return budget
    return max(0, budget - plane_bytes)
