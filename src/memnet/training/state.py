"""The training state: what `checkpoints/*.state.pt` holds, and how a run resumes from it.

The keys (format 1) are

    format, iteration, network (MemNetConfig as a dict), model (CPU tensors), optimizer,
    scaler ({} without fp16), rng (`capture_rng_state`), data {seed, next_batch, world_size},
    best_psnr, best_iteration, train_seconds, cpu_seconds, recipe (as JSON values),
    memnet_version

Everything that decides the next step is in it — weights, optimiser, iteration, RNG states, data
position — so a resumed run continues exactly where the state was written. States written
before CPU time was counted have no `cpu_seconds`; they still resume.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from memnet import __version__
from memnet.errors import MemNetError
from memnet.model import MemNet
from memnet.training.checkpoint import (
    STATE_FORMAT,
    capture_rng_state,
    load_training_state,
    restore_rng_state,
)
from memnet.training.optimizer import apply_hyperparameters
from memnet.training.recipe import Recipe

__all__ = ["Counters", "Resumed", "resume_state", "training_state"]


@dataclass
class Counters:
    """The counters of a run that a state carries besides weights, optimiser and RNGs."""

    iteration: int = 0
    best_psnr: float | None = None
    best_iteration: int | None = None
    train_seconds: float = 0.0
    # CPU time of this process in training steps (all its threads, data threads included):
    # what a run costs on a shared machine, where wall time says little.
    cpu_seconds: float = 0.0


def training_state(
    counters: Counters,
    *,
    model: MemNet,
    optimizer: torch.optim.Optimizer,
    scaler: Any,
    recipe: Recipe,
    world_size: int,
) -> dict[str, Any]:
    """Everything a resume needs, as weights_only-loadable values."""
    return {
        "format": STATE_FORMAT,
        "iteration": counters.iteration,
        "network": model.config.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else {},
        "rng": capture_rng_state(),
        "data": {
            "seed": recipe.train.seed,
            "next_batch": counters.iteration,  # batch i feeds iteration i on every process
            "world_size": world_size,
        },
        "best_psnr": counters.best_psnr,
        "best_iteration": counters.best_iteration,
        "train_seconds": counters.train_seconds,
        "cpu_seconds": counters.cpu_seconds,
        "recipe": recipe.model_dump(mode="json"),
        "memnet_version": __version__,
    }


@dataclass(frozen=True)
class Resumed:
    """What a state restored besides the tensors: the counters and the recipe it was made with."""

    counters: Counters
    recipe: dict[str, Any]


def resume_state(
    path: Path,
    *,
    model: MemNet,
    optimizer: torch.optim.Optimizer,
    scaler: Any,
    recipe: Recipe,
) -> Resumed:
    """Load a state into the model, optimiser, scaler and global RNGs; a misfit is one line."""
    state = load_training_state(path)
    network = model.config.to_dict()
    if state.get("network") != network:
        raise MemNetError(
            f"{path}: checkpoint holds a network {state.get('network')}, the recipe asks "
            f"for {network}"
        )
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and state["scaler"]:
            scaler.load_state_dict(state["scaler"])
    except (RuntimeError, ValueError, KeyError) as error:
        first = str(error).strip().splitlines()[0]
        raise MemNetError(
            f"{path}: checkpoint does not fit this recipe ({first}); was optim.name changed?"
        ) from None
    apply_hyperparameters(optimizer, recipe.optim)
    restore_rng_state(state["rng"])
    train_seconds = float(state["train_seconds"])
    counters = Counters(
        iteration=int(state["iteration"]),
        best_psnr=state["best_psnr"],
        best_iteration=state["best_iteration"],
        train_seconds=train_seconds,
        # States written before CPU time was counted: their runs used one thread, so the CPU
        # time of their steps was about their wall time.
        cpu_seconds=float(state.get("cpu_seconds", train_seconds)),
    )
    if int(state["data"]["next_batch"]) != counters.iteration:
        raise MemNetError(f"{path}: inconsistent data position in the training state")
    return Resumed(counters, state.get("recipe", {}))
