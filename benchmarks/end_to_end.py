"""Speed of `memnet restore` end to end on colour photos, against the conv ceiling, in one run.

    python benchmarks/end_to_end.py                   # 1 and 12 Mpx outputs; writes end-to-end-results.md
    python benchmarks/end_to_end.py --sizes 1 12 48   # the 48 Mpx photos too (about half an hour more)
    python benchmarks/end_to_end.py --quick           # 1 Mpx, prints the table only

Each case is one fresh `python -m memnet restore` process, timed from its start to its exit:
start-up, decoding, colour planes, the network, encoding and the atomic write all count. The
photos are synthetic RGB (3:2, made here by benchmarks/memory_photo.py); the cases are what
users run: the default model of each task (memnet-sr at ×2 and ×4 — one Y plane through the
network —, memnet-denoise and memnet-jpeg — three planes each) and the paper-size
memnet-sr-m6r6 at ×2. *Useful* work is the network's MFLOP per pixel × output pixels × planes
through it; its rate over the 3×3-conv ceiling measured at the start of the same run
(benchmarks/speed.py) is the *% of ceiling*. Peak RSS is the process's high-water mark.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

from child_peak import run_child
from memory_photo import SHAPES, make_photo
from speed import (
    adjacent_ceiling,
    ceiling,
    kernels_line,
    machine,
    peak_line,
    results_argument,
    results_flag,
    widest_peak,
)

RESULTS = Path(__file__).with_name("end-to-end-results.md")

# (label, model, task options, SR factor, planes through the network)
CASES = (
    ("sr ×2", "memnet-sr", ["--task", "sr", "--scale", "2"], 2, 1),
    ("sr ×4", "memnet-sr", ["--task", "sr", "--scale", "4"], 4, 1),
    ("denoise σ25", "memnet-denoise", ["--task", "denoise", "--sigma", "25"], 1, 3),
    ("jpeg q10", "memnet-jpeg", ["--task", "jpeg", "--quality", "10"], 1, 3),
    ("sr ×2", "memnet-sr-m6r6", ["--task", "sr", "--scale", "2"], 2, 1),
)


@functools.cache  # one load per model, not per case
def mflop_per_pixel(model: str) -> float:
    from memnet.model import summarize
    from memnet.weights.loading import load_model

    network = load_model(model).network
    assert network is not None
    return summarize(network).mflop_per_pixel


def run_case(
    workdir: Path, case: tuple[str, str, list[str], int, int], mpix: int
) -> dict[str, Any]:
    label, model, options, scale, planes = case
    out_h, out_w = SHAPES[mpix]
    in_h, in_w = out_h // scale, out_w // scale
    suffix = ".jpg" if "jpeg" in label else ".png"
    source = workdir / f"photo-{in_w}x{in_h}{suffix}"
    if not source.exists():
        make_photo(source, in_h, in_w, 10 if suffix == ".jpg" else None)
    target = workdir / "out.png"
    command = [sys.executable, "-m", "memnet", "restore", "-i", str(source), "-o", str(target)]
    command += [*options, "--model", model, "--device", "cpu", "--overwrite", "--quiet"]
    before = adjacent_ceiling()
    run = run_child(command)
    peak = (before + adjacent_ceiling()) / 2
    if run.exit_code != 0:
        raise SystemExit(f"{label} {model} {mpix} Mpx failed ({run.exit_code}): {run.stderr}")
    useful = mflop_per_pixel(model) * 1e6 * out_h * out_w * planes
    gflops = useful / run.seconds / 1e9
    row = {
        "case": label,
        "model": model,
        "input": f"{in_w}×{in_h}",
        "output": f"{out_w}×{out_h}",
        "mpix": out_h * out_w / 1e6,
        "planes": planes,
        "seconds": run.seconds,
        "gflops": gflops,
        "ceiling": peak,
        "percent": 100 * gflops / peak,
        "peak_mb": run.peak_mb,
    }
    print(
        f"{label:12} {model:15} {row['output']:>10}  {run.seconds:7.1f} s  "
        f"{row['percent']:3.0f} %  {run.peak_mb:6.0f} MB",
        file=sys.stderr,
        flush=True,
    )
    return row


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | task | input → output | planes | time | Mpix/s | useful GFLOP/s "
        "| ceiling beside it | % of ceiling | % of FMA peak | peak RSS |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['case']} | {r['input']} → {r['output']} | {r['planes']} | "
            f"{r['seconds']:.1f} s | {r['mpix'] / r['seconds']:.3f} | {r['gflops']:.0f} | "
            f"{r['ceiling']:.0f} | {r['percent']:.0f} % | {r['fma_percent']} | "
            f"{r['peak_mb']:,.0f} MB |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", choices=sorted(SHAPES))
    parser.add_argument(
        "--models", nargs="+", default=sorted({c[1] for c in CASES}), help="models to run"
    )
    parser.add_argument("--quick", action="store_true", help="1 Mpx, print only")
    results_argument(parser, RESULTS)
    args = parser.parse_args()
    sizes = args.sizes or ([1] if args.quick else [1, 12])
    ceil = ceiling(3)
    peak = ceil["conv_gflops"]
    print(f"conv ceiling {peak:.0f} GFLOP/s", file=sys.stderr, flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="memnet-e2e-") as tmp:
        for mpix in sizes:
            for case in CASES:
                if case[1] in args.models:
                    rows.append(run_case(Path(tmp), case, mpix))
    fma = widest_peak(ceil)
    for row in rows:
        row["fma_percent"] = f"{100 * row['gflops'] / fma:.0f} %" if fma else "–"
    text = table(rows)
    print(text)
    if args.quick:
        return 0
    command = "python benchmarks/end_to_end.py --sizes " + " ".join(map(str, sizes))
    if set(args.models) != {c[1] for c in CASES}:
        command += " --models " + " ".join(args.models)
    command += results_flag(args.results, RESULTS)
    args.results.write_text(
        f"""# `memnet restore` end to end

Measured by `{command}` on {date.today().isoformat()}: {machine()}. Conv ceiling at the start
of the run: {peak:.0f} GFLOP/s (3×3 conv 64→64, channels_last, median; best repetition
{ceil["conv_best_gflops"]:.0f}). {peak_line(ceil)}. {kernels_line()}. Each row is one fresh
`memnet restore` process on a synthetic RGB photo, PNG out (JPEG in for deblocking), its wall
time from start to exit and its peak RSS. This machine's speed drifts by 10–20 % within an
hour, so each row is compared with the conv ceiling measured just before and just after it
(their mean: *ceiling beside it*, GFLOP/s).

{text}

- *planes*: how many planes of the photo go through the network (SR: Y; denoising: R, G, B;
  JPEG deblocking: Y, Cb, Cr); the others are only resampled.
- *useful GFLOP/s*: the network's MFLOP per pixel × output pixels × planes over the whole
  process's wall time, so start-up, decoding, colour conversion and encoding count against it.
"""
    )
    print(f"wrote {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
