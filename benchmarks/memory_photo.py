"""Peak memory of `memnet restore` on colour photos of 1, 12 and 48 Mpx output, end to end.

    python benchmarks/memory_photo.py                 # 1 and 12 Mpx, writes memory-results.md's section
    python benchmarks/memory_photo.py --sizes 1 12 48 # the 48 Mpx runs too (tens of minutes)
    python benchmarks/memory_photo.py --quick         # 1 Mpx, prints the table only
    python benchmarks/memory_photo.py --no-network --sizes 1 12 48  # the image planes alone

Each case is one `python -m memnet restore` process with the released default model of its
task (memnet-sr ×2, memnet-denoise, memnet-jpeg) on a synthetic RGB photo (3:2, made here);
its peak resident memory is the kernel's high-water mark of that process (`os.wait4`'s
ru_maxrss), so the whole pipeline counts: decoding, colour planes, network, encoding, write.
`--no-network` runs the same pipeline with `--method bicubic` (SR) or `identity`: what the
image planes cost, in seconds instead of the network's hours on a large photo.
This driver imports neither numpy nor torch before it starts a case, so the child's peak is
its own. The README's memory bound is read off these rows.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

from child_peak import run_child

RESULTS = Path(__file__).with_name("memory-results.md")
# The fixed overhead the README states (Python, torch, the model and the bands of rows being
# converted): each row's peak is checked against it plus the activation budget.
STATED_OVERHEAD_MB = 320
SECTION = "## Colour photos end to end: {tasks}, {sizes} Mpx"

# Output megapixels → output (height, width), 3:2 like a camera's photo.
SHAPES = {1: (816, 1224), 12: (3000, 4000), 48: (6000, 8000)}
TASKS = (
    ("sr", ["--task", "sr", "--scale", "2"], 2),
    ("denoise", ["--task", "denoise", "--sigma", "25"], 1),
    ("jpeg", ["--task", "jpeg", "--quality", "10"], 1),
)


def make_photo(path: Path, height: int, width: int, jpeg_quality: int | None = None) -> None:
    """Gradients, shapes, texture and grain in colour: a stand-in for a photo, made in code."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    xx = np.arange(width, dtype=np.float32)[None, :] / width
    step = 512  # rows at a time: the driver itself stays small
    for top in range(0, height, step):
        yy = np.arange(top, min(top + step, height), dtype=np.float32)[:, None] / height
        base = 0.3 + 0.4 * xx * yy + 0.1 * np.sin(40 * xx) * np.cos(25 * yy)
        base = base + 0.2 * (((xx - 0.5) ** 2 + (yy - 0.5) ** 2) < 0.05)
        for c in range(3):
            grain = rng.normal(0, 0.02, base.shape).astype(np.float32)
            plane = np.clip(base + 0.05 * c * np.cos(7 * yy + c) + grain, 0, 1)
            pixels[top : top + step, :, c] = (plane * 255 + 0.5).astype(np.uint8)
    image = Image.fromarray(pixels)
    if jpeg_quality is None:
        image.save(path, format="PNG", compress_level=1)
    else:
        image.save(path, format="JPEG", quality=jpeg_quality)


def run_case(
    workdir: Path, task: str, options: list[str], scale: int, mpix: int, network: bool = True
) -> dict[str, object]:
    """One `memnet restore` process on a photo of `mpix` output megapixels; its peak RSS."""
    out_h, out_w = SHAPES[mpix]
    in_h, in_w = out_h // scale, out_w // scale
    suffix = ".jpg" if task == "jpeg" else ".png"
    source = workdir / f"photo-{in_w}x{in_h}-{task}{suffix}"
    if not source.exists():
        make_photo(source, in_h, in_w, 10 if task == "jpeg" else None)
    target = workdir / f"out-{task}-{mpix}.png"
    command = [sys.executable, "-m", "memnet", "restore", "-i", str(source), "-o", str(target)]
    command += [*options, "--device", "cpu", "--overwrite", "--quiet"]
    if not network:
        command += ["--method", "bicubic" if task == "sr" else "identity"]
    run = run_child(command)
    if run.exit_code != 0:
        raise SystemExit(f"{task} {mpix} Mpx failed ({run.exit_code}): {run.stderr}")
    return {
        "task": task if network else f"{task} (no network)",
        "input": f"{in_w}×{in_h}",
        "output": f"{out_w}×{out_h}",
        "mpix": out_h * out_w / 1e6,
        "peak_mb": run.peak_mb,
        "seconds": run.seconds,
    }


def table(rows: list[dict[str, object]], baseline_mb: float, bound_mb: float) -> str:
    lines = [
        "| task (default model) | input | output | peak RSS | peak − baseline | per output Mpx "
        f"| within {bound_mb:,.0f} MB | time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        peak, mpix = float(str(r["peak_mb"])), float(str(r["mpix"]))
        lines.append(
            f"| {r['task']} | {r['input']} | {r['output']} | {peak:,.0f} MB | "
            f"{peak - baseline_mb:,.0f} MB | {(peak - baseline_mb) / mpix:,.1f} MB | "
            f"{'yes' if peak <= bound_mb else '**no**'} | {float(str(r['seconds'])):.0f} s |"
        )
    return "\n".join(lines)


def budget_mb() -> float:
    """The activation budget a restore started now gets (in a child: this driver stays small)."""
    code = (
        "import torch; from memnet.inference.memory import memory_budget; "
        "print(memory_budget(torch.device('cpu')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(done.stdout) / 1e6


def baseline_mb() -> float:
    """Peak RSS of a `memnet restore` of a tiny photo (64 × 96, denoised): Python, torch, the
    model and what running the network costs at any size (oneDNN's kernels and scratch), with
    no image planes worth counting."""
    with tempfile.TemporaryDirectory(prefix="memnet-memory-") as tmp:
        tiny = Path(tmp) / "tiny.png"
        make_photo(tiny, 64, 96)
        command = [sys.executable, "-m", "memnet", "restore", "-i", str(tiny), "-o", tmp + "/x.png"]
        return run_child([*command, "--task", "denoise", "--sigma", "25", "--quiet"]).peak_mb


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", choices=sorted(SHAPES))
    parser.add_argument("--tasks", nargs="+", default=[t[0] for t in TASKS])
    parser.add_argument(
        "--quick", action="store_true", help="print, do not write (default size: 1 Mpx)"
    )
    parser.add_argument(
        "--no-network", action="store_true", help="bicubic/identity instead of the model"
    )
    args = parser.parse_args()
    sizes = args.sizes or ([1] if args.quick else [1, 12])
    base = baseline_mb()
    budget = budget_mb()
    bound = STATED_OVERHEAD_MB + budget
    print(f"baseline (a 64 x 96 restore): {base:,.0f} MB; bound {bound:,.0f} MB", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="memnet-memory-") as tmp:
        for mpix in sizes:
            for task, options, scale in TASKS:
                if task not in args.tasks:
                    continue
                row = run_case(Path(tmp), task, options, scale, mpix, not args.no_network)
                rows.append(row)
                print(
                    f"{task:8} {row['output']:>10}  peak {float(str(row['peak_mb'])):7.0f} MB  "
                    f"{float(str(row['seconds'])):6.0f} s",
                    flush=True,
                )
    text = table(rows, base, bound)
    print(text)
    if args.quick:
        return 0
    import torch

    from memnet import __version__
    from memnet.inference.memory import CPU_BUDGET_CAP

    tasks = ", ".join(args.tasks) + (" without the network" if args.no_network else "")
    title = SECTION.format(tasks=tasks, sizes=", ".join(map(str, sizes)))
    section = f"""{title}

Measured by `python benchmarks/memory_photo.py --sizes {" ".join(map(str, sizes))} --tasks
{" ".join(args.tasks)}{" --no-network" if args.no_network else ""}` on
{date.today().isoformat()}: {platform.machine()}, {os.cpu_count()} CPU cores (shared), Python
{platform.python_version()}, torch {torch.__version__}, memnet {__version__}. Each row is one
`memnet restore` process ({"bicubic/identity, no network" if args.no_network else "released default model"}, RGB photo, PNG out) and its peak RSS
(ru_maxrss); *baseline* ({base:,.0f} MB) is the same command on a 64 × 96 photo: Python,
torch, the model and the network's fixed cost, no planes worth counting. The activation budget here was
{budget * 1e6 / 2**20:,.0f} MiB (a quarter of free memory, at most {CPU_BUDGET_CAP / 2**30:g} GiB);
*within* checks each peak against it plus the fixed overhead the README states
({STATED_OVERHEAD_MB} MB).

{text}
"""
    # Each run replaces its own section (same tasks and sizes) and keeps the others.
    old = RESULTS.read_text() if RESULTS.exists() else ""
    parts = [p for p in old.split("\n## ") if p.strip()]
    head, others = parts[0].rstrip(), ["## " + p.strip() for p in parts[1:]]
    kept = [p for p in others if not p.startswith(title)]
    RESULTS.write_text("\n\n".join([head, *kept, section.strip()]) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
