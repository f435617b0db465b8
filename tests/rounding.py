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


def winograd_growth() -> float:
    """How much larger one conv's rounding error is through Winograd F(4×4, 3×3) than direct.

    The kernel rounds the transformed products M_ξ (the sums over channels, where most of its
    roundings are) and then combines them with output coefficients Aᵀ_iξ₁·Aᵀ_jξ₂ up to 64. For
    independent data and weights of one scale, M_ξ's size is ‖Bᵀ_ξ₁‖‖Bᵀ_ξ₂‖ (input transform)
    times ‖G_ξ₁‖‖G_ξ₂‖ (weight transform); the random-walk sum of their rounding errors at output
    (i, j) is then √Σ_ξ (Aᵀ_iξ₁ Aᵀ_jξ₂ ‖Bᵀ_ξ₁‖‖Bᵀ_ξ₂‖‖G_ξ₁‖‖G_ξ₂‖)² against the direct conv's
    √9 taps. The largest over the tile's 16 outputs (the corner, 31.4) is the growth.
    """
    from memnet.inference.winograd import AT, BT, G

    a, b, g = (torch.tensor(m, dtype=torch.float64) for m in (AT, BT, G))
    scale = torch.linalg.norm(b, dim=1) * torch.linalg.norm(g, dim=1)  # per ξ of one side
    per_side = a * scale  # [4, 6]: Aᵀ_iξ · ‖Bᵀ_ξ‖‖G_ξ‖
    return float(torch.sqrt(torch.einsum("ik,jl->ij", per_side**2, per_side**2)).max() / 3)


def inference_bound(config: MemNetConfig, magnitude: float = 1.0) -> float:
    """`float32_bound` for memnet's fast inference network against the plain model: each 3×3
    conv between memories may run as Winograd (memnet.inference.winograd) where this machine
    has the kernel and the conv's channels suit it, and then rounds `winograd_growth` times more."""
    from memnet.inference import winograd

    fast = winograd.kernel() is not None and config.channels % 16 == 0
    return float32_bound(config, magnitude) * (winograd_growth() if fast else 1.0)
