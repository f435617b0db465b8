"""The paper's optimiser set-up: two parameter groups, the learning-rate schedule, loss scaling."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from memnet.training.recipe import OptimSpec, ScheduleSpec

__all__ = ["apply_hyperparameters", "build_optimizer", "grad_scaler", "lr_factor"]


def lr_factor(schedule: ScheduleSpec, iteration: int, total: int) -> float:
    """Learning-rate multiplier for the step that makes iteration `iteration` (0-based)."""
    warm = min(1.0, (iteration + 1) / schedule.warmup) if schedule.warmup else 1.0
    if schedule.kind == "constant":
        decay = 1.0
    elif schedule.kind == "step":
        assert schedule.step_size is not None
        decay = schedule.gamma ** (iteration // schedule.step_size)
    else:
        span = max(1, total - schedule.warmup)
        progress = min(1.0, max(0.0, (iteration - schedule.warmup) / span))
        final = schedule.final_lr_factor
        decay = final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return warm * decay


def _conv_biases(model: nn.Module) -> set[int]:
    return {id(m.bias) for m in model.modules() if isinstance(m, nn.Conv2d) and m.bias is not None}


def build_optimizer(model: nn.Module, spec: OptimSpec) -> tuple[torch.optim.Optimizer, list[float]]:
    """The optimiser with two groups (conv biases at lr × bias_lr_factor) and their base lrs."""
    biases = _conv_biases(model)
    weights = [p for p in model.parameters() if id(p) not in biases]
    bias_params = [p for p in model.parameters() if id(p) in biases]
    groups: list[dict[str, Any]] = [{"params": weights}, {"params": bias_params}]
    base_lrs = [spec.lr, spec.lr * spec.bias_lr_factor]
    optimizer: torch.optim.Optimizer
    if spec.name == "sgd":
        optimizer = torch.optim.SGD(
            groups, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay, foreach=True
        )
    elif spec.name == "adam":
        optimizer = torch.optim.Adam(
            groups, lr=spec.lr, betas=spec.betas, eps=spec.eps, weight_decay=spec.weight_decay,
            foreach=True,
        )  # fmt: skip
    else:
        optimizer = torch.optim.AdamW(
            groups, lr=spec.lr, betas=spec.betas, eps=spec.eps, weight_decay=spec.weight_decay,
            foreach=True,
        )  # fmt: skip
    return optimizer, base_lrs


def apply_hyperparameters(optimizer: torch.optim.Optimizer, spec: OptimSpec) -> None:
    """Set the recipe's values in the optimiser: they win over those of a resumed state."""
    for group in optimizer.param_groups:
        group["weight_decay"] = spec.weight_decay
        if "momentum" in group:
            group["momentum"] = spec.momentum
        if "betas" in group:
            group["betas"] = spec.betas
            group["eps"] = spec.eps


def grad_scaler() -> Any:
    """fp16 loss scaling (torch.amp.GradScaler from torch 2.3, torch.cuda.amp before)."""
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda")
    return torch.cuda.amp.GradScaler()
