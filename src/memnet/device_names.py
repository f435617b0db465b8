"""How devices and dtypes are named to users: plain text, so every command's --device and --dtype
help is built without importing PyTorch (memnet.devices resolves the names)."""

from __future__ import annotations

__all__ = ["DEVICE_HELP", "DEVICE_NAMES", "DTYPE_NAMES"]

# How device names are spelled in error messages and in every command's --device help.
DEVICE_NAMES = "auto, cpu, cuda, cuda:N or mps"
DEVICE_HELP = f"{DEVICE_NAMES}; auto: a CUDA GPU, else Apple MPS, else the CPU (default auto)"
# The --dtype choices, in the order memnet.devices.DTYPES maps them to torch dtypes.
DTYPE_NAMES = ("fp32", "fp16", "bf16")
