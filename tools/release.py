"""Release a trained run: install its weights in the package and keep its resume point.

    python tools/release.py runs/sr-cpu --name memnet-sr

1. `CHECKPOINT.safetensors` of the run (default `last`, the end of its schedule) is copied to
   `src/memnet/weights/NAME.safetensors`, the file the zoo entry names.
2. The run's recipe, metrics log and checkpoints (without the numbered snapshots) are copied to
   `training/NAME/`, so that a later `memnet train RECIPE --out training/NAME --resume auto`
   continues the very same run exactly (e.g. with `--set train.iterations=N` to extend it).
3. It prints what the zoo entry needs: SHA-256, recipe, iterations and training time. The
   measured metrics come from `memnet eval --model NAME` once the entry is registered.

Copies are written to a temporary name and renamed, like every file memnet writes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from memnet.fsutil import atomic_write_bytes, sha256_of
from memnet.weights import files

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "src" / "memnet" / "weights"
TRAINING = ROOT / "training"
KEPT = ("recipe.yaml", "metrics.jsonl")
KEPT_CHECKPOINTS = ("last.safetensors", "last.state.pt", "best.safetensors")


def copy_atomically(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(target, source.read_bytes())


def training_summary(weights: Path) -> dict[str, str]:
    """Iteration, training time and recipe name from the weights file's own metadata."""
    meta = files.read_metadata(weights)
    return {
        "recipe": meta.get(files.META_RECIPE, ""),
        "iteration": meta.get(files.META_ITERATION, "?"),
        "training_seconds": meta.get(files.META_SECONDS, "?"),
        "validation": meta.get(files.META_VALIDATION, "{}"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder of memnet train (runs/NAME)")
    parser.add_argument("--name", required=True, help="zoo name, e.g. memnet-sr")
    parser.add_argument("--checkpoint", default="last", choices=("last", "best"))
    args = parser.parse_args(argv)

    source = args.run / "checkpoints" / f"{args.checkpoint}.safetensors"
    if not source.is_file():
        print(f"error: {source} does not exist", file=sys.stderr)
        return 1
    installed = WEIGHTS / f"{args.name}.safetensors"
    copy_atomically(source, installed)
    kept = TRAINING / args.name
    for name in KEPT:
        if (args.run / name).is_file():
            copy_atomically(args.run / name, kept / name)
    for name in KEPT_CHECKPOINTS:
        if (args.run / "checkpoints" / name).is_file():
            copy_atomically(args.run / "checkpoints" / name, kept / "checkpoints" / name)

    summary = training_summary(installed)
    minutes = float(summary["training_seconds"]) / 60 if summary["iteration"] != "?" else 0.0
    print(f"installed {installed.relative_to(ROOT)}  ({installed.stat().st_size:,} bytes)")
    print(f"resume point kept in {kept.relative_to(ROOT)}/")
    print(f"  sha256     {sha256_of(installed)}")
    print(f"  recipe     {summary['recipe']}")
    print(f"  iterations {int(summary['iteration']):,}")
    print(f"  training   {minutes:.0f} min of training steps")
    print(f"  last validation {json.loads(summary['validation'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
