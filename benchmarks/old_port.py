"""The earlier PyTorch port's network, rebuilt from its description for speed comparisons.

That port (see docs: "Known defects of the earlier PyTorch port") takes RGB, and each of its
6 memory blocks runs its 6 distinct residual blocks 6 times over: 36 residual blocks per
memory block where the paper has one shared pair of convs per recursion. It reconstructs with
a 1×1 conv and has no biases. Only its cost matters here: 32.3 MFLOP per output pixel,
5.6× MemNet m6r6. It is run as that port runs it: eager PyTorch, default memory layout.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _pre_conv(in_channels: int, out_channels: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.BatchNorm2d(in_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
    )


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _pre_conv(channels, channels, 3), _pre_conv(channels, channels, 3)
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class OldMemoryBlock(nn.Module):
    def __init__(self, index: int, recursions: int, channels: int) -> None:
        super().__init__()
        self.recursions = recursions
        self.unit = nn.ModuleList(ResidualBlock(channels) for _ in range(recursions))
        self.gate = _pre_conv((index + recursions) * channels, channels, 1)

    def forward(self, long_term: list[Tensor]) -> Tensor:
        h = long_term[-1]
        short_term = []
        for _ in range(self.recursions):
            for block in self.unit:
                h = block(h)
            short_term.append(h)
        return self.gate(torch.cat(short_term + long_term, dim=1))


class OldPortNet(nn.Module):
    """RGB in, RGB out; 6 memory blocks of 6 distinct residual blocks run 6 times."""

    def __init__(self, blocks: int = 6, recursions: int = 6, channels: int = 64) -> None:
        super().__init__()
        self.fenet = _pre_conv(3, channels, 3)
        self.blocks = nn.ModuleList(
            OldMemoryBlock(m, recursions, channels) for m in range(1, blocks + 1)
        )
        self.reconstruction = _pre_conv(channels, 3, 1)

    def forward(self, x: Tensor) -> Tensor:
        memories = [self.fenet(x)]
        for block in self.blocks:
            memories.append(block(memories))
        return x + self.reconstruction(memories[-1])


def conv_flop_per_pixel(model: nn.Module, in_channels: int = 3) -> float:
    """Conv FLOP (2 per multiply-add) per output pixel, counting every call of each conv."""
    macs = 0

    def hook(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal macs
        assert isinstance(module, nn.Conv2d)
        kh, kw = module.kernel_size
        macs += module.in_channels * kh * kw * module.out_channels

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, in_channels, 1, 1))
    finally:
        for handle in handles:
            handle.remove()
    return 2.0 * macs
