"""MemNet weight files: safetensors with the model config (and provenance) in the metadata.

A file holds the full state dict (weights and BatchNorm statistics) and string metadata:
`memnet.config` (JSON of `MemNetConfig`) plus provenance such as the task, the trained levels or
range, the recipe and the iteration (the META_* keys below; `trained_for` reads them). No
pickle is involved, so loading a file cannot run code.

Legacy PyTorch pickles (.pt/.pth/.ckpt) are refused unless the caller opts in with
`unsafe_load=True`, and even then they are read with `torch.load(weights_only=True)`, which
only rebuilds tensors and plain containers; their network shape is read off the tensor names
and shapes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from memnet.errors import MemNetError
from memnet.fsutil import atomic_write_bytes
from memnet.model import MemNet, MemNetConfig

__all__ = [
    "CONFIG_KEY",
    "META_CHECKPOINT",
    "META_ITERATION",
    "META_LEVELS",
    "META_RANGE",
    "META_RECIPE",
    "META_RECIPE_YAML",
    "META_SECONDS",
    "META_TASK",
    "META_VALIDATION",
    "META_VERSION",
    "PICKLE_SUFFIXES",
    "TrainedFor",
    "config_from_state_dict",
    "load_any_weights",
    "load_weights",
    "read_metadata",
    "save_weights",
    "trained_for",
]

# The metadata keys of a weights file. Only the config is needed to build the network; the
# others are provenance written by `memnet train` (and `memnet convert`).
CONFIG_KEY = "memnet.config"  # JSON of MemNetConfig
META_TASK = "memnet.task"  # "sr" | "denoise" | "jpeg"
META_LEVELS = "memnet.levels"  # JSON list of scales / sigmas / qualities (empty for a blind range)
META_RANGE = "memnet.range"  # JSON [low, high] for a blind model, else "null"
META_RECIPE = "memnet.recipe"  # recipe name
META_RECIPE_YAML = "memnet.recipe_yaml"  # the full resolved recipe
META_ITERATION = "memnet.iteration"
META_CHECKPOINT = "memnet.checkpoint"  # "last" | "best" | "snapshot"
META_VALIDATION = "memnet.validation"  # JSON {"Set5/x2": psnr, ...} of the latest validation
META_SECONDS = "memnet.training_seconds"
META_VERSION = "memnet.version"
# Files written before the keys had the "memnet." prefix name their task "task".
LEGACY_META_TASK = "task"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle", ".tar")


def save_weights(
    model: MemNet, path: str | os.PathLike[str], metadata: dict[str, str] | None = None
) -> None:
    """Write the model's state dict and config to a safetensors file, atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta[CONFIG_KEY] = json.dumps(model.config.to_dict(), sort_keys=True)
    # in memory first, like the training state: a failed write is an OSError that says why
    atomic_write_bytes(path, save(state, metadata=meta))


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


@dataclass(frozen=True)
class TrainedFor:
    """What a weights file says it was trained on; empty where the file does not say."""

    task: str | None = None
    levels: tuple[float, ...] = ()  # the fixed scales / sigmas / qualities
    level_range: tuple[float, float] | None = None  # [low, high] of a blind model


def trained_for(metadata: Mapping[str, str]) -> TrainedFor:
    """The task, trained levels and trained range recorded in a file's metadata."""
    task = metadata.get(META_TASK, metadata.get(LEGACY_META_TASK))
    numbers = _json_numbers(metadata.get(META_RANGE))
    level_range = (min(numbers), max(numbers)) if len(numbers) == 2 else None
    return TrainedFor(task or None, _json_numbers(metadata.get(META_LEVELS)), level_range)


def _json_numbers(text: str | None) -> tuple[float, ...]:
    """The numbers of a JSON list; () for a missing, null or malformed value."""
    try:
        values = json.loads(text) if text else None
    except json.JSONDecodeError:
        return ()
    if not isinstance(values, list):
        return ()
    return tuple(
        float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)
    )


def _looks_like_pickle(path: Path) -> bool:
    if path.suffix.lower() in PICKLE_SUFFIXES:
        return True
    with open(path, "rb") as handle:
        head = handle.read(9)
    if head[8:9] == b"{":
        # safetensors: an 8-byte header length, then the JSON header (its length may well
        # start with the byte 0x80, so this is checked first)
        return False
    # torch.save writes a zip archive ("PK"); older pickles start with the PROTO opcode 0x80.
    return head[:2] == b"PK" or head[:1] == b"\x80"


def config_from_state_dict(state: dict[str, torch.Tensor]) -> MemNetConfig:
    """Read M, R, C and the input channels off a MemNet state dict's names and shapes."""
    try:
        fenet = state["fenet.weight"]
        blocks = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
        recursions = 1 + max(
            int(k.split(".")[3]) for k in state if k.startswith("blocks.0.recursions.")
        )
        return MemNetConfig(blocks, recursions, int(fenet.shape[0]), int(fenet.shape[1]))
    except (KeyError, ValueError, IndexError, AttributeError):
        raise MemNetError(
            "the file does not hold a memnet MemNet state dict (no fenet/blocks tensors)"
        ) from None


def _unwrap_state_dict(loaded: object) -> dict[str, torch.Tensor]:
    # Training checkpoints often nest the weights; accept the common containers.
    if isinstance(loaded, dict):
        for key in ("state_dict", "model", "weights", "params"):
            inner = loaded.get(key)
            if isinstance(inner, dict) and any(isinstance(v, torch.Tensor) for v in inner.values()):
                loaded = inner
                break
        tensors = {str(k).removeprefix("module."): v for k, v in loaded.items()}
        if tensors and all(isinstance(v, torch.Tensor) for v in tensors.values()):
            return tensors
    raise MemNetError("the file does not hold a state dict of tensors")


def _load_pickle(path: Path, map_location: str | torch.device) -> tuple[MemNet, dict[str, str]]:
    try:
        loaded = torch.load(str(path), map_location=map_location, weights_only=True)
    except Exception as error:  # the unpickler raises many kinds for hostile or damaged files
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise MemNetError(
            f"{path}: cannot load as a weights-only PyTorch file ({type(error).__name__}: {first_line})"
        ) from None
    try:
        state = _unwrap_state_dict(loaded)
        model = MemNet.from_config(config_from_state_dict(state))
        model.load_state_dict(state, strict=True)
    except MemNetError as error:
        raise MemNetError(f"{path}: {error}") from None
    except RuntimeError as error:
        first_line = str(error).strip().splitlines()[0]
        raise MemNetError(f"{path}: weights do not fit a MemNet ({first_line})") from None
    model.eval()
    return model, {"source": "pickle"}


def load_any_weights(
    path: str | os.PathLike[str],
    *,
    unsafe_load: bool = False,
    map_location: str | torch.device = "cpu",
) -> tuple[MemNet, dict[str, str]]:
    """Load a safetensors weights file, or a legacy pickle when `unsafe_load` allows it."""
    path = Path(path)
    if not path.is_file():
        raise MemNetError(f"{path}: weights file not found")
    if _looks_like_pickle(path):
        if not unsafe_load:
            raise MemNetError(
                f"{path}: refusing to load a pickle file (it can run code when loaded); convert "
                "it to .safetensors, or pass --unsafe-load to read it with "
                "torch.load(weights_only=True) if you trust where it came from"
            )
        return _load_pickle(path, map_location)
    return load_weights(path, map_location=map_location)
