"""Peak memory of `memnet restore` as the image grows: bounded by the window width, not the image.

    python benchmarks/memory.py            # all points, writes benchmarks/memory-results.md
    python benchmarks/memory.py --quick    # small sizes only, prints the table

Every point runs in a fresh process (so each peak RSS is its own) through the real pipeline of
`memnet restore` (read → colour split → network → merge → atomic write) with the automatic
window plan; on a CPU the network is streamed over strips of rows. Inputs are synthetic pictures
made here. The networks are untrained presets: memory and speed do not depend on the weight
values. The largest runs use the `tiny` preset so that the whole benchmark finishes in minutes
on a 2-core CPU; two paper-size `m6r6` points (512², 1024²) show the real network's cost.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).with_name("memory-results.md")

# (label, task, preset, input edge, colour)
FULL_POINTS = [
    ("sr x2", "sr", "tiny", 512, True),
    ("sr x2", "sr", "tiny", 1024, True),
    ("sr x2", "sr", "tiny", 2048, True),
    ("denoise", "denoise", "tiny", 1024, False),
    ("denoise", "denoise", "tiny", 2048, False),
    ("denoise", "denoise", "tiny", 4096, False),
    ("denoise", "denoise", "m6r6", 512, False),
    ("denoise", "denoise", "m6r6", 1024, False),
]
QUICK_POINTS = [
    ("sr x2", "sr", "tiny", 256, True),
    ("sr x2", "sr", "tiny", 512, True),
    ("denoise", "denoise", "tiny", 512, False),
    ("denoise", "denoise", "tiny", 1024, False),
]


def synthetic_picture(edge: int, colour: bool, seed: int = 0) -> np.ndarray:
    """Gradients, a few sharp shapes and grain: a stand-in for a photo, made in code."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:edge, 0:edge].astype(np.float32) / edge
    base = 0.3 + 0.4 * xx * yy + 0.1 * np.sin(40 * xx) * np.cos(25 * yy)
    base[(xx - 0.5) ** 2 + (yy - 0.5) ** 2 < 0.05] += 0.2
    planes = [base + 0.03 * k for k in range(3)] if colour else [base]
    pixels = np.stack([p + rng.normal(0, 0.02, p.shape).astype(np.float32) for p in planes], -1)
    return (np.clip(pixels, 0, 1) * 255 + 0.5).astype(np.uint8).squeeze()


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB.

    Linux's VmHWM starts afresh at exec; ru_maxrss would carry over the peak of the parent that
    forked this process, so it is only the fallback.
    """
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(spec: dict[str, object]) -> dict[str, object]:
    """One restore in this (fresh) process; returns what it measured."""
    import memnet
    from memnet.cpu_settings import retain_freed_memory
    from memnet.imaging.reading import read_image
    from memnet.inference.memory import plain_bytes_per_pixel

    retain_freed_memory()  # as the memnet command does
    after_import = peak_rss_mb()
    restorer = memnet.load(str(spec["weights"]), device="cpu", task=str(spec["task"]), scale=2.0)
    assert restorer.restorer is not None
    picture = read_image(str(spec["input"]))
    task = restorer.make_task()
    out_h, out_w = task.output_shape(picture.height, picture.width)
    engine = restorer.restorer
    plan = engine.plan(out_h, out_w)
    grid = plan.grid
    windows = 1 if grid is None else len(grid)
    if grid is None:
        layout = "whole image"
    elif grid.tile >= out_h:
        layout = f"{windows} full-height columns of ≤ {grid.tile_width} + 2×{grid.pad}"
    else:
        layout = f"tiles of {grid.tile} + 2×{grid.pad}"
    streamed = [batch for batch in plan.views[0].batches if batch.streamed]
    if streamed:
        layout += f", streamed in {streamed[0].strip_rows}-row strips"
    whole_mb = out_h * out_w * plain_bytes_per_pixel(restorer.restorer.config) / 2**20
    del picture
    start = time.perf_counter()
    restorer.restore_file(str(spec["input"]), str(spec["output"]), overwrite=True)
    seconds = time.perf_counter() - start
    return {
        "after_import_mb": after_import,
        "peak_mb": peak_rss_mb(),
        "seconds": seconds,
        "out_mpix": out_h * out_w / 1e6,
        "layout": layout,
        "windows": windows,
        "whole_image_activations_mb": whole_mb,
    }


def run_point(
    workdir: Path, label: str, task: str, preset: str, edge: int, colour: bool
) -> dict[str, object]:
    import torch

    from memnet.model import create_model
    from memnet.weights.files import save_weights

    weights = workdir / f"{preset}-{task}.safetensors"
    if not weights.exists():
        torch.manual_seed(0)
        save_weights(create_model(preset, identity_init=True), weights, {"task": task})
    source = workdir / f"in-{edge}-{'rgb' if colour else 'gray'}.png"
    if not source.exists():
        from PIL import Image

        Image.fromarray(synthetic_picture(edge, colour)).save(source)
    spec = {
        "task": task,
        "weights": str(weights),
        "input": str(source),
        "output": str(workdir / "out.png"),
    }
    completed = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"{label} {preset} {edge}² failed:\n{completed.stderr}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    result.update(label=label, preset=preset, edge=edge, colour=colour)
    return result


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| run | preset | input | output | windows (network input) | windows | peak RSS | RSS after import | whole-image activations (estimate) | time | output Mpix/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        edge = int(str(r["edge"]))
        scale = 2 if r["label"] == "sr x2" else 1
        tile = str(r["layout"])
        peak, imported = float(str(r["peak_mb"])), float(str(r["after_import_mb"]))
        whole, seconds = float(str(r["whole_image_activations_mb"])), float(str(r["seconds"]))
        rate = float(str(r["out_mpix"])) / seconds
        lines.append(
            f"| {r['label']} {'RGB' if r['colour'] else 'gray'} | {r['preset']} | {edge}² | "
            f"{edge * scale}² | {tile} | {r['windows']} | {peak:,.0f} MB | {imported:,.0f} MB | "
            f"{whole:,.0f} MB | {seconds:.1f} s | {rate:.3f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes only; print, do not write"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    import torch

    import memnet

    points = QUICK_POINTS if args.quick else FULL_POINTS
    rows = []
    with tempfile.TemporaryDirectory(prefix="memnet-memory-") as tmp:
        for point in points:
            row = run_point(Path(tmp), *point)
            rows.append(row)
            peak, seconds = float(str(row["peak_mb"])), float(str(row["seconds"]))
            print(
                f"{point[0]:8} {point[2]:5} {point[3]:5}²  peak {peak:7.0f} MB  {seconds:7.1f} s",
                flush=True,
            )
    text = table(rows)
    print(text)
    if args.quick:
        return 0
    from memnet.inference.memory import CPU_BUDGET_CAP

    budget = f"{CPU_BUDGET_CAP / 1024**3:g} GiB"
    header = f"""# Peak memory of `memnet restore` (CPU)

Measured by `python benchmarks/memory.py` on {date.today().isoformat()}: {platform.machine()},
{os.cpu_count()} CPU cores, Python {platform.python_version()}, torch {torch.__version__},
memnet {memnet.__version__}. Each row is a fresh process running the full restore pipeline
(read PNG → colour split → network → merge → atomic PNG write) with the automatic window
plan (activation budget: a quarter of free memory, at most {budget}); on a CPU the network runs
streamed over strips of rows (memnet.inference.streaming), so only the width can need splitting. SR runs take an RGB picture
(Y through the network, Cb/Cr bicubic); denoise runs a gray one. Untrained weights: memory and
speed do not depend on the values. Times are indicative; the memory figures are what this benchmark is for.

"""
    notes = """

- *peak RSS* is the process's high-water mark (VmHWM), including Python, torch and the
  image buffers; *RSS after import* is the peak before any image was touched.
- *whole-image activations* is what one forward pass over the whole output would need
  (memnet.inference.memory.plain_bytes_per_pixel × pixels); streaming keeps the network's share of
  the peak at a few hundred rows of the (window) width instead.
- What grows with the image are its planes (decoded pixels, network input and output, the
  result): float32 and computed in bands since the colour photo sections below
  (`benchmarks/memory_photo.py`) were measured, about 4 bytes per pixel and plane.
"""
    RESULTS.write_text(header + text + notes)
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
