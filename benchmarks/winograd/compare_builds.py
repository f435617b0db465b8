"""The Winograd conv of two versions of memnet's kernels, side by side in one process.

    python benchmarks/winograd/compare_builds.py               # the working tree against HEAD
    python benchmarks/winograd/compare_builds.py --base 3f6e7f1 --reps 40

The kernels' sources at `--base` (a git revision) are built with the flags memnet uses here and
loaded beside the working tree's build; both run the same convs alternately (A B A B ..., after a warm-up call each), on
the shapes of benchmarks/winograd/bench.py and a streamed strip of a 4000-wide photo, so that
this machine's drift, which is larger than most kernel changes, falls on both alike. Prints the
median and best useful GFLOP/s of each, their ratio, and whether the two outputs are the same
to the bit (they should be for any change that keeps the arithmetic).
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from memnet.inference import native, winograd
from speed import interleaved_times, kernels_line, machine

ROOT = Path(__file__).resolve().parents[2]
KERNELS = "src/memnet/inference/kernels"
# (channels, input rows, width, rows of zero padding), as bench.py, and a 4000-wide strip
SHAPES: tuple[tuple[int, int, int, int], ...] = (
    (32, 18, 1224, 0),
    (64, 18, 1224, 0),
    (64, 10, 4000, 0),
    (32, 256, 256, 1),
    (64, 256, 256, 1),
)


def build_at(revision: str, folder: Path) -> ctypes.CDLL:
    """The kernels as they were at `revision`, built here with memnet's own flags."""
    listing = subprocess.run(
        ["git", "-C", str(ROOT), "ls-tree", "--name-only", f"{revision}:{KERNELS}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for name in listing:
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{revision}:{KERNELS}/{name}"],
            check=True,
            capture_output=True,
        ).stdout
        (folder / name).write_bytes(text)
    isa, compiler = native.isa(), native._compiler()
    if isa is None or compiler is None:
        raise SystemExit("memnet's kernels cannot be built on this machine")
    target = folder / "base.so"
    sources = [folder / name for name in listing if name.endswith(".cpp")]
    problem = native._build(compiler, isa, target, sources)  # the flags of the loaded build
    if problem is not None:
        raise SystemExit(f"the kernels at {revision} did not build: {problem}")
    lib = ctypes.CDLL(str(target))
    signature = native._SIGNATURES["memnet_winograd_conv"]
    lib.memnet_winograd_conv.restype, lib.memnet_winograd_conv.argtypes = signature
    return lib


def weights_for(lib: ctypes.CDLL, u: torch.Tensor) -> torch.Tensor:
    """U as `lib` reads it: packed where that version packs it, else as transformed."""
    if not hasattr(lib, "memnet_winograd_pack"):
        return u
    packed = torch.empty_like(u)
    lib.memnet_winograd_pack.argtypes = native._SIGNATURES["memnet_winograd_pack"][1]
    assert lib.memnet_winograd_pack(u.data_ptr(), u.shape[1], u.shape[2], packed.data_ptr()) == 0
    return packed


def conv(
    lib: ctypes.CDLL,
    weights: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    pad: int,
    block: int,
    threads: int,
) -> None:
    """y = the 3×3 conv of x by `lib`'s Winograd kernel, `pad` zero rows above and below."""
    _, c, h, w = x.shape
    rows = y.shape[2]
    status = lib.memnet_winograd_conv(
        x.data_ptr(), x.data_ptr(), h, 1, h, w, c, pad, pad, None, None, weights.data_ptr(),
        y.shape[1], None, None, None, rows, y.data_ptr(), y.data_ptr(), rows, 0, threads, block,
    )  # fmt: skip
    assert status == 0, "the kernel refused the shapes"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="HEAD", help="git revision to compare with")
    parser.add_argument("--reps", type=int, default=25, help="alternations per shape")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    current = native.library()
    if current is None:
        raise SystemExit(f"memnet's kernels: {native.status()}")
    print(f"{machine()}; {kernels_line()}; {args.threads} threads, {args.reps} alternations")
    print(f"| shape | {args.base}: median / best | working tree: median / best | ratio | bits |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        base = build_at(args.base, Path(scratch))
        for c, h, w, pad in SHAPES:
            generator = torch.Generator().manual_seed(c)
            x = torch.randn(1, c, h, w, generator=generator)
            x = x.contiguous(memory_format=torch.channels_last)
            u = winograd.weight_transform(torch.randn(c, c, 3, 3, generator=generator) / 24)
            rows = h + 2 * pad - 2
            block = current.memnet_winograd_block(c, c, winograd.BLOCK_CACHE_BYTES)
            outputs, runs = {}, {}
            for name, lib in (("base", base), ("tree", current)):
                y = torch.empty(1, c, rows, w).contiguous(memory_format=torch.channels_last)
                outputs[name] = y
                runs[name] = functools.partial(
                    conv, lib, weights_for(lib, u), x, y, pad, block, args.threads
                )
            times = interleaved_times(runs, args.reps)
            flop = 2 * 9 * c * c * rows * w
            rate = {k: (flop / np.median(v) / 1e9, flop / min(v) / 1e9) for k, v in times.items()}
            same = torch.equal(outputs["base"], outputs["tree"])
            print(
                f"| 1×{c}×{h}×{w} | {rate['base'][0]:.0f} / {rate['base'][1]:.0f} GFLOP/s "
                f"| {rate['tree'][0]:.0f} / {rate['tree'][1]:.0f} GFLOP/s "
                f"| {rate['tree'][0] / rate['base'][0]:.2f}× | {'same' if same else 'DIFFERENT'} |"
            )


if __name__ == "__main__":
    main()
