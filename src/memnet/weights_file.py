"""MemNet weight files: safetensors with the model config (and provenance) in the metadata.

A file holds the full state dict (weights and BatchNorm statistics) and string metadata:
`memnet.config` (JSON of `MemNetConfig`) plus free-form provenance such as the task, the recipe
and the iteration. No pickle is involved, so loading a file cannot run code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from memnet.errors import MemNetError
from memnet.fsutil import atomic_path
from memnet.model import MemNet, MemNetConfig

__all__ = ["CONFIG_KEY", "load_weights", "read_metadata", "save_weights"]

CONFIG_KEY = "memnet.config"


def save_weights(
    model: MemNet, path: str | os.PathLike[str], metadata: dict[str, str] | None = None
) -> None:
    """Write the model's state dict and config to a safetensors file, atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta[CONFIG_KEY] = json.dumps(model.config.to_dict(), sort_keys=True)
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=meta)


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The string metadata of a safetensors file (clear error if it is not one)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise MemNetError(f"{path}: weights file not found")
    try:
        with safe_open(str(path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError) as error:
        raise MemNetError(f"{path}: not a readable safetensors file ({error})") from None


def load_weights(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[MemNet, dict[str, str]]:
    """Build the network described by a weights file and load its state; returns (model, metadata)."""
    path = Path(path)
    metadata = read_metadata(path)
    if CONFIG_KEY not in metadata:
        raise MemNetError(
            f"{path}: safetensors file has no '{CONFIG_KEY}' metadata; not a memnet weights file"
        )
    try:
        config = MemNetConfig.from_dict(json.loads(metadata[CONFIG_KEY]))
    except (ValueError, TypeError, json.JSONDecodeError) as error:
        raise MemNetError(f"{path}: invalid model config in metadata ({error})") from None
    model = MemNet.from_config(config)
    try:
        state = load_file(str(path), device=str(map_location))
        model.load_state_dict(state, strict=True)
    except (SafetensorError, RuntimeError, OSError) as error:
        first_line = (
            str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        )
        raise MemNetError(
            f"{path}: weights do not fit the model in its metadata ({first_line})"
        ) from None
    model.eval()
    return model, metadata
