"""Multi-supervision loss: every branch prediction y_m and the weighted output y are supervised.

Two scalings:
- "caffe": the released solver — M+1 Euclidean losses, each Σ(pred − target)² / (2·batch), all
  with weight 1. Its gradients are what the paper's learning rate 0.1 and clipping 0.01/lr assume.
- "mean": the paper's α-weighting with pixel means — α·MSE(y) + (1−α)/M · Σ MSE(y_m),
  α = 1/(M+1); scale-free, suited to Adam.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

__all__ = ["LossScaling", "multi_supervision_loss"]

LossScaling = Literal["caffe", "mean"]


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
    if scaling == "mean":
        alpha = 1.0 / (len(branches) + 1)
        branch_term = torch.stack([torch.mean((b - target) ** 2) for b in branches]).sum()
        return (
            alpha * torch.mean((restored - target) ** 2) + (1 - alpha) / len(branches) * branch_term
        )
    raise ValueError(f"unknown loss scaling {scaling!r}; choose 'caffe' or 'mean'")
