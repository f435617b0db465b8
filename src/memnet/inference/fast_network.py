"""A trained MemNet rearranged for fast, lean inference; the same function as `memnet.model`.

`InferenceMemNet(model)` computes what `model.eval()(x)` computes, in a different order:

- The BatchNorm after each recursion's first conv is folded into a per-recursion copy of that
  conv (exact in eval mode; it unshares conv_a, which only training needs shared), and the ReLU
  after it runs inside the conv.
- The gate's concatenation is never built: the 1×1 gate conv is linear, so it is split over its
  inputs and each memory's share is added into the gate output as soon as that memory exists.
  A short-term memory H_r is then dead at once, and the recursion updates H in place.
- The M reconstruction branches share one conv, so each adds w_m·rec(τ_m(B_m)) straight into
  the output; the weighted sum of branches is never materialised.
- Activations are channels_last, which oneDNN's convolutions run fastest; on a CPU the residual
  and gate additions are done by the conv itself (oneDNN's sum post-op), not as separate passes.
- On a CPU the 3×3 convs between memories run as Winograd F(4×4, 3×3) where that was measured
  faster than the direct conv here (memnet.inference.winograd): 4× fewer multiplies, with the
  ReLU and the residual add done as it writes, like oneDNN's post-ops, and each recursion's
  first BatchNorm + ReLU applied as it reads H (the activated H is never written out). Each gate share's
  BatchNorm, ReLU and 1×1 conv run as one kernel (kernels/gates.cpp) that never writes the
  activated memory out.

It returns only the weighted restoration (no per-branch outputs) and has no gradients.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from memnet.inference import native
from memnet.inference.fast_layers import (
    Affine,
    Conv,
    GateShare,
    native_share,
    native_shares,
)
from memnet.inference.memory import folded_bytes_per_pixel
from memnet.model import MemNet, MemNetConfig, MemoryBlock, check_input

__all__ = ["FoldedBlock", "InferenceMemNet"]


class FoldedBlock(nn.Module):
    """Memory block m: folded recursions and its gate conv split per memory."""

    def __init__(self, block: MemoryBlock, m: int) -> None:
        super().__init__()
        channels = block.conv_a.out_channels
        units = block.units
        self.pre_a = [Affine(unit.pre_a) for unit in units]
        # pre_b's BatchNorm folds into a per-recursion copy of the shared conv_a.
        self.conv_a = [Conv(*unit.folded_conv_a(block.conv_a)) for unit in units]
        self.conv_b = Conv(block.conv_b.weight, block.conv_b.bias)
        gate = block.gate
        self.gate_pre: list[Affine] = []
        self.gate_conv: list[GateShare] = []
        for i in range(gate.conv.in_channels // channels):
            part = slice(i * channels, (i + 1) * channels)
            self.gate_pre.append(Affine(gate.pre, part))
            # The bias is added once, with the first share.
            bias = gate.conv.bias if i == 0 else None
            self.gate_conv.append(GateShare(gate.conv.weight[:, part], bias))
        # Registered for .to(device); the typed lists are what forward uses.
        self.modules_a = nn.ModuleList([*self.pre_a, *self.conv_a])
        self.modules_gate = nn.ModuleList([*self.gate_pre, *self.gate_conv])
        self.long_term = m  # shares 0 .. m-1 belong to B0 .. B_{m-1}, the rest to H_1 .. H_R

    def share(self, gate: Tensor | None, index: int, memory: Tensor) -> Tensor:
        """Add memory `index`'s share of the gate conv into `gate` (started when None)."""
        if gate is not None:
            self.share_into_(gate, index, memory, first=False)
            return gate
        if native.library() is not None and memory.device.type == "cpu":
            n, _, h, w = memory.shape
            out_channels = self.gate_conv[index].matrix.shape[1]
            gate = torch.empty(
                (n, out_channels, h, w), dtype=memory.dtype, memory_format=torch.channels_last
            )
            self.share_into_(gate, index, memory, first=True)
            return gate
        # The first share (index 0) carries the gate's bias.
        return self.gate_conv[index](self.gate_pre[index](memory))

    def share_into_(self, target: Tensor, index: int, memory: Tensor, *, first: bool) -> None:
        """target = memory `index`'s share of the gate conv (`first`), else target += it."""
        pre, conv = self.gate_pre[index], self.gate_conv[index]
        if native_share(target, memory, pre, conv, accumulate=not first):
            return
        activated = pre(memory)
        if first:
            conv.into_(target, activated)
        else:
            conv.add_(target, activated)

    def shares_into_(self, target: Tensor, indices: list[int], memories: list[Tensor]) -> None:
        """target = the sum of the shares `indices` (the first is 0, which carries the bias) of
        `memories`: by one kernel call that writes `target` once where it can, else one share
        after another; the same bits either way."""
        assert indices[:1] == [0], "the first share carries the gate's bias"
        pres = [self.gate_pre[i] for i in indices]
        convs = [self.gate_conv[i] for i in indices]
        if native_shares(target, memories, pres, convs):
            return
        for n, (index, memory) in enumerate(zip(indices, memories, strict=True)):
            self.share_into_(target, index, memory, first=n == 0)

    def recurse(self, h: Tensor, gate: Tensor) -> Tensor:
        """Run the R recursions from h = B_{m-1}, adding each H_r into `gate`; returns B_m."""
        for r, (pre, conv_a) in enumerate(zip(self.pre_a, self.conv_a, strict=True)):
            inner = conv_a(h, relu=True, pre=pre)
            # oneDNN adds the residual as it writes the conv's output (a post-op): cheaper than
            # updating H in place, which it would run as a separate pass.
            h = self.conv_b.add(h, inner)
            del inner
            gate = self.share(gate, self.long_term + r, h)
        return gate


class InferenceMemNet(nn.Module):
    """Eval-mode `MemNet` rearranged for speed and memory; `forward(x)` equals `model.eval()(x)`."""

    weight_sum: Tensor

    def __init__(self, model: MemNet) -> None:
        """Fold `model` as eval mode computes it; the model itself is only read, never changed."""
        super().__init__()
        self.config: MemNetConfig = model.config
        with torch.no_grad():
            self.fenet_pre = Affine(model.fenet_pre)
            self.fenet = Conv(model.fenet.weight, model.fenet.bias)
            blocks = [FoldedBlock(block, m) for m, block in enumerate(model.memory_blocks, 1)]
            rec_pre = [Affine(pre) for pre in model.branch_pres]
            rec = model.reconstruction
            weights = model.branch_weights.detach()
            total = weights.sum()
            rec_bias = rec.bias if rec.bias is not None else torch.zeros(rec.out_channels)
            # The M branches share one linear conv, so Σ_m w_m·rec(a_m) = rec(Σ_m w_m·a_m):
            # one reconstruction conv instead of M (a 64→1 conv runs far below the ceiling).
            self.reconstruction = Conv(rec.weight, rec_bias * total)
            self.register_buffer("weight_sum", total.clone())
        self.branch_weights = [float(w) for w in weights]
        self.registered = nn.ModuleList([*blocks, *rec_pre])
        self.branches: list[tuple[FoldedBlock, Affine]] = list(zip(blocks, rec_pre, strict=True))
        self.requires_grad_(False)

    def bytes_per_pixel(self, element_bytes: int = 4) -> int:
        """Peak activation memory per input pixel of one forward pass (memnet.inference.memory)."""
        return folded_bytes_per_pixel(self.config, element_bytes)

    def forward(self, x: Tensor) -> Tensor:
        check_input(self.config, x)
        x = x.contiguous(memory_format=torch.channels_last)
        # A one-channel tensor is ambiguous about its layout; make the features channels_last.
        features = self.fenet(self.fenet_pre(x)).contiguous(memory_format=torch.channels_last)
        memories = [features]  # B0 .. B_{m-1}
        del features
        branch_sum: Tensor | None = None  # Σ_m w_m · τ_m(B_m), the reconstruction conv's input
        last = len(self.branches)
        for m, (block, rec_pre) in enumerate(self.branches, start=1):
            start = memories[-1]
            gate: Tensor | None = None
            for j in range(m):
                gate = block.share(gate, j, memories[j])
                if m == last:
                    # The last block is the last reader of every long-term memory.
                    memories[j] = start.new_empty(0)
            assert gate is not None
            result = block.recurse(start, gate)
            del start, gate
            activated, weight = rec_pre(result), self.branch_weights[m - 1]
            if branch_sum is None:
                branch_sum = activated.mul_(weight)
            else:
                branch_sum.add_(activated, alpha=weight)
            del activated
            if m == last:
                memories.clear()
            else:
                memories.append(result)
            del result
        assert branch_sum is not None
        # y = Σ_m w_m·(x + rec(τ_m(B_m))) = (Σ_m w_m)·x + rec(Σ_m w_m·τ_m(B_m))
        residual_base = x * self.weight_sum.to(x.dtype)
        return self.reconstruction.add(residual_base, branch_sum).contiguous()
