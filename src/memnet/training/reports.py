"""What a run says: its opening lines, its per-interval metrics record and the recipe changes.

The text and the records only; where they go (the terminal, metrics.jsonl, TensorBoard) is
`memnet.training.log`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from memnet.training.environment import Processes
from memnet.training.log import format_duration, plural
from memnet.training.patches import PatchSource
from memnet.training.recipe import Recipe
from memnet.training.validation import Validation

__all__ = ["Window", "data_line", "interval_line", "recipe_changes", "run_line", "train_record"]


@dataclass
class Window:
    """Sums over the steps since the last metrics line."""

    steps: int = 0
    loss: float = 0.0
    grad_norm: float = 0.0
    wait: float = 0.0
    seconds: float = 0.0

    def add(self, loss: float, grad_norm: float, wait: float, seconds: float) -> None:
        """Count one step."""
        self.steps += 1
        self.loss += loss
        self.grad_norm += grad_norm
        self.wait += wait
        self.seconds += seconds


def run_line(
    recipe: Recipe,
    *,
    device: torch.device,
    procs: Processes,
    amp_dtype: torch.dtype | None,
    folder: Path,
) -> str:
    """The first line of a run: task, network, batch, optimiser, where and how it computes."""
    net = recipe.model.network_config()
    synced = ", BatchNorm synced" if recipe.train.sync_batchnorm else ""
    where = f"{device}" + (
        f", {procs.world_size} processes{synced}" if procs.world_size > 1 else ""
    )
    precision = {torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}.get(
        amp_dtype,  # type: ignore[arg-type]
        "fp32",
    )
    levels = recipe.task.levels or list(recipe.task.range or [])
    return (
        f"memnet train {recipe.name}: {recipe.task.kind} {levels}, MemNet "
        f"M{net.blocks}R{net.recursions}C{net.channels}, batch {recipe.train.batch_size} of "
        f"{recipe.data.patch_size}x{recipe.data.patch_size}, {recipe.optim.name} lr "
        f"{recipe.optim.lr:g}, {recipe.train.iterations} iterations on {where} ({precision}, "
        f"{plural(torch.get_num_threads(), 'thread')}) -> {folder}"
    )


def data_line(source: PatchSource, validation: Validation | None, seconds: float) -> str:
    """The line that says the data is ready: training images, validation sets and images."""
    cells = validation.cells if validation is not None else 0
    images = validation.images if validation is not None else 0
    return (
        f"data: {len(source)} training images (degraded copies cached), "
        f"{cells} validation sets with {images} images; ready after {seconds:.1f} s"
    )


def train_record(
    window: Window,
    *,
    iteration: int,
    lr: float,
    batch_ms: float,
    batch_size: int,
    train_seconds: float,
    cpu_seconds: float,
) -> dict[str, Any]:
    """The metrics.jsonl record of the steps of a window (means per step)."""
    steps = window.steps
    return {
        "kind": "train",
        "iteration": iteration,
        "loss": window.loss / steps,
        "lr": lr,
        "grad_norm": window.grad_norm / steps,
        "data_wait_ms": round(1000 * window.wait / steps, 3),
        "batch_ms": round(batch_ms, 3),
        "step_ms": round(1000 * window.seconds / steps, 2),
        "patches_per_s": round(steps * batch_size / window.seconds, 1),
        "threads": torch.get_num_threads(),
        "elapsed_s": round(train_seconds, 1),
        "cpu_s": round(cpu_seconds, 1),
    }


def interval_line(record: dict[str, Any], window: Window, total: int) -> str:
    """The status line of a train record, with the time the remaining iterations will take."""
    steps, iteration = window.steps, record["iteration"]
    left = (total - iteration) * window.seconds / steps
    return (
        f"iter {iteration}/{total}  loss {record['loss']:.4g}  lr {record['lr']:.3g}  "
        f"{steps / window.seconds:.2f} it/s  {record['patches_per_s']:.0f} patches/s  "
        f"data-wait {record['data_wait_ms']:.2f} ms  eta {format_duration(left)}"
    )


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): data}


def recipe_changes(before: dict[str, Any], recipe: Recipe) -> list[str]:
    """The dotted keys whose values differ between a resumed state's recipe and `recipe`."""
    old = _flatten(before)
    new = _flatten(recipe.model_dump(mode="json"))
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
