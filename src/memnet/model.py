"""MemNet: a persistent memory network for image restoration (Tai et al., ICCV 2017).

The network exactly as the authors' released Caffe models build it:

    x ──τ─conv──▶ B0                                      feature extraction (FENet)
    B_{m-1} ──▶ memory block m ──▶ B_m,  m = 1..M         recursive units + gate unit
    y_m = x + rec(τ_m(B_m))                               one reconstruction conv for all m
    y   = Σ_m w_m · y_m                                   learnable per-branch weights

τ is pre-activation: BatchNorm (with its learnable affine) then ReLU, always *before* a conv.
Inside memory block m one pair of 3×3 convs is shared by all R recursions, but every recursion
has BatchNorm layers of its own. The gate unit is a 1×1 conv over the long-term memories
[B0 .. B_{m-1}] followed by the short-term ones [H_1 .. H_R].

This module holds only the network; it has no I/O and no training logic.

Why one module: the network should read like the paper, top to bottom in one file (its
configuration, the blocks bottom-up, then the whole net); splitting it would make a reader
jump between files to follow one figure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, cast, overload

import torch
from torch import Tensor, nn

from memnet.network_config import (
    BRANCH_WEIGHT_INITS,
    PRESETS,
    BranchWeightInit,
    MemNetConfig,
    branch_weight_start,
)

__all__ = [
    "BRANCH_WEIGHT_INITS",
    "PRESETS",
    "BranchWeightInit",
    "MemNet",
    "MemNetConfig",
    "MemNetOutput",
    "ModelSummary",
    "branch_weight_start",
    "create_model",
    "summarize",
]


# --------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=True)


def conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=True)


class PreActivation(nn.Sequential):
    """τ = BatchNorm → learnable per-channel affine → ReLU (BatchNorm2d's affine is the scale)."""

    def __init__(self, channels: int) -> None:
        # In-place ReLU is safe: BatchNorm's backward needs its input, not its output.
        super().__init__(nn.BatchNorm2d(channels), nn.ReLU(inplace=True))

    @property
    def norm(self) -> nn.BatchNorm2d:
        """The BatchNorm (state_dict key `.0`)."""
        return cast(nn.BatchNorm2d, self[0])

    def scale_shift(self) -> tuple[Tensor, Tensor]:
        """The eval-mode BatchNorm as x·scale + shift per channel (what inference folds)."""
        bn = self.norm
        assert bn.running_mean is not None
        assert bn.running_var is not None
        weight = torch.ones_like(bn.running_mean) if bn.weight is None else bn.weight
        bias = torch.zeros_like(bn.running_mean) if bn.bias is None else bn.bias
        scale = weight / torch.sqrt(bn.running_var + bn.eps)
        return scale, bias - bn.running_mean * scale


class RecursiveUnit(nn.Module):
    """One recursion's own pre-activations; the convs they feed are lent by the memory block."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pre_a = PreActivation(channels)
        self.pre_b = PreActivation(channels)

    def forward(self, h: Tensor, conv_a: nn.Conv2d, conv_b: nn.Conv2d) -> Tensor:
        return h + conv_b(self.pre_b(conv_a(self.pre_a(h))))

    def folded_conv_a(self, conv_a: nn.Conv2d) -> tuple[Tensor, Tensor]:
        """Weight and bias of conv_a followed by this recursion's eval-mode pre_b BatchNorm."""
        scale, shift = self.pre_b.scale_shift()
        bias = torch.zeros_like(scale) if conv_a.bias is None else conv_a.bias
        return conv_a.weight * scale[:, None, None, None], bias * scale + shift


class GateUnit(nn.Module):
    """Adaptive memory gate: τ then a 1×1 conv over the concatenated memories."""

    def __init__(self, memories: int, channels: int) -> None:
        super().__init__()
        self.pre = PreActivation(memories * channels)
        self.conv = conv1x1(memories * channels, channels)

    def forward(self, memories: list[Tensor]) -> Tensor:
        return self.conv(self.pre(torch.cat(memories, dim=1)))


class MemoryBlock(nn.Module):
    """Memory block m: R recursions of one shared residual unit, then the gate unit.

    `index` is m (1-based): block m receives the m long-term memories B0 .. B_{m-1}.
    """

    def __init__(self, index: int, recursions: int, channels: int) -> None:
        super().__init__()
        self.conv_a = conv3x3(channels, channels)  # shared by all recursions of this block
        self.conv_b = conv3x3(channels, channels)
        self.recursions = nn.ModuleList(RecursiveUnit(channels) for _ in range(recursions))
        self.gate = GateUnit(memories=index + recursions, channels=channels)

    @property
    def units(self) -> list[RecursiveUnit]:
        """The R recursions, typed."""
        return [cast(RecursiveUnit, unit) for unit in self.recursions]

    def forward(self, long_term_memories: list[Tensor]) -> Tensor:
        h = long_term_memories[-1]
        short_term_memories = []
        for unit in self.recursions:
            h = unit(h, self.conv_a, self.conv_b)
            short_term_memories.append(h)
        return self.gate(long_term_memories + short_term_memories)


class MemNetOutput(NamedTuple):
    """The weighted restoration and, for multi-supervision, every branch's own restoration."""

    restored: Tensor
    branches: list[Tensor]


# --------------------------------------------------------------------------------------------
# the network
# --------------------------------------------------------------------------------------------


class MemNet(nn.Module):
    """MemNet with M memory blocks of R recursions and C channels (paper default M6R6, C=64).

    The input is the degraded image at output resolution (for SR: already bicubic-upsampled),
    values in [0, 1], shape (N, in_channels, H, W). Every branch predicts a residual on top of it.
    """

    def __init__(
        self,
        blocks: int = 6,
        recursions: int = 6,
        channels: int = 64,
        in_channels: int = 1,
        *,
        identity_init: bool = False,
        branch_weight_init: BranchWeightInit = "mean",
    ) -> None:
        super().__init__()
        self.config = MemNetConfig(blocks, recursions, channels, in_channels)
        self.fenet_pre = PreActivation(in_channels)  # BatchNorm on the raw input, as released
        self.fenet = conv3x3(in_channels, channels)
        self.blocks = nn.ModuleList(
            MemoryBlock(index=m, recursions=recursions, channels=channels)
            for m in range(1, blocks + 1)
        )
        self.reconstruction_pre = nn.ModuleList(PreActivation(channels) for _ in range(blocks))
        self.reconstruction = conv3x3(channels, in_channels)  # shared by all M branches
        # The released Caffe model starts every w_m at 1 (output ≈ M·x at first); 1/M makes the
        # weighted sum start as an average of the branches, which trains without a first shock.
        start = branch_weight_start(blocks, branch_weight_init)
        self.branch_weights = nn.Parameter(torch.full((blocks,), start))
        self.reset_parameters(identity_init=identity_init)

    @classmethod
    def from_config(
        cls,
        config: MemNetConfig,
        *,
        identity_init: bool = False,
        branch_weight_init: BranchWeightInit = "mean",
    ) -> MemNet:
        return cls(
            **config.to_dict(), identity_init=identity_init, branch_weight_init=branch_weight_init
        )

    def reset_parameters(self, *, identity_init: bool = False) -> None:
        """Kaiming-normal (fan_in, ReLU gain) convs, zero biases, BatchNorm γ=1 β=0.

        `identity_init` zeroes the reconstruction conv so that every branch, and the network,
        starts as the identity on its (already upsampled / degraded) input.
        """
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()
        if identity_init:
            nn.init.zeros_(self.reconstruction.weight)

    @overload
    def forward(self, x: Tensor) -> Tensor: ...
    @overload
    def forward(self, x: Tensor, *, branches: bool) -> Tensor | MemNetOutput: ...

    def forward(self, x: Tensor, *, branches: bool = False) -> Tensor | MemNetOutput:
        """Restore x; with `branches=True` also return the M intermediate predictions."""
        self._check_input(x)
        memories = [self.fenet(self.fenet_pre(x))]
        for block in self.blocks:
            memories.append(block(memories))
        predictions = [
            x + self.reconstruction(pre(b))
            for pre, b in zip(self.reconstruction_pre, memories[1:], strict=True)
        ]
        restored = sum_weighted(predictions, self.branch_weights)
        return MemNetOutput(restored, predictions) if branches else restored

    def _check_input(self, x: Tensor) -> None:
        check_input(self.config, x)

    @property
    def memory_blocks(self) -> list[MemoryBlock]:
        """The M memory blocks, typed."""
        return [cast(MemoryBlock, block) for block in self.blocks]

    @property
    def branch_pres(self) -> list[PreActivation]:
        """τ_m of each reconstruction branch, typed."""
        return [cast(PreActivation, pre) for pre in self.reconstruction_pre]


def check_input(config: MemNetConfig, x: Tensor) -> None:
    """A clear error unless `x` is an (N, in_channels, H, W) tensor for this network."""
    if not isinstance(x, Tensor):
        raise TypeError(f"MemNet expects a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != config.in_channels:
        raise ValueError(
            f"MemNet expects input of shape (N, {config.in_channels}, H, W), got {tuple(x.shape)}"
        )


def sum_weighted(predictions: list[Tensor], weights: Tensor) -> Tensor:
    """Σ_m w_m · y_m, written out so autograd and tracing see plain tensor ops."""
    total = predictions[0] * weights[0]
    for m in range(1, len(predictions)):
        total = total + predictions[m] * weights[m]
    return total


def create_model(
    name: str = "m6r6",
    *,
    identity_init: bool = False,
    branch_weight_init: BranchWeightInit = "mean",
    **overrides: int,
) -> MemNet:
    """Build a registered preset (see `PRESETS`), optionally overriding single fields."""
    try:
        config = PRESETS[name]
    except KeyError:
        raise ValueError(
            f"unknown MemNet preset {name!r}; known presets: {', '.join(PRESETS)}"
        ) from None
    if overrides:
        config = MemNetConfig(**{**config.to_dict(), **overrides})
    return MemNet.from_config(
        config, identity_init=identity_init, branch_weight_init=branch_weight_init
    )


# --------------------------------------------------------------------------------------------
# measurements computed from a model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSummary:
    """Size and cost of a network, measured from the module itself."""

    config: MemNetConfig
    parameters: int
    conv_weights: int
    batchnorm_layers: int
    macs_per_pixel: int
    receptive_field: int

    @property
    def mflop_per_pixel(self) -> float:
        return 2 * self.macs_per_pixel / 1e6


def count_conv_macs_per_pixel(model: nn.Module, in_channels: int) -> int:
    """Multiply-adds per output pixel, counting every call of a shared conv."""
    macs = 0

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal macs
        assert isinstance(module, nn.Conv2d)
        kh, kw = module.kernel_size
        macs += module.in_channels // module.groups * kh * kw * module.out_channels

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, in_channels, 1, 1))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return macs


def receptive_field(model: MemNet) -> int:
    """Side of the input window that one output pixel sees (stride-1 convs add k-1 each)."""

    def grow(conv: nn.Conv2d) -> int:
        return conv.kernel_size[0] - 1

    # The longest path runs through FENet, every recursion of every block (both convs), each
    # gate conv and the reconstruction conv of the last branch.
    span = grow(model.fenet) + grow(model.reconstruction)
    for block in model.blocks:
        assert isinstance(block, MemoryBlock)
        span += len(block.recursions) * (grow(block.conv_a) + grow(block.conv_b))
        span += grow(block.gate.conv)
    return span + 1


def exact_context(model: MemNet) -> int:
    """Context (px per side) that makes tiled inference equal to whole-image inference."""
    return (receptive_field(model) - 1) // 2


def summarize(model: MemNet) -> ModelSummary:
    """Parameters, conv weights, MFLOP per output pixel and receptive field of `model`."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return ModelSummary(
        config=model.config,
        parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
        conv_weights=sum(c.weight.numel() for c in convs),
        batchnorm_layers=sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()),
        macs_per_pixel=count_conv_macs_per_pixel(model, model.config.in_channels),
        receptive_field=receptive_field(model),
    )
