"""Validation during training, by the evaluation's own path (`memnet.evaluation.benchmark`).

The sets are read once, when a run starts, by `load_set` and `check_sizes` with their checks
(every unreadable file named in one line, an image too small for a level named before the first
step); every validation then scores the current weights with `evaluate`, which degrades each
image by the task's protocol (noise from `noise_generator(seed, image name)`), restores it and
scores it with the task's rounding and shave. So a run's validation numbers are those
`memnet eval` gives for the same weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from memnet.evaluation.benchmark import (
    BenchmarkSet,
    Method,
    check_sizes,
    evaluate,
    load_set,
    make_tasks,
)
from memnet.evaluation.report import SetScore
from memnet.inference.engine import Restorer
from memnet.model import MemNet
from memnet.training.recipe import SYNTHETIC, SyntheticSpec, ValidationSpec
from memnet.training.synthetic import synthetic_images

__all__ = ["Validation", "build_validation", "run_validation"]

# Held-out synthetic pictures: the training pictures' generator under another seed.
HELD_OUT_SEED_OFFSET = 1_000_003
HELD_OUT_IMAGES = 4  # a synthetic validation set without max_images


def synthetic_set(synthetic: SyntheticSpec, count: int) -> BenchmarkSet:
    """`count` synthetic pictures unlike the training ones, as a set named 'synthetic'.

    Their names, synthetic/0, synthetic/1, ..., seed their noise (`noise_generator`).
    """
    held_out = synthetic.model_copy(update={"seed": synthetic.seed + HELD_OUT_SEED_OFFSET})
    images = tuple(synthetic_images(held_out, count=count))
    names = tuple(f"{SYNTHETIC}/{i}" for i in range(len(images)))
    return BenchmarkSet(SYNTHETIC, Path(), names, images)


@dataclass(frozen=True)
class Validation:
    """The validation sets of a run, read once, each with the levels it is scored at."""

    kind: str
    seed: int
    sets: tuple[tuple[BenchmarkSet, tuple[float, ...]], ...]

    @property
    def cells(self) -> int:
        """How many (set, level) means a validation reports."""
        return sum(len(levels) for _, levels in self.sets)

    @property
    def images(self) -> int:
        """How many images a validation restores (an image once per level)."""
        return sum(len(bench) * len(levels) for bench, levels in self.sets)

    def evaluate(self, method: Method) -> list[SetScore]:
        """The mean scores of `method` per (set, level), in the order of the recipe."""
        scores: list[SetScore] = []
        for bench, levels in self.sets:
            report = evaluate(
                self.kind, levels, [bench], method, method_name="validation", seed=self.seed
            )
            scores.extend(report.summary)
        return scores


def build_validation(
    spec: ValidationSpec,
    kind: str,
    *,
    data_root: str | os.PathLike[str] | None,
    synthetic: SyntheticSpec,
) -> Validation:
    """Read the recipe's validation sets and check them against their levels, once.

    An unreadable file or an image too small for a level stops the run here, before its first
    step, as `memnet eval` stops before its first image.
    """
    sets = []
    for entry in spec.sets:
        if entry.set == SYNTHETIC:
            bench = synthetic_set(synthetic, entry.max_images or HELD_OUT_IMAGES)
        else:
            bench = load_set(entry.set, data_root, kind=kind, max_images=entry.max_images)
        check_sizes([bench], make_tasks(kind, entry.levels))
        sets.append((bench, tuple(entry.levels)))
    return Validation(kind, spec.seed, tuple(sets))


def run_validation(
    model: MemNet, validation: Validation, *, device: torch.device, tile: int | None
) -> dict[str, dict[str, float]]:
    """Mean PSNR/SSIM per 'SET/LEVEL' label with the exact test protocol (the model is only
    read: its training mode and weights stay as they were)."""
    restorer = Restorer(model, device=device, tile=tile)
    return {
        f"{score.set}/{score.label}": {"psnr": score.psnr, "ssim": score.ssim}
        for score in validation.evaluate(restorer)
    }
