"""How tall a streamed strip should be: m6r6 inference time against strip rows, in one run.

    python benchmarks/strips.py                 # 1024-wide and 512-wide images, ~3 min on 2 cores
    python benchmarks/strips.py --widths 256    # other widths

For each width the same image runs streamed with strips of 4 .. 64 rows and once whole (the
`InferenceMemNet` pass the stream reproduces), interleaved, medians of 3 repetitions. Short
strips keep a step's working set in the CPU's cache and the memory small; tall ones spend less
time per pixel in Python and per-call overhead. memnet.inference.streaming.STRIP_PIXELS comes from this.
Writes benchmarks/strips-results.md.
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from memnet.cpu_settings import retain_freed_memory
from memnet.inference.fast_network import InferenceMemNet
from memnet.inference.streaming import STRIP_PIXELS, StreamedMemNet, default_strip_rows
from memnet.model import create_model, summarize

RESULTS = Path(__file__).with_name("strips-results.md")
ROWS = (4, 8, 16, 32, 64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="1024,512", help="image widths, comma-separated")
    parser.add_argument("--height", type=int, default=192, help="image height (default 192)")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    retain_freed_memory()
    torch.manual_seed(0)
    model = create_model("m6r6").eval()
    flop_px = summarize(model).mflop_per_pixel * 1e6
    net = InferenceMemNet(model)
    lines = [
        "# Strip height of streamed inference (m6r6, CPU)",
        "",
        f"Measured by `python benchmarks/strips.py` on {date.today().isoformat()} with torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads; images {args.height} rows "
        f"high, medians of {args.reps} repetitions, GFLOP/s of useful work.",
        "",
        "| width | strip rows | time | GFLOP/s | activation memory |",
        "|---|---|---|---|---|",
    ]
    for width in (int(w) for w in args.widths.split(",")):
        x = torch.rand(1, 1, args.height, width)
        runs: dict[str, list[float]] = {}
        peaks: dict[str, int] = {}
        with torch.inference_mode():
            net(x[..., :32, :])  # warm-up
            for _ in range(args.reps):
                start = time.perf_counter()
                net(x)
                runs.setdefault("whole", []).append(time.perf_counter() - start)
                for rows in ROWS:
                    streamed = StreamedMemNet(net, rows)
                    start = time.perf_counter()
                    streamed(x)
                    runs.setdefault(str(rows), []).append(time.perf_counter() - start)
                    peaks[str(rows)] = streamed.peak_bytes
        peaks["whole"] = net.bytes_per_pixel() * args.height * width
        for key, times in runs.items():
            median = float(np.median(times))
            gflops = flop_px * args.height * width / median / 1e9
            label = "whole (no streaming)" if key == "whole" else key
            if key == str(default_strip_rows(width)):
                label += " (default)"
            lines.append(
                f"| {width} | {label} | {median:.2f} s | {gflops:.0f} | {peaks[key] / 2**20:,.0f} MB |"
            )
            print(lines[-1], flush=True)
    lines += [
        "",
        f"The default strip is about {STRIP_PIXELS:,} pixels (memnet.inference.streaming.STRIP_PIXELS).",
        "Activation memory: the stream's measured peak; for the whole pass the estimate",
        "InferenceMemNet.bytes_per_pixel × pixels.",
        "",
    ]
    RESULTS.write_text("\n".join(lines))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
