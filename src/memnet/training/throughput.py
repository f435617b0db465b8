"""How fast a recipe trains: a few steps in a throw-away folder, measured from their metrics."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memnet.training.recipe import Recipe
from memnet.training.trainer import RunOptions, train

__all__ = ["Throughput", "measure_throughput"]


@dataclass(frozen=True)
class Throughput:
    """Training speed of a recipe, measured from its per-step metrics."""

    iterations: int
    patches_per_s: float  # median over the measured steps
    best_patches_per_s: float
    step_ms: float  # median
    data_wait_ms: float  # median
    batch_ms: float  # time a background thread takes to make one batch

    def summary(self, recipe: Recipe) -> str:
        """One line: the recipe's network and batch, patches/s, step time and data-wait."""
        net = recipe.model.network_config()
        return (
            f"{recipe.name}: M{net.blocks}R{net.recursions}C{net.channels}, batch "
            f"{recipe.train.batch_size} of {recipe.data.patch_size}x{recipe.data.patch_size}: "
            f"{self.patches_per_s:.1f} patches/s (median of {self.iterations} steps; best "
            f"{self.best_patches_per_s:.1f}), step {self.step_ms:.0f} ms, data-wait "
            f"{self.data_wait_ms:.2f} ms per step (making a batch: {self.batch_ms:.2f} ms)"
        )


def measure_throughput(
    recipe: Recipe, iterations: int, *, warmup: int = 3, data_root: str | None = None
) -> Throughput:
    """Train `warmup + iterations` steps in a throw-away folder and report the step speed."""
    quick = recipe.model_copy(deep=True)
    quick.validation.interval = 0
    quick.log.interval = 1
    quick.log.tensorboard = False
    quick.checkpoint.snapshot_interval = 0
    quick.train.iterations = max(quick.train.iterations, warmup + iterations)
    quick.checkpoint.interval = quick.train.iterations
    with tempfile.TemporaryDirectory(prefix="memnet-throughput-") as folder:
        options = RunOptions(
            out=folder, quiet=True, stop_at=warmup + iterations, data_root=data_root
        )
        train(quick, options)
        lines = (Path(folder) / "metrics.jsonl").read_text().splitlines()
    steps = [r for r in map(json.loads, lines) if r.get("kind") == "train"][warmup:]
    speeds = [float(r["patches_per_s"]) for r in steps]
    return Throughput(
        iterations=len(steps),
        patches_per_s=float(np.median(speeds)),
        best_patches_per_s=max(speeds),
        step_ms=float(np.median([r["step_ms"] for r in steps])),
        data_wait_ms=float(np.median([r["data_wait_ms"] for r in steps])),
        batch_ms=float(steps[-1]["batch_ms"]),
    )
