"""How far two float32 evaluations of one network may differ by rounding alone.

Two float32 computations of the same network that differ only in the order of their sums — another
oneDNN kernel on another CPU (AVX2 vs AVX-512), a folded BatchNorm, a tile or a strip instead of the
whole image — differ by rounding, not by arithmetic. A layer sums `fan_in` products; summed in
another order, a float32 sum of n terms moves by about sqrt(n)·eps relative to the magnitude of
what it sums (rounding errors add like a random walk; n·eps is the worst case), and the errors of
the layers add up along the network's depth. `float32_bound` is that estimate for the deepest
path and widest sum of a MemNet, scaled by the magnitude of the output, with no safety factor:
measured differences are an order of magnitude below it. A real mistake (a wrong fold, a missing
BatchNorm, context cut off at a tile border) moves the output by a sizeable fraction of its
magnitude, far above it.
"""

from __future__ import annotations

import math

import torch

from memnet.model import MemNetConfig

EPS32 = float(torch.finfo(torch.float32).eps)


def depth(config: MemNetConfig) -> int:
    """Convolutions on the longest path: FENet, 2 per recursion + the gate per block, reconstruction."""
    return 1 + config.blocks * (2 * config.recursions + 1) + 1


def widest_sum(config: MemNetConfig) -> int:
    """Terms in the largest single sum: a 3x3 conv over C channels or the last gate's 1x1 conv."""
    return max(9 * config.channels, (config.blocks + config.recursions) * config.channels)


def float32_bound(config: MemNetConfig, magnitude: float = 1.0) -> float:
    """Largest rounding difference expected between two float32 evaluations of a network."""
    return depth(config) * math.sqrt(widest_sum(config)) * EPS32 * max(magnitude, 1.0)
