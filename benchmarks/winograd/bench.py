"""Winograd prototype against oneDNN's direct 3×3 conv (the ceiling's kernel), in one run.

    OMP_NUM_THREADS=1 python benchmarks/winograd/bench.py           # print the tables
    OMP_NUM_THREADS=1 python benchmarks/winograd/bench.py --write   # and write benchmarks/winograd-results.md

One thread. For each shape the four kernels run interleaved (A B C D A B C D ...), medians of
--reps each; "useful" GFLOP/s counts the direct conv's 2·9·C·K·H·W FLOPs for every kernel.
Errors are against a float64 conv2d; the bound is prototype.error_bound (componentwise).
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
import prototype

RESULTS = Path(__file__).parents[1] / "winograd-results.md"
SHAPES = (
    (64, 64, 512),
    (64, 256, 256),
    (64, 512, 512),
    (32, 64, 512),
    (32, 256, 256),
    (32, 512, 512),
)
KERNELS = ("direct", "F(2×2) own GEMM", "F(4×4) own GEMM", "F(4×4) torch.bmm")


def kernels(w: torch.Tensor, b: torch.Tensor) -> dict[str, Any]:
    return {
        "direct": lambda x: F.conv2d(x, w, b, padding=1),
        "F(2×2) own GEMM": prototype.Winograd(w, b, 2, "own"),
        "F(4×4) own GEMM": prototype.Winograd(w, b, 4, "own"),
        "F(4×4) torch.bmm": prototype.Winograd(w, b, 4, "torch"),
    }


def timing(reps: int) -> list[str]:
    rows = [
        "| shape | kernel | median time | useful GFLOP/s | ratio to direct |",
        "|---|---|---|---|---|",
    ]
    for c, h, w_ in SHAPES:
        torch.manual_seed(0)
        x = torch.randn(1, c, h, w_).contiguous(memory_format=torch.channels_last)
        w, b = torch.randn(c, c, 3, 3) / (3 * c**0.5), torch.randn(c)
        fns = kernels(w, b)
        for fn in fns.values():
            fn(x)  # warm-up
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(reps):
            for name, fn in fns.items():
                start = time.perf_counter()
                fn(x)
                times[name].append(time.perf_counter() - start)
        flop = 2 * 9 * c * c * h * w_
        base = float(np.median(times["direct"]))
        for name in KERNELS:
            med = float(np.median(times[name]))
            rows.append(
                f"| 1×{c}×{h}×{w_} | {name} | {med * 1e3:.1f} ms | {flop / med / 1e9:.1f} | {base / med:.2f}× |"
            )
        print("\n".join(rows[-4:]), flush=True)
    return rows


def errors() -> list[str]:
    rows = [
        "| C | kernel | max error | max error / bound | bound's magnitude / Σ·|w||x| (max) | rounding depth k |",
        "|---|---|---|---|---|---|",
    ]
    for c in (32, 64):
        torch.manual_seed(1)
        x = torch.randn(1, c, 64, 64).contiguous(memory_format=torch.channels_last)
        w, b = torch.randn(c, c, 3, 3) / (3 * c**0.5), torch.randn(c)
        exact = F.conv2d(x.double(), w.double(), b.double(), padding=1)
        direct = (F.conv2d(x, w, b, padding=1).double() - exact).abs().max().item()
        rows.append(f"| {c} | direct (oneDNN) | {direct:.2e} | — | 1 | — |")
        for m in (2, 4):
            bound = prototype.error_bound(x, w, b, m)
            k = prototype.rounding_depth(m, c)
            factor = (bound / prototype.gamma(k) / prototype.direct_magnitude(x, w, b)).max().item()
            err = (prototype.Winograd(w, b, m, "own")(x).double() - exact).abs()
            rows.append(
                f"| {c} | F({m}×{m}) own GEMM | {err.max().item():.2e} | {(err / bound).max().item():.4f} | {factor:.1f} | {k} |"
            )
    return rows


def depth() -> list[str]:
    """Plain m6r6 (untrained weights) on a 64² input with its 64→64 3×3 convs replaced, against float64."""
    from memnet.model import create_model

    torch.manual_seed(2)
    model = create_model("m6r6").eval()
    x = torch.rand(1, 1, 64, 64)
    with torch.inference_mode():
        exact = model.double()(x.double())
        exact = exact[0] if isinstance(exact, tuple) else exact
        model.float()
        original = F.conv2d
        rows = ["| 3×3 convs run by | max |error| of the output | mean |error| |", "|---|---|---|"]
        for label, m in (("direct (oneDNN)", 0), ("F(2×2) own GEMM", 2), ("F(4×4) own GEMM", 4)):

            def conv(
                inp: torch.Tensor,
                weight: torch.Tensor,
                bias: Any = None,
                *a: Any,
                m: int = m,
                **kw: Any,
            ) -> torch.Tensor:
                # the prototype needs C % 8 == 0 and K % 16 == 0: the 64→64 convs (first and
                # last conv, 1→64 and 64→1, stay direct)
                if (
                    m
                    and weight.shape[-1] == 3
                    and weight.shape[1] % 8 == 0
                    and weight.shape[0] % 16 == 0
                ):
                    return prototype.Winograd(weight, bias, m, "own")(inp)
                return original(inp, weight, bias, *a, **kw)

            F.conv2d = conv  # type: ignore[assignment]
            try:
                out = model(x)
            finally:
                F.conv2d = original
            out = out[0] if isinstance(out, tuple) else out
            err = (out.double() - exact).abs()
            rows.append(f"| {label} | {err.max().item():.2e} | {err.mean().item():.2e} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--write", action="store_true", help=f"write {RESULTS.name}")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if prototype.extension() is None:
        sys.exit("no C++ compiler: the Winograd prototype cannot be built")
    with torch.inference_mode():
        err = errors()
        print("\n".join(err), flush=True)
        deep = depth()
        print("\n".join(deep), flush=True)
        tim = timing(args.reps)
    header = (
        f"Measured by `OMP_NUM_THREADS=1 python benchmarks/winograd/bench.py --write` on {date.today()}: "
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread, "
        f"medians of {args.reps} interleaved repetitions, at nice 0 on a machine shared with two "
        "nice-10 training jobs."
    )
    text = "\n".join(
        [
            header,
            "",
            "### Time",
            "",
            *tim,
            "",
            "### fp32 error, one conv (64² input)",
            "",
            *err,
            "",
            "### Error over the depth of m6r6 (64² input, untrained weights, the 64→64 convs replaced)",
            "",
            *deep,
            "",
        ]
    )
    print(text)
    if args.write:
        RESULTS.write_text(text, "utf-8")


if __name__ == "__main__":
    main()
