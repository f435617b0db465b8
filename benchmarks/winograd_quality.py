"""PSNR of every released model with and without the Winograd convs, on the benchmark sets.

    python benchmarks/winograd_quality.py            # writes winograd-quality-results.md
    python benchmarks/winograd_quality.py --models memnet-sr --sets Set5

The paper's protocol (`memnet eval`: Y channel, borders cropped as the authors do), the same
`Restorer` either way, once with every 3×3 conv between memories direct (oneDNN) and once as
Winograd F(4×4, 3×3) (memnet.inference.winograd), whatever this machine measured faster. SR
models run on Set5 and Set14 at ×2, ×3 and ×4; the denoising and JPEG models on the sets of
their tasks. Needs ../shared/datasets (or MEMNET_DATA_ROOT).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

from memnet.evaluation.benchmark import evaluate, load_set
from memnet.inference import winograd
from memnet.inference.engine import Restorer
from memnet.weights import zoo
from memnet.weights.loading import load_model
from speed import kernels_line, machine

RESULTS = Path(__file__).resolve().parent / "winograd-quality-results.md"
SETS = {"sr": ["Set5", "Set14"], "denoise": ["Set12"], "jpeg": ["Classic5"]}
LEVELS = {"sr": [2.0, 3.0, 4.0], "denoise": [25.0, 50.0], "jpeg": [10.0, 20.0]}


def restorer(name: str, fast: bool) -> Restorer:
    with winograd.forced(fast):
        model = load_model(name).network
        assert model is not None
        return Restorer(model, device="cpu")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=sorted(zoo.REGISTRY))
    parser.add_argument("--sets", nargs="+", help="only these sets")
    args = parser.parse_args()
    if winograd.kernel() is None:
        sys.exit(f"Winograd kernel: {winograd.kernel_status()}")
    rows, worst = [], 0.0
    for name in args.models:
        task = zoo.get(name).task
        for set_name in SETS[task]:
            if args.sets and set_name not in args.sets:
                continue
            bench = load_set(set_name, kind=task)  # $MEMNET_DATA_ROOT or ../shared/datasets
            scores = {}
            for fast in (False, True):
                start = time.perf_counter()
                report = evaluate(
                    task, LEVELS[task], [bench], restorer(name, fast), method_name=name
                )
                scores[fast] = report.summary
                print(f"{name} {set_name} fast={fast}: {time.perf_counter() - start:.0f} s",
                      file=sys.stderr, flush=True)  # fmt: skip
            for direct, fast_score in zip(scores[False], scores[True], strict=True):
                delta = fast_score.psnr - direct.psnr
                worst = max(worst, abs(delta))
                rows.append(
                    f"| {name} | {set_name} | {direct.label} | {direct.psnr:.4f} | "
                    f"{fast_score.psnr:.4f} | {delta:+.4f} | {direct.ssim:.5f} | "
                    f"{fast_score.ssim:.5f} |"
                )
                print(rows[-1], flush=True)
    command = (
        "python benchmarks/winograd_quality.py"
        + ("" if args.models == sorted(zoo.REGISTRY) else " --models " + " ".join(args.models))
        + ("" if not args.sets else " --sets " + " ".join(args.sets))
    )
    text = "\n".join(
        [
            "# Released models with and without the Winograd convs",
            "",
            f"Measured by `{command}` on {date.today()}: {machine()}; {kernels_line()}. "
            "The paper's protocol "
            "(`memnet eval`), one `Restorer` with direct 3×3 convs and one with Winograd "
            f"F(4×4, 3×3). Largest PSNR change: {worst:.4f} dB.",
            "",
            "| model | set | level | PSNR direct | PSNR Winograd | change (dB) | SSIM direct "
            "| SSIM Winograd |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
    print(text)
    if not args.sets and args.models == sorted(zoo.REGISTRY):
        RESULTS.write_text(text, "utf-8")
    return 0 if worst <= 0.01 else 1


if __name__ == "__main__":
    sys.exit(main())
