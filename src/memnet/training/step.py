"""One optimiser step: the multi-supervision loss, the paper's adjustable clipping, AMP, DDP.

A step runs the network with its M branch outputs, takes the multi-supervision loss, clips the
global gradient norm (the paper's adjustable clipping bounds it by value / current lr) and steps
the optimiser at the learning rate the schedule gives for that iteration. A loss or gradient
that is not finite is not applied; under DDP all processes agree on that, and on a stop.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from memnet.errors import MemNetError
from memnet.model import MemNetOutput
from memnet.training.losses import multi_supervision_loss
from memnet.training.optimizer import lr_factor
from memnet.training.recipe import Recipe

__all__ = ["DivergenceError", "StepResult", "TrainingStep"]


class DivergenceError(MemNetError):
    """The loss or the gradient became NaN/inf; the weights were not updated with it."""


@dataclass(frozen=True)
class StepResult:
    """What one step measured, and what all processes agreed on."""

    loss: float
    grad_norm: float  # before clipping
    lr: float
    diverged: bool  # the loss or gradient was not finite: the optimiser was not stepped
    stop: bool  # some process was asked to stop after this step


class TrainingStep:
    """The optimiser step of a run: `step(inputs, targets, iteration=i)` makes iteration i + 1."""

    def __init__(
        self,
        network: nn.Module,
        optimizer: torch.optim.Optimizer,
        base_lrs: list[float],
        scaler: Any,
        *,
        recipe: Recipe,
        device: torch.device,
        amp_dtype: torch.dtype | None,
        memory_format: torch.memory_format,
        world_size: int,
    ) -> None:
        self.network = network
        self.optimizer = optimizer
        self.base_lrs = base_lrs
        self.scaler = scaler
        self.recipe = recipe
        self.device = device
        self.amp_dtype = amp_dtype
        self.memory_format = memory_format
        self.world_size = world_size
        self.params = [p for p in network.parameters() if p.requires_grad]

    def __call__(
        self, inputs: torch.Tensor, targets: torch.Tensor, *, iteration: int, stop: bool = False
    ) -> StepResult:
        """One step at the learning rate of `iteration`; `stop`: this process asks to stop."""
        spec = self.recipe.train
        factor = lr_factor(self.recipe.schedule, iteration, spec.iterations)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor
        lr = self.base_lrs[0] * factor
        inputs = inputs.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        autocast = (
            torch.autocast("cuda", dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else contextlib.nullcontext()
        )
        with autocast:
            output = self.network(
                inputs.contiguous(memory_format=self.memory_format), branches=True
            )
        assert isinstance(output, MemNetOutput)
        loss = multi_supervision_loss(
            output.restored.float(), [b.float() for b in output.branches], targets, spec.loss
        )
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        clip = spec.clip
        max_norm = {"none": math.inf, "norm": clip.value, "adjustable": clip.value / lr}[clip.mode]
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm, foreach=True)
        loss_value, norm_value = torch.stack([loss.detach(), grad_norm.detach()]).tolist()
        # fp16 overflows are normal (the scaler skips those steps); anything else is divergence
        bad = not math.isfinite(loss_value) or (
            self.scaler is None and not math.isfinite(norm_value)
        )
        if self.world_size > 1:
            flags = torch.tensor([float(bad), float(stop)], device=self.device)
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
            bad, stop = (bool(flag) for flag in flags.tolist())  # one device sync, not two
        if not bad:
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
        return StepResult(loss_value, norm_value, lr, diverged=bad, stop=stop)
