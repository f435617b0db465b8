"""Where memnet runs: one resolver for device names and one for dtypes, used by every command.

`memnet restore`, `memnet eval`, `memnet compare`, `memnet serve`, `memnet train`, `memnet.load`
and `memnet.Restorer` all turn a user's device name into a `torch.device` here, so `auto` means
the same everywhere: the first CUDA GPU, else Apple MPS, else the CPU (on a machine with
neither GPU kind, `auto` is always the CPU).
"""

from __future__ import annotations

import torch

from memnet.device_names import DEVICE_NAMES, DTYPE_NAMES
from memnet.errors import MemNetError

__all__ = [
    "DTYPES",
    "mps_available",
    "resolve_device",
    "resolve_dtype",
]

DTYPES: dict[str, torch.dtype] = dict(
    zip(DTYPE_NAMES, (torch.float32, torch.float16, torch.bfloat16), strict=True)
)


def mps_available() -> bool:
    """Whether this PyTorch build and machine can run on Apple's MPS backend."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(
    name: str | torch.device = "auto",
    *,
    local_rank: int | None = None,
    allow_mps: bool = True,
) -> torch.device:
    """'auto' → the first CUDA GPU, else MPS, else CPU; other names are checked to exist here.

    With `local_rank` (one process of a multi-process run), `auto` and `cuda` mean that
    process's GPU, cuda:LOCAL_RANK. `allow_mps=False` refuses MPS (for training, which runs on
    cpu or cuda) and makes `auto` skip it.
    """
    text = str(name) if isinstance(name, torch.device) else str(name).strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            text = "cuda"
        elif allow_mps and mps_available():
            text = "mps"
        else:
            text = "cpu"
    if text == "cuda" and local_rank is not None:
        text = f"cuda:{local_rank}"
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise MemNetError(f"unknown device {name!r}; use {DEVICE_NAMES}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise MemNetError(f"device {text!r} requested but CUDA is not available here")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise MemNetError(
                f"device {text!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    elif device.type == "mps":
        if not allow_mps:
            raise MemNetError(f"device {text!r}: Apple MPS is not supported here; use cpu or cuda")
        if not mps_available():
            raise MemNetError(f"device {text!r} requested but Apple MPS is not available here")
    elif device.type != "cpu":
        raise MemNetError(f"unsupported device {name!r}; use {DEVICE_NAMES}")
    return device


def resolve_dtype(name: str | torch.dtype, device: torch.device) -> torch.dtype:
    """fp32, fp16 or bf16; half precision is refused on the CPU, where it is slower, not faster."""
    if isinstance(name, torch.dtype):
        dtype = name
    else:
        try:
            dtype = DTYPES[str(name).lower()]
        except KeyError:
            raise MemNetError(f"unknown dtype {name!r}; use {', '.join(DTYPES)}") from None
    if dtype not in DTYPES.values():
        raise MemNetError(f"unsupported dtype {dtype}; use {', '.join(DTYPES)}")
    if dtype != torch.float32 and device.type == "cpu":
        raise MemNetError(
            "half precision (fp16/bf16) is refused on the CPU: PyTorch's CPU convolutions are "
            "slower in half precision than in fp32 and lose accuracy; use --dtype fp32 "
            "(half precision is for CUDA or MPS devices)"
        )
    return dtype
