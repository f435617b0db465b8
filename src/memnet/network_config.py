"""The shape of a MemNet and the named presets: plain data, no PyTorch.

The command line offers the presets without importing PyTorch; memnet.model builds the network
from a config and re-exports every name here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

__all__ = [
    "BRANCH_WEIGHT_INITS",
    "PRESETS",
    "BranchWeightInit",
    "MemNetConfig",
    "branch_weight_start",
]


@dataclass(frozen=True)
class MemNetConfig:
    """Shape of a MemNet: M memory blocks of R recursions with C feature channels."""

    blocks: int = 6
    recursions: int = 6
    channels: int = 64
    in_channels: int = 1

    def __post_init__(self) -> None:
        for field in ("blocks", "recursions", "channels", "in_channels"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"MemNet {field} must be a positive integer, got {value!r}")

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> MemNetConfig:
        """Build a config from a mapping (e.g. safetensors metadata), rejecting unknown keys."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown MemNet config keys {unknown}; expected a subset of {sorted(known)}"
            )
        parsed: dict[str, int] = {}
        for key, value in values.items():
            try:
                parsed[key] = int(str(value))
            except ValueError:
                raise ValueError(f"MemNet config {key} must be an integer, got {value!r}") from None
        return cls(**parsed)


# Paper presets: "80C64" is M6R6 (the default), "212C64" is M10R10. The small presets keep the
# architecture intact and only shrink M, R or C, so that a 2-core CPU can train them in hours.
PRESETS: dict[str, MemNetConfig] = {
    "m6r6": MemNetConfig(blocks=6, recursions=6, channels=64),
    "m10r10": MemNetConfig(blocks=10, recursions=10, channels=64),
    "m4r4c32": MemNetConfig(blocks=4, recursions=4, channels=32),
    "m4r4c48": MemNetConfig(blocks=4, recursions=4, channels=48),
    "m6r6c32": MemNetConfig(blocks=6, recursions=6, channels=32),
    "tiny": MemNetConfig(blocks=2, recursions=2, channels=8),
}


#: How the branch weights w_m start: "caffe" sets every w_m to 1 as the released Caffe model does
#: (the output starts near M·x); "mean" sets them to 1/M (an average of the branches).
BranchWeightInit = Literal["mean", "caffe"]
BRANCH_WEIGHT_INITS: tuple[BranchWeightInit, ...] = ("mean", "caffe")


def branch_weight_start(blocks: int, init: BranchWeightInit) -> float:
    """The value every w_m starts at: 1/M ("mean") or 1 ("caffe", the released model)."""
    if init == "mean":
        return 1.0 / blocks
    if init == "caffe":
        return 1.0
    raise ValueError(
        f"branch_weight_init must be one of {', '.join(BRANCH_WEIGHT_INITS)}, got {init!r}"
    )
