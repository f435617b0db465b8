"""memnet's Winograd F(4×4, 3×3) kernel against oneDNN's direct 3×3 conv, in one run.

    python benchmarks/winograd/bench.py           # print the tables
    python benchmarks/winograd/bench.py --write   # and write benchmarks/winograd-results.md

Both kernels as the inference network calls them (memnet.inference.winograd.WinogradConv and
memnet.inference.fast_layers.fused_conv), on the layer shapes it runs: a streamed strip (16
output rows and their 2 context rows of a 1224-wide photo, the strip height memnet picks there)
and a whole 256² plane, for the default model's 32 channels and the paper size's 64, at 1 and 2
threads. The two run interleaved (A B A B ...), medians of --reps each; "useful" GFLOP/s counts
the direct conv's 2·9·C·K·H·W FLOPs for both. Then each kernel's fp32 error against a float64
conv and against its bound, and the error of each released SR network end to end with and
without it, against the float64 plain model.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from memnet.inference import winograd
from memnet.inference.fast_layers import fused_conv
from memnet.inference.fast_network import InferenceMemNet
from memnet.weights.loading import load_model
from speed import interleaved_times, kernels_line, machine

RESULTS = Path(__file__).resolve().parents[1] / "winograd-results.md"
# (channels, input rows, width, rows of zero padding): a streamed strip, then a whole plane.
SHAPES = ((32, 18, 1224, 0), (64, 18, 1224, 0), (32, 256, 256, 1), (64, 256, 256, 1))


def timing(reps: int, threads: int) -> list[str]:
    torch.set_num_threads(threads)
    rows = []
    for c, h, w_, pad in SHAPES:
        generator = torch.Generator().manual_seed(c)
        x = torch.randn(1, c, h, w_, generator=generator)
        x = x.contiguous(memory_format=torch.channels_last)
        weight = torch.randn(c, c, 3, 3, generator=generator) / (3 * c**0.5)
        bias = torch.randn(c, generator=generator)
        fast = winograd.WinogradConv(weight, bias)
        fns = {
            "direct": lambda x=x, w=weight, b=bias, p=pad: fused_conv(x, w, b, [p, 1]),
            "Winograd": lambda x=x, f=fast, p=pad: f(x, p),
        }
        times = interleaved_times(fns, reps)
        flop = 2 * 9 * c * c * (h + 2 * pad - 2) * w_
        base = float(np.median(times["direct"]))
        shape = f"1×{c}×{h}×{w_}" + (" (strip)" if pad == 0 else "")
        for name, values in times.items():
            median = float(np.median(values))
            rows.append(
                f"| {threads} | {shape} | {name} | {median * 1e3:.2f} ms | "
                f"{flop / median / 1e9:.0f} | {base / median:.2f}× |"
            )
        print("\n".join(rows[-2:]), flush=True)
    return rows


def errors() -> list[str]:
    rows = []
    for c in (32, 64):
        generator = torch.Generator().manual_seed(1)
        x = torch.randn(1, c, 64, 64, generator=generator)
        x = x.contiguous(memory_format=torch.channels_last)
        weight = torch.randn(c, c, 3, 3, generator=generator) / (3 * c**0.5)
        bias = torch.randn(c, generator=generator)
        exact = F.conv2d(x.double(), weight.double(), bias.double(), padding=1)
        direct = (fused_conv(x, weight, bias, [1, 1]).double() - exact).abs().max().item()
        error = (winograd.WinogradConv(weight, bias)(x, 1).double() - exact).abs()
        bound = winograd.error_bound(x, weight, bias)
        rows.append(
            f"| {c} | {direct:.2e} | {error.max().item():.2e} | "
            f"{(error / bound).max().item():.4f} | {winograd.rounding_depth(c)} |"
        )
    return rows


def depth() -> list[str]:
    """Each released SR network on a 96² plane: its inference form with and without Winograd,
    against the plain model in float64."""
    rows = []
    x = torch.rand(1, 1, 96, 96, generator=torch.Generator().manual_seed(2))
    for name in ("memnet-sr", "memnet-sr-m6r6"):
        model = load_model(name).network
        assert model is not None
        with torch.inference_mode():
            exact = model.double()(x.double())
            model.float()
            errs: dict[str, Any] = {}
            for label, use in (("direct", False), ("Winograd", True)):
                with winograd.forced(use):
                    out = InferenceMemNet(model)(x)
                errs[label] = (out.double() - exact).abs()
        rows.append(
            f"| {name} | {errs['direct'].max().item():.2e} | {errs['direct'].mean().item():.2e} | "
            f"{errs['Winograd'].max().item():.2e} | {errs['Winograd'].mean().item():.2e} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--write", action="store_true", help=f"write {RESULTS.name}")
    args = parser.parse_args()
    if winograd.kernel() is None:
        sys.exit(f"Winograd kernel: {winograd.kernel_status()}")
    with torch.inference_mode():
        timed = timing(args.reps, 1) + timing(args.reps, 2)
        err = errors()
        deep = depth()
    text = "\n".join(
        [
            f"Measured by `python benchmarks/winograd/bench.py --write` on {date.today()}: "
            f"{machine()}; {kernels_line()} (`MEMNET_ISA=avx2` for the AVX2 one); medians of "
            f"{args.reps} interleaved repetitions.",
            "",
            "### Time, one conv",
            "",
            "| threads | shape | kernel | median time | useful GFLOP/s | ratio to direct |",
            "|---|---|---|---|---|---|",
            *timed,
            "",
            "### fp32 error, one conv (64² input, against float64)",
            "",
            "| C | direct (oneDNN) max error | Winograd max error | Winograd error / its bound "
            "(max) | rounding depth k |",
            "|---|---|---|---|---|",
            *err,
            "",
            "### Error of the released SR networks (96² plane, against the float64 plain model)",
            "",
            "| model | direct: max | direct: mean | Winograd: max | Winograd: mean |",
            "|---|---|---|---|---|",
            *deep,
            "",
        ]
    )
    print(text)
    if args.write:
        RESULTS.write_text(text, "utf-8")


if __name__ == "__main__":
    main()
