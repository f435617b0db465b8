"""Throughput of `memnet restore --ray` for 1 and 2 workers, beside the single-machine path.

    python benchmarks/scale.py                 # local Ray with 2 CPUs, writes scale-results.md
    python benchmarks/scale.py --address auto  # an existing cluster (prints only)

Synthetic noisy pictures are made here and restored with a released model (memnet-denoise by
default; RGB, so three network passes per picture). Each Ray run starts a fresh actor pool, so
its wall time includes the actors' start-up (Python, torch and the model in a new process);
the steady rate is measured between the first and the last output written.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image

RESULTS = Path(__file__).with_name("scale-results.md")


def make_inputs(folder: Path, count: int, size: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for index in range(count):
        base = np.linspace(40, 210, size)[None, :, None] * np.ones((size, 1, 3))
        noisy = base + rng.normal(0, 25, (size, size, 3))
        Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).save(folder / f"{index:03d}.png")


def steady_rate(out: Path) -> float:
    """Pictures per second between the first and the last output written."""
    stamps = sorted(p.stat().st_mtime for p in out.glob("*.png"))
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--model", default="memnet-denoise")
    parser.add_argument("--workers", default="1,2", help="comma-separated actor counts")
    parser.add_argument("--address", help="an existing Ray cluster (default: local, 2 CPUs)")
    args = parser.parse_args()

    import ray
    import torch

    from memnet.cli import main as memnet
    from memnet.inference.folders import collect_inputs, plan_outputs
    from memnet.scale import RayOptions, restore_on_ray
    from memnet.scale.worker import WorkerSettings

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_inputs(root / "in", args.images, args.size)
        megapixels = args.images * args.size**2 / 1e6
        # One thread, like each Ray actor (one CPU each): on a shared machine more threads than
        # free cores only wait on each other.
        torch.set_num_threads(1)
        start = time.perf_counter()
        command = ["restore", "-i", str(root / "in"), "-o", str(root / "single")]
        assert memnet([*command, "--model", args.model, "-q"]) == 0
        seconds = time.perf_counter() - start
        rows.append(("one process, 1 thread, no Ray", seconds, steady_rate(root / "single")))
        if args.address:
            ray.init(address=args.address)
        else:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        sources, base = collect_inputs(str(root / "in"))
        settings = WorkerSettings({"name_or_path": args.model, "task": "denoise"})
        for workers in (int(w) for w in args.workers.split(",")):
            out = root / f"ray{workers}"
            jobs = plan_outputs(sources, base, str(out), suffix="")
            options = RayOptions(workers=workers, progress=False)
            start = time.perf_counter()
            report = restore_on_ray(jobs, settings, options, failed_manifest=out / "f.jsonl")
            seconds = time.perf_counter() - start
            assert len(report.batch.written) == args.images, report.summary()
            same = all(
                (out / j.target.name).read_bytes() == (root / "single" / j.target.name).read_bytes()
                for j in jobs
            )
            label = f"Ray, {workers} worker{'s' if workers > 1 else ''} × 1 CPU"
            rows.append((label + ("" if same else " (outputs differ!)"), seconds, steady_rate(out)))
        ray.shutdown()

    lines = [
        f"{args.images} pictures of {args.size}×{args.size} RGB ({megapixels:.2f} Mpix), "
        f"{args.model}, {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"load average {os.getloadavg()[0]:.1f} at the end, {date.today()}",
        "",
        "| run | wall s (with start-up) | pictures/s overall | steady pictures/s | steady Mpix/s |",
        "|---|---|---|---|---|",
    ]
    for label, seconds, rate in rows:
        lines.append(
            f"| {label} | {seconds:.1f} | {args.images / seconds:.2f} | {rate:.2f} | "
            f"{rate * args.size**2 / 1e6:.3f} |"
        )
    text = "\n".join(lines)
    print(text)
    if not args.address:
        RESULTS.write_text(
            "# `memnet restore --ray` throughput\n\n"
            "Written by `python benchmarks/scale.py` (see its docstring).\n\n" + text + "\n",
            encoding="utf-8",
        )


if __name__ == "__main__":
    main()
