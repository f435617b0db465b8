"""Time memnet's training batch maker alone (no network): set-up and one batch, per recipe.

    python benchmarks/batch_maker.py configs/jpeg-cpu.yaml [--batches 200] [--data-root DIR]

Set-up is loading the images and making the cached degraded copies (for JPEG: every flip/rotation
of every image compressed whole at every quality); a batch is what a background thread of
`memnet train` makes per step. Prints one line per measurement.
"""

from __future__ import annotations

import argparse
import statistics
import time

from memnet.training.batches import batch_generator
from memnet.training.patches import build_training_set
from memnet.training.recipe import load_recipe


def main() -> None:
    """Measure set-up seconds, then the median milliseconds of one batch."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    recipe = load_recipe(args.recipe)
    started = time.perf_counter()
    source = build_training_set(recipe.task, recipe.data, data_root=args.data_root)
    setup = time.perf_counter() - started
    batch = recipe.train.batch_size
    times = []
    for index in range(args.batches):
        tick = time.perf_counter()
        source.sample(batch_generator(0, 0, index), batch, recipe.data.augment)
        times.append(time.perf_counter() - tick)
    print(f"{recipe.name}: set-up {setup:.1f} s for {len(source)} cached copies")
    print(
        f"{recipe.name}: batch of {batch} x {recipe.data.patch_size}^2 "
        f"(augment {recipe.data.augment}): median {1000 * statistics.median(times):.3f} ms "
        f"over {args.batches} batches"
    )


if __name__ == "__main__":
    main()
