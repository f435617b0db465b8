"""What a `memnet restore` does besides the network: reading, colour planes and merge, writing.

    python benchmarks/fixed_costs.py                          # this checkout; writes fixed-costs-results.md
    python benchmarks/fixed_costs.py --against OTHER/src      # alternated with another version (written too)

A 2000×1500 synthetic photo (benchmarks/memory_photo.py) restored ×2 to 4000×3000 as
`memnet restore` does it (8-bit samples in, PNG out, the memnet command's malloc settings), but
with a network that only copies its plane, so what is timed is everything else: decoding, the
Y plane and its bicubic, Cb/Cr bicubic and YCbCr → RGB with the rounding, and the PNG. Each
version runs in fresh processes, alternated (A B A B …); each process times 4 passes and keeps
the median of the last 3. `--against` names the `src` folder of another checkout (e.g. one
made with `git worktree add`), so two versions are compared in one sitting.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

from memory_photo import make_photo

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "fixed-costs-results.md"
PHASES = ("read", "planes and merge", "write")


def child(photo: str, out: str) -> None:
    import time

    import numpy as np

    from memnet.cpu_settings import retain_freed_memory

    retain_freed_memory()  # as the memnet command does
    from memnet.imaging.reading import read_image
    from memnet.imaging.writing import write_image
    from memnet.inference.pictures import restore_picture
    from memnet.tasks import SuperResolution

    task, passes = SuperResolution(2), []
    for _ in range(4):
        t0 = time.perf_counter()
        picture = read_image(photo, samples=True)
        t1 = time.perf_counter()
        restored = restore_picture(picture, task, lambda plane: plane * 1.0, depth=8)
        t2 = time.perf_counter()
        write_image(restored, out)
        passes.append((t1 - t0, t2 - t1, time.perf_counter() - t2))
    print(json.dumps([float(np.median([p[i] for p in passes[1:]])) for i in range(3)]))


def commit_of(src: str) -> str:
    """The commit a source folder is checked out at (its dirty state not counted)."""
    done = subprocess.run(
        ["git", "-C", src, "log", "-1", "--format=%h %s"], capture_output=True, text=True
    )
    return done.stdout.strip()[:70] if done.returncode == 0 else "not a git checkout"


def measure(src: str, photo: Path, out: Path) -> list[float]:
    command = [sys.executable, __file__, "--child", str(photo), str(out)]
    env = {**os.environ, "PYTHONPATH": src}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", help="the src folder of another memnet to alternate with")
    parser.add_argument("--rounds", type=int, default=3, help="processes per version (default 3)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    sources = [str(HERE.parent / "src")]
    if args.against:
        sources.append(str(Path(args.against).resolve()))
    versions = {
        f"{'this checkout' if i == 0 else '--against'}: {commit_of(src)}": src
        for i, src in enumerate(sources)
    }
    with tempfile.TemporaryDirectory() as work:
        photo, out = Path(work) / "photo.png", Path(work) / "out.png"
        make_photo(photo, 1500, 2000)
        times: dict[str, list[list[float]]] = {name: [] for name in versions}
        for _ in range(args.rounds):
            for name, src in versions.items():
                times[name].append(measure(src, photo, out))
                print(name, " ".join(f"{t:.3f}" for t in times[name][-1]), flush=True)
    lines = [
        "# What a restore does besides the network",
        "",
        f"Measured by `python benchmarks/fixed_costs.py{' --against …' if args.against else ''}` "
        f"on {date.today().isoformat()}: a 2000×1500 photo restored ×2 to 4000×3000 with a network "
        "that copies its plane; seconds, the median over processes of each process's median.",
        "",
        "| version | " + " | ".join(PHASES) + " | total |",
        "|---|" + "---|" * (len(PHASES) + 1),
    ]
    for name, rows in times.items():
        medians = [statistics.median(row[i] for row in rows) for i in range(len(PHASES))]
        cells = " | ".join(f"{m:.2f} s" for m in medians)
        lines.append(f"| {name} | {cells} | {sum(medians):.2f} s |")
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
