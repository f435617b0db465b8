"""Pictures generated in code: training and validation images that need no files.

Flat regions, gradients, sharp edges, thin lines and fine gratings — the structures a
restoration network must learn — drawn from a seed, so that a recipe with the `synthetic`
source trains (and CI tests) the same way on any machine.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from memnet.training.recipe import SyntheticSpec

__all__ = ["synthetic_images"]


def _supersampled_picture(rng: np.random.Generator, size: int) -> NDArray[np.float64]:
    """A picture with flat regions, gradients, sharp edges, lines and fine gratings."""
    factor = 2  # draw at twice the size, then box-average: edges get natural anti-aliasing
    n = size * factor
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64) / n
    image = rng.uniform(60, 190) + rng.uniform(-60, 60) * xx + rng.uniform(-60, 60) * yy
    for _ in range(int(rng.integers(5, 12))):
        cy, cx = rng.uniform(0, 1, 2)
        ry, rx = rng.uniform(0.05, 0.35, 2)
        value = rng.uniform(0, 255)
        if rng.random() < 0.5:
            mask = (np.abs(yy - cy) < ry) & (np.abs(xx - cx) < rx)
        else:
            mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        image[mask] = value
    for _ in range(int(rng.integers(1, 4))):
        # a grating inside a disc: fine periodic detail that SR can learn to restore
        cy, cx, radius = *rng.uniform(0.2, 0.8, 2), rng.uniform(0.1, 0.3)
        period = rng.uniform(0.04, 0.12)
        angle = rng.uniform(0, math.pi)
        wave = np.sin(2 * math.pi * (xx * math.cos(angle) + yy * math.sin(angle)) / period)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
        image[disc] = 128 + rng.uniform(40, 110) * wave[disc]
    for _ in range(int(rng.integers(2, 6))):
        # thin straight lines
        angle = rng.uniform(0, math.pi)
        offset = rng.uniform(-0.5, 0.5)
        distance = np.abs((xx - 0.5) * math.sin(angle) - (yy - 0.5) * math.cos(angle) - offset)
        image[distance < rng.uniform(0.002, 0.01)] = rng.uniform(0, 255)
    return image.reshape(size, factor, size, factor).mean(axis=(1, 3))


def synthetic_images(spec: SyntheticSpec, *, count: int | None = None) -> list[NDArray[np.uint8]]:
    """Gray pictures generated in code (deterministic in `spec.seed`): no files needed."""
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 7919]))
    images = []
    for _ in range(spec.images if count is None else count):
        picture = _supersampled_picture(rng, spec.size)
        images.append(np.clip(np.floor(picture + 0.5), 0, 255).astype(np.uint8))
    return images
