"""Checkpoints of a training run: safetensors weights plus a resumable training state.

A run folder holds

    recipe.yaml                 the resolved recipe of the run
    metrics.jsonl               one JSON object per log line, validation and event
    checkpoints/last.safetensors, last.state.pt          every K iterations and at exit
    checkpoints/best.safetensors                         best mean validation PSNR so far
    checkpoints/snapshots/iter_NNNNNNNN.{safetensors,state.pt}   periodic, kept

Weights are safetensors with the model config and provenance in the metadata (loadable by
`memnet.weights.files.load_weights`). The state file (`torch.save`, read back with
`weights_only=True`, so it holds only tensors, numbers, strings, lists and dicts) carries the
model tensors too, the optimiser, the iteration, every RNG state and the data position: it is
the single file a resume reads, so one atomic rename makes a resume point complete. Every file
is written to a temporary name and renamed over the old one, so a run killed at any moment
leaves the previous complete checkpoint in place.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from memnet import __version__
from memnet.errors import MemNetError
from memnet.fsutil import atomic_write_bytes
from memnet.model import MemNet
from memnet.weights.files import (
    META_CHECKPOINT,
    META_ITERATION,
    META_LEVELS,
    META_RANGE,
    META_RECIPE,
    META_RECIPE_YAML,
    META_SECONDS,
    META_TASK,
    META_VALIDATION,
    META_VERSION,
    save_weights,
)

__all__ = [
    "STATE_FORMAT",
    "RunFolder",
    "capture_rng_state",
    "load_training_state",
    "restore_rng_state",
    "save_training_state",
]

STATE_FORMAT = 1
WEIGHTS_SUFFIX = ".safetensors"
STATE_SUFFIX = ".state.pt"


def capture_rng_state() -> dict[str, Any]:
    """Every global RNG state (torch CPU and CUDA, numpy, Python) as weights_only-safe values."""
    # the legacy global generator is what third-party code may draw from: keep it too
    np_state = np.random.get_state(legacy=False)  # noqa: NPY002
    py_version, py_internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "bit_generator": str(np_state["bit_generator"]),
            "key": [int(v) for v in np_state["state"]["key"]],
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "python": [py_version, list(py_internal), py_gauss],
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of `capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])
    numpy_state = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        {
            "bit_generator": numpy_state["bit_generator"],
            "state": {
                "key": np.asarray(numpy_state["key"], dtype=np.uint32),
                "pos": numpy_state["pos"],
            },
            "has_gauss": numpy_state["has_gauss"],
            "gauss": numpy_state["gauss"],
        }
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save_training_state(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """torch.save the state atomically."""
    # Serialised in memory first: a failed write (a full disk) is then an OSError that says
    # why, not torch's "unexpected pos" from inside its zip writer.
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


@contextlib.contextmanager
def _checkpoint_write(folder: Path) -> Iterator[None]:
    """A failed checkpoint write as one line; the previous complete checkpoint is still there."""
    try:
        yield
    except OSError as error:
        raise MemNetError(
            f"{folder}: cannot write the checkpoint ({error.strerror or error}); the last "
            "complete checkpoint is kept, resume from it with --resume auto once there is room"
        ) from None


def load_training_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a state file with `weights_only=True` (no code runs); one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise MemNetError(f"{path}: training state not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated, foreign or malicious files all end here
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise MemNetError(f"{path}: not a readable memnet training state ({first})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise MemNetError(f"{path}: not a memnet training state (format {STATE_FORMAT})")
    return state


def weights_provenance(
    recipe_name: str,
    recipe_yaml: str,
    task: str,
    levels: list[float],
    level_range: list[float] | None,
    *,
    iteration: int,
    checkpoint: str,
    seconds: float,
    validation: dict[str, float] | None = None,
) -> dict[str, str]:
    """The metadata written into a run's weights files (besides the model config)."""
    return {
        META_TASK: task,
        META_LEVELS: json.dumps(levels),
        META_RANGE: json.dumps(level_range),
        META_RECIPE: recipe_name,
        META_RECIPE_YAML: recipe_yaml,
        META_ITERATION: str(iteration),
        META_CHECKPOINT: checkpoint,
        META_VALIDATION: json.dumps(validation or {}),
        META_SECONDS: f"{seconds:.1f}",
        META_VERSION: __version__,
    }


class RunFolder:
    """Paths of a run folder and the atomic writes into it."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.checkpoints = self.root / "checkpoints"
        self.snapshots = self.checkpoints / "snapshots"
        self.recipe = self.root / "recipe.yaml"
        self.metrics = self.root / "metrics.jsonl"
        self.tensorboard = self.root / "tensorboard"
        self.last_weights = self.checkpoints / f"last{WEIGHTS_SUFFIX}"
        self.last_state = self.checkpoints / f"last{STATE_SUFFIX}"
        self.best_weights = self.checkpoints / f"best{WEIGHTS_SUFFIX}"

    def prepare(self) -> None:
        """Create the folders and remove temporary files a killed run may have left."""
        try:
            self.snapshots.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise MemNetError(f"{self.root}: cannot create run folder ({error})") from None
        for folder in (self.root, self.checkpoints, self.snapshots):
            for stale in folder.glob(".*.tmp"):
                stale.unlink(missing_ok=True)

    def snapshot_paths(self, iteration: int) -> tuple[Path, Path]:
        stem = self.snapshots / f"iter_{iteration:08d}"
        return stem.with_suffix(WEIGHTS_SUFFIX), Path(f"{stem}{STATE_SUFFIX}")

    def save_last(self, model: MemNet, state: dict[str, Any], metadata: dict[str, str]) -> None:
        with _checkpoint_write(self.checkpoints):
            # The state (what a resume reads) goes first; the weights follow for users.
            save_training_state(self.last_state, state)
            save_weights(model, self.last_weights, metadata)

    def save_best(self, model: MemNet, metadata: dict[str, str]) -> None:
        with _checkpoint_write(self.checkpoints):
            save_weights(model, self.best_weights, metadata)

    def save_snapshot(
        self, model: MemNet, state: dict[str, Any], metadata: dict[str, str], iteration: int
    ) -> None:
        weights, state_path = self.snapshot_paths(iteration)
        with _checkpoint_write(self.checkpoints):
            save_training_state(state_path, state)
            save_weights(model, weights, metadata)

    def resume_point(self, resume: str | None) -> Path | None:
        """The state file to resume from: None (fresh run), 'auto' or an explicit path."""
        if resume is None:
            if self.last_state.exists():
                raise MemNetError(
                    f"{self.root} already holds a checkpoint ({self.last_state.name}); "
                    "pass --resume auto to continue that run, or --out DIR to start a new one"
                )
            return None
        if resume == "auto":
            return self.last_state if self.last_state.exists() else None
        path = Path(resume)
        if path.is_dir():
            for candidate in (
                path / "checkpoints" / f"last{STATE_SUFFIX}",
                path / f"last{STATE_SUFFIX}",
            ):
                if candidate.is_file():
                    return candidate
            raise MemNetError(f"{path}: no last{STATE_SUFFIX} in this folder to resume from")
        if path.name.endswith(WEIGHTS_SUFFIX):
            sibling = Path(str(path)[: -len(WEIGHTS_SUFFIX)] + STATE_SUFFIX)
            if sibling.is_file():
                return sibling
            raise MemNetError(
                f"{path}: weights alone cannot resume a run (no {sibling.name} beside it)"
            )
        if not path.is_file():
            raise MemNetError(f"{path}: no such checkpoint to resume from")
        return path
