"""Whole pass or streamed strips for an image that fits in memory whole, on the CPU, in one run.

    python benchmarks/whole_or_streamed.py            # memnet-sr and m6r6, 256² .. 2 Mpx (~6 min)
    python benchmarks/whole_or_streamed.py --quick    # memnet-sr only, prints the table only

For each released model and image size the same gray plane runs through the optimised network
(`InferenceMemNet`) as one whole pass and streamed over strips of the default height
(`StreamedMemNet`), interleaved in one process, after a warm-up of each; the table gives the
medians of the repetitions. A whole pass holds every activation of the image at once and goes
through DRAM for each layer; a stream keeps a few rows of each. Where the stream is faster,
memnet.inference.planning streams an image even though it fits whole
(`STREAM_FROM_PIXELS`). Writes benchmarks/whole-or-streamed-results.md.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from datetime import date
from pathlib import Path

import torch

from memnet.cpu_settings import retain_freed_memory
from memnet.inference.fast_network import InferenceMemNet
from memnet.inference.planning import STREAM_FROM_PIXELS
from memnet.inference.streaming import StreamedMemNet, default_strip_rows
from memnet.weights.loading import load_model
from speed import interleaved_times, kernels_line, machine

RESULTS = Path(__file__).with_name("whole-or-streamed-results.md")
SIZES = ((256, 256), (512, 512), (640, 640), (816, 1224), (1024, 1024), (1024, 2048))
MODELS = ("memnet-sr", "memnet-sr-m6r6")


def medians(runs: dict[str, Callable[[], object]], reps: int) -> dict[str, float]:
    """Median seconds of each run, the runs interleaved (speed.interleaved_times)."""
    times = interleaved_times(runs, reps)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="memnet-sr only, print only")
    args = parser.parse_args()
    retain_freed_memory()
    generator = torch.Generator().manual_seed(0)
    rows = []
    for name in MODELS[:1] if args.quick else MODELS:
        network = load_model(name).network
        assert network is not None
        net = InferenceMemNet(network)
        stream = StreamedMemNet(net)
        for height, width in SIZES:
            x = torch.rand(1, 1, height, width, generator=generator)
            upright = x.contiguous(memory_format=torch.channels_last)

            def whole(net: InferenceMemNet = net, upright: torch.Tensor = upright) -> object:
                with torch.inference_mode():
                    return net(upright)

            def streamed(stream: StreamedMemNet = stream, x: torch.Tensor = x) -> object:
                return stream(x)

            got = medians({"whole": whole, "streamed": streamed}, args.reps)
            row = (
                f"| {name} | {width}×{height} | {height * width / 1e6:.2f} | "
                f"{default_strip_rows(width)} | {got['whole']:.3f} s | {got['streamed']:.3f} s | "
                f"{got['whole'] / got['streamed']:.2f}× |"
            )
            print(row, flush=True)
            rows.append(row)
    if args.quick:
        return 0
    RESULTS.write_text(
        f"""# Whole pass or streamed strips, for images that fit whole (CPU)

Measured by `python benchmarks/whole_or_streamed.py` on {date.today().isoformat()}: {machine()};
{kernels_line()}. The optimised network of each released model on one gray plane, as one
whole pass and streamed over strips of the default height, interleaved in one process, medians
of {args.reps} repetitions after a warm-up. memnet streams an image of at least
{STREAM_FROM_PIXELS:,} pixels on a CPU even where it fits whole (memnet.inference.planning).

| model | image | Mpix | strip rows | whole | streamed | streamed is faster by |
|---|---|---|---|---|---|---|
"""
        + "\n".join(rows)
        + "\n"
    )
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
