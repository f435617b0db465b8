"""A plain eager MemNet, written the obvious way, as the yardstick for the optimised path.

Same parameters (and state-dict keys) as memnet.model.MemNet, so it loads the same weights and
computes the same function, but runs it as straightforward PyTorch would: default NCHW layout,
BatchNorm and ReLU as separate layers, the gate's concatenation built, every branch
reconstructed and summed.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from memnet.model import MemNet


def _pre(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU())


class _Unit(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pre_a, self.pre_b = _pre(channels), _pre(channels)


class _Gate(nn.Module):
    def __init__(self, memories: int, channels: int) -> None:
        super().__init__()
        self.pre = _pre(memories * channels)
        self.conv = nn.Conv2d(memories * channels, channels, 1)


class _Block(nn.Module):
    def __init__(self, index: int, recursions: int, channels: int) -> None:
        super().__init__()
        self.conv_a = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv_b = nn.Conv2d(channels, channels, 3, padding=1)
        self.recursions = nn.ModuleList(_Unit(channels) for _ in range(recursions))
        self.gate = _Gate(index + recursions, channels)

    def forward(self, long_term: list[Tensor]) -> Tensor:
        h = long_term[-1]
        short_term = []
        for unit in self.recursions:
            h = h + self.conv_b(unit.pre_b(self.conv_a(unit.pre_a(h))))
            short_term.append(h)
        return self.gate.conv(self.gate.pre(torch.cat(long_term + short_term, dim=1)))


class EagerMemNet(nn.Module):
    def __init__(self, blocks: int = 6, recursions: int = 6, channels: int = 64) -> None:
        super().__init__()
        self.fenet_pre = _pre(1)
        self.fenet = nn.Conv2d(1, channels, 3, padding=1)
        self.blocks = nn.ModuleList(_Block(m, recursions, channels) for m in range(1, blocks + 1))
        self.reconstruction_pre = nn.ModuleList(_pre(channels) for _ in range(blocks))
        self.reconstruction = nn.Conv2d(channels, 1, 3, padding=1)
        self.branch_weights = nn.Parameter(torch.full((blocks,), 1.0 / blocks))

    @classmethod
    def from_memnet(cls, model: MemNet) -> EagerMemNet:
        c = model.config
        eager = cls(c.blocks, c.recursions, c.channels)
        eager.load_state_dict(model.state_dict())
        return eager.eval()

    def forward(self, x: Tensor) -> Tensor:
        memories = [self.fenet(self.fenet_pre(x))]
        for block in self.blocks:
            memories.append(block(memories))
        branches = [
            x + self.reconstruction(pre(b))
            for pre, b in zip(self.reconstruction_pre, memories[1:], strict=True)
        ]
        return sum(w * y for w, y in zip(self.branch_weights, branches, strict=True))  # type: ignore[return-value]
