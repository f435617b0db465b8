"""Multi-supervision loss: every branch prediction y_m and the weighted output y are supervised.

Two scalings:
- "caffe": the released solver — M+1 Euclidean losses, each Σ(pred − target)² / (2·batch), all
  with weight 1. Its gradients are what the paper's learning rate 0.1 and clipping 0.01/lr assume.
- "mean": the paper's α-weighting with pixel means — α·MSE(y) + (1−α)/M · Σ MSE(y_m),
  α = 1/(M+1); scale-free, suited to Adam.
- "l1": the same α-weighting of mean absolute errors — not the paper's (it trains L2), an
  option because L1 often trains restoration networks to a higher PSNR at a given budget.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = ["LossScaling", "multi_supervision_loss"]

LossScaling = Literal["caffe", "mean", "l1"]


def multi_supervision_loss(
    restored: Tensor, branches: list[Tensor], target: Tensor, scaling: LossScaling = "caffe"
) -> Tensor:
    """Loss of the weighted output and all M branch outputs against `target`."""
    if scaling == "caffe":
        batch = target.shape[0]
        total = torch.sum((restored - target) ** 2)
        for branch in branches:
            total = total + torch.sum((branch - target) ** 2)
        return total / (2 * batch)
    if scaling in ("mean", "l1"):

        def error(prediction: Tensor) -> Tensor:
            difference = prediction - target
            return torch.mean(difference**2 if scaling == "mean" else difference.abs())

        alpha = 1.0 / (len(branches) + 1)
        branch_term = torch.stack([error(b) for b in branches]).sum()
        return alpha * error(restored) + (1 - alpha) / len(branches) * branch_term
    raise ValueError(f"unknown loss scaling {scaling!r}; choose 'caffe', 'mean' or 'l1'")
