"""The three convs of a training step's 3×3 layer, oneDNN against memnet's Winograd kernel.

    python benchmarks/winograd_training.py    # 32 and 64 channels (~1 min, 2 cores)

For a memory block's conv at the training shape (batch 32 of 31×31 patches, channels_last fp32,
2 threads) it times, interleaved in one process (speed.interleaved_times, medians of 15):
the forward, the input's gradient and the weight's (+ bias's) gradient, each as oneDNN runs it
(F.conv2d, aten.convolution_backward) and as memnet.training.winograd_convs runs it. Writes
benchmarks/winograd-training-results.md.
"""

from __future__ import annotations

import statistics
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F

from memnet.inference import winograd
from speed import interleaved_times, kernels_line, machine

RESULTS = Path(__file__).with_name("winograd-training-results.md")
BATCH, PATCH, REPS = 32, 31, 15


def rows(channels: int) -> list[str]:
    generator = torch.Generator().manual_seed(0)
    shape = (BATCH, channels, PATCH, PATCH)
    x = torch.randn(shape, generator=generator).contiguous(memory_format=torch.channels_last)
    grad = torch.randn(shape, generator=generator).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(channels, channels, 3, 3, generator=generator) * 0.05
    bias = torch.zeros(channels)
    forward = winograd.WinogradConv(weight, bias)
    rotated = winograd.WinogradConv(weight.flip(2, 3).transpose(0, 1).contiguous(), None)

    def onednn_backward(mask: list[bool]) -> object:
        return torch.ops.aten.convolution_backward(
            grad, x, weight, [channels], [1, 1], [1, 1], [1, 1], False, [0, 0], 1, mask
        )

    runs = {
        "forward/oneDNN": lambda: F.conv2d(x, weight, bias, padding=1),
        "forward/Winograd": lambda: forward(x, 1),
        "input gradient/oneDNN": lambda: onednn_backward([True, False, False]),
        "input gradient/Winograd": lambda: rotated(grad, 1),
        "weight gradient/oneDNN": lambda: onednn_backward([False, True, True]),
        "weight gradient/Winograd": lambda: (
            winograd.weight_gradient(x, grad),
            grad.sum(dim=(0, 2, 3)),
        ),
    }
    medians = {name: statistics.median(t) for name, t in interleaved_times(runs, REPS).items()}
    flop = 2 * BATCH * PATCH * PATCH * channels * channels * 9
    lines = []
    for op in ("forward", "input gradient", "weight gradient"):
        direct, fast = medians[f"{op}/oneDNN"], medians[f"{op}/Winograd"]
        lines.append(
            f"| {channels} | {op} | {direct * 1e3:.2f} ms | {fast * 1e3:.2f} ms | "
            f"{direct / fast:.2f}× | {flop / fast / 1e9:.0f} |"
        )
    return lines


def main() -> None:
    torch.set_num_threads(2)
    if winograd.kernel() is None:
        raise SystemExit(f"no Winograd kernel here: {winograd.kernel_status()}")
    lines = [
        "# A training conv: oneDNN against the Winograd kernel",
        "",
        f"Measured by `python benchmarks/winograd_training.py` on {date.today()}: {machine()}. "
        f"{kernels_line()}. Batch {BATCH} of {PATCH}² patches, channels_last fp32, 2 threads; "
        f"medians of {REPS} interleaved repetitions.",
        "",
        "| channels | conv | oneDNN | Winograd | speed-up | useful GFLOP/s (Winograd) |",
        "|---|---|---|---|---|---|",
    ]
    for channels in (32, 64):
        lines += rows(channels)
    lines += [
        "",
        "The input gradient is the conv of the output gradient with the filter rotated by 180° "
        "and its channels swapped, through the forward kernel; the weight gradient is "
        "memnet_winograd_weight_grad plus Gᵀ dU G in float64, and the bias gradient a sum.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
