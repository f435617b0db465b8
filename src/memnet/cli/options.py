"""The options several commands share, defined once: `add_argument("--dtype", **DTYPE)`.

Each is a keyword set for argparse, so every command keeps its own option order, groups and
metavars while the meaning, default and help text of the option stay one.
"""

from __future__ import annotations

from typing import Any

from memnet.device_names import DEVICE_HELP, DTYPE_NAMES

__all__ = ["DEVICE", "DTYPE", "SELF_ENSEMBLE", "TILE_PAD", "UNSAFE_LOAD"]

DEVICE: dict[str, Any] = {"default": "auto", "help": DEVICE_HELP}
DTYPE: dict[str, Any] = {
    "choices": DTYPE_NAMES,
    "default": "fp32",
    "help": "fp16/bf16 only on GPUs",
}
TILE_PAD: dict[str, Any] = {
    "type": int,
    "default": None,
    "help": "context around each tile in pixels (default: half the receptive field, which "
    "makes tiles identical to whole-image inference)",
}
SELF_ENSEMBLE: dict[str, Any] = {
    "action": "store_true",
    "help": "average the 8 flips/rotations (8x slower, slightly better)",
}
UNSAFE_LOAD: dict[str, Any] = {
    "action": "store_true",
    "help": "allow --weights to be a pickle (.pt/.pth/.ckpt), read with "
    "torch.load(weights_only=True); only for files you trust",
}
