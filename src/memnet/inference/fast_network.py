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

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from memnet.inference import native, winograd
from memnet.inference.gates import fused_gate_share
from memnet.inference.memory import folded_bytes_per_pixel
from memnet.model import MemNet, MemNetConfig, MemoryBlock, PreActivation, check_input

__all__ = [
    "Affine",
    "Conv",
    "FoldedBlock",
    "GateShare",
    "InferenceMemNet",
    "fused_conv",
    "fused_conv_available",
]


def _fused_ops() -> Any:
    """oneDNN's conv with fused ReLU / add, as PyTorch's CPU compiler uses them (None if absent)."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        ops = torch.ops.mkldnn
        return (
            ops._convolution_pointwise.default,
            ops._convolution_pointwise.binary,
            ops._convolution_pointwise_.binary,
        )
    except (AttributeError, RuntimeError):
        return None


_FUSED: Any = _fused_ops()


def fused_conv_available() -> bool:
    """Whether this PyTorch build has oneDNN's fused conv operators (CPU only)."""
    return _FUSED is not None


def fused_conv(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    padding: list[int],
    *,
    relu: bool = False,
    add: Tensor | None = None,
    in_place: bool = False,
) -> Tensor:
    """oneDNN's stride-1 conv of x: ReLU'd, or with `add` added as it writes (into `add` itself
    when `in_place`). The one place that spells out oneDNN's positional arguments."""
    geometry = (padding, [1, 1], [1, 1], 1)
    out: Tensor
    if add is None:
        out = _FUSED[0](x, weight, bias, *geometry, "relu" if relu else "none", [], "")
    elif in_place:
        out = _FUSED[2](add, x, weight, bias, *geometry, "add", None, None, [], None)
    else:
        out = _FUSED[1](x, add, weight, bias, *geometry, "add", None, None, [], None)
    return out


def _pixels(t: Tensor) -> Tensor | None:
    """A channels_last (N, C, H, W) tensor as its (N·H·W, C) matrix, sharing storage (or None)."""
    rows = t.permute(0, 2, 3, 1)
    return rows.view(-1, t.shape[1]) if rows.is_contiguous() else None


class Affine(nn.Module):
    """An eval-mode τ (BatchNorm, then ReLU) as a per-channel scale and shift, then the ReLU."""

    scale: Tensor
    shift: Tensor

    def __init__(self, pre: PreActivation, channels: slice | None = None) -> None:
        super().__init__()
        pick = channels if channels is not None else slice(None)
        scale, shift = pre.scale_shift()
        self.register_buffer("scale", scale[pick].detach().clone())
        self.register_buffer("shift", shift[pick].detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        # On a channels_last CPU tensor PyTorch's eval BatchNorm runs ~30× slower than this
        # multiply-add over the (pixels, channels) matrix, which vectorises along channels.
        rows = _pixels(x) if x.device.type == "cpu" and x.dtype == self.scale.dtype else None
        if rows is None:
            shape = (1, -1, 1, 1)
            return torch.addcmul(self.shift.view(shape), x, self.scale.view(shape)).relu_()
        n, _, h, w = x.shape
        out = torch.addcmul(self.shift, rows, self.scale).relu_()
        return out.view(n, h, w, -1).permute(0, 3, 1, 2)

    def into_(self, target: Tensor, x: Tensor) -> Tensor:
        """target = relu(scale·x + shift), written into `target` (channels_last CPU tensors)."""
        rows, out = _pixels(x), _pixels(target)
        if rows is None or out is None:
            return target.copy_(self(x))
        torch.addcmul(self.shift, rows, self.scale, out=out).relu_()
        return target


class Conv(nn.Module):
    """A stride-1 'same' conv whose result can be ReLU'd or added into a tensor in one pass."""

    weight: Tensor
    bias: Tensor | None

    def __init__(self, weight: Tensor, bias: Tensor | None) -> None:
        super().__init__()
        self.register_buffer("weight", weight.detach().clone())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.reach = weight.shape[-1] // 2  # rows (and columns) of context on each side
        self.padding = [self.reach, self.reach]
        self.winograd = _winograd_conv(self.weight, self.bias)

    def _fused(self, x: Tensor) -> bool:
        # oneDNN's fused operators exist for CPU tensors only; autocast needs the plain path.
        return _FUSED is not None and x.device.type == "cpu" and x.dtype == self.weight.dtype

    def _winograd(self, *tensors: Tensor) -> winograd.WinogradConv | None:
        """The Winograd conv when it was chosen and takes every one of `tensors` in place
        (and the weight is still the fp32 CPU one it was made from)."""
        chosen = self.winograd
        if chosen is None or self.weight.dtype != torch.float32 or self.weight.device.type != "cpu":
            return None
        return chosen if all(chosen.takes(t) for t in tensors) else None

    def fuses(self, pre: Affine) -> bool:
        """Whether this conv reads `pre`(x) straight from x (the Winograd kernel activates each
        input sample as it loads it), so that the activated tensor is never written out."""
        return self._winograd() is not None and _activation(pre) is not None

    def forward(self, x: Tensor, *, relu: bool = False, pre: Affine | None = None) -> Tensor:
        """conv(x) — conv(pre(x)) with `pre` — optionally ReLU'd."""
        if (fast := self._winograd(x)) is not None:
            activation = None if pre is None else _activation(pre)
            if pre is not None and activation is None:
                x = pre(x)
            return fast(x, self.reach, relu=relu, pre=activation)
        if pre is not None:
            x = pre(x)
        if self._fused(x):
            return fused_conv(x, self.weight, self.bias, self.padding, relu=relu)
        out = F.conv2d(x, self.weight, self.bias, padding=self.padding)
        return out.relu_() if relu else out

    def add(self, other: Tensor, x: Tensor) -> Tensor:
        """other + conv(x) as a new tensor (oneDNN adds it as the conv writes its output)."""
        if (fast := self._winograd(x, other)) is not None:
            return fast(x, self.reach, add=other)
        if self._fused(x) and other.dtype == x.dtype:
            return fused_conv(x, self.weight, self.bias, self.padding, add=other)
        return F.conv2d(x, self.weight, self.bias, padding=self.padding).add_(other)

    def strip(self, window: Tensor, *, relu: bool = False) -> Tensor:
        """conv of the rows of `window` that have `reach` rows of context above and below
        (CPU fp32): zero padding along the columns only."""
        if (fast := self._winograd(window)) is not None:
            return fast(window, 0, relu=relu)
        return fused_conv(window, self.weight, self.bias, [0, self.reach], relu=relu)

    def strip_into(self, target: Tensor, window: Tensor, *, relu: bool = False) -> None:
        """target = `strip(window)`: written in place by the Winograd kernel, else copied."""
        if (fast := self._winograd(window, target)) is not None:
            fast(window, 0, relu=relu, out=target)
            return
        target.copy_(self.strip(window, relu=relu))

    def strip_activated_into(
        self, target: Tensor, window: Tensor, pad_rows: tuple[int, int], pre: Affine, *, relu: bool
    ) -> None:
        """target = conv(pre(window)), ReLU'd, where `fuses(pre)`: `window` holds the rows of
        context it has, and (above, below) `pad_rows` zero rows stand in for those it has not
        (the image's edges)."""
        fast = self._winograd(window, target)
        activation = _activation(pre)
        assert fast is not None, "only where fuses(pre)"
        assert activation is not None, "only where fuses(pre)"
        fast(window, pad_rows, pre=activation, relu=relu, out=target)

    def strip_add_(self, target: Tensor, window: Tensor) -> None:
        """target += `strip(window)`, added as the conv writes its output."""
        if (fast := self._winograd(window, target)) is not None:
            fast(window, 0, add=target, out=target)
            return
        fused_conv(window, self.weight, self.bias, [0, self.reach], add=target, in_place=True)


def _activation(pre: Affine) -> tuple[Tensor, Tensor] | None:
    """`pre`'s (scale, shift) as the Winograd kernel reads them (fp32 CPU vectors), else None."""
    scale, shift = pre.scale, pre.shift
    usable = all(
        t.dtype == torch.float32 and t.device.type == "cpu" and t.is_contiguous()
        for t in (scale, shift)
    )
    return (scale, shift) if usable else None


def _winograd_conv(weight: Tensor, bias: Tensor | None) -> winograd.WinogradConv | None:
    """A Winograd form of a CPU fp32 conv where the kernel is here, takes the shape and was
    measured faster than oneDNN's direct conv on this machine; else None (direct conv)."""
    if weight.dtype != torch.float32 or weight.device.type != "cpu" or not winograd.suits(weight):
        return None
    if not winograd.faster_than_direct(weight.shape[1], weight.shape[0]):
        return None
    return winograd.WinogradConv(weight, bias)


class GateShare(nn.Module):
    """A 1×1 conv (a gate's share of one memory), run on a CPU as an in-place matrix product."""

    weight: Tensor
    bias: Tensor | None
    matrix: Tensor

    def __init__(self, weight: Tensor, bias: Tensor | None) -> None:
        super().__init__()
        self.register_buffer("weight", weight.detach().clone())
        self.register_buffer("bias", None if bias is None else bias.detach().clone())
        self.register_buffer("matrix", weight.detach()[:, :, 0, 0].t().contiguous())

    def _fast(self, x: Tensor) -> bool:
        return x.device.type == "cpu" and x.dtype == self.matrix.dtype

    def forward(self, x: Tensor) -> Tensor:
        rows = _pixels(x) if self._fast(x) else None
        if rows is None:
            return F.conv2d(x, self.weight, self.bias)
        out = rows @ self.matrix if self.bias is None else torch.addmm(self.bias, rows, self.matrix)
        n, _, h, w = x.shape
        return out.view(n, h, w, -1).permute(0, 3, 1, 2)

    def into_(self, target: Tensor, x: Tensor) -> Tensor:
        """target = conv(x), written into `target` (channels_last CPU tensors)."""
        rows, out = _pixels(x), _pixels(target)
        if rows is None or out is None:
            return target.copy_(self(x))
        if self.bias is None:
            torch.mm(rows, self.matrix, out=out)
        else:
            torch.addmm(self.bias, rows, self.matrix, out=out)
        return target

    def add_(self, total: Tensor, x: Tensor) -> Tensor:
        """total += conv(x), in place (the GEMM's beta = 1); returns total."""
        rows = _pixels(x) if self._fast(x) else None
        target = _pixels(total) if rows is not None and total.dtype == x.dtype else None
        if rows is None or target is None:
            return total.add_(F.conv2d(x, self.weight, self.bias))
        target.addmm_(rows, self.matrix)
        if self.bias is not None:
            target.add_(self.bias)
        return total


def _native_share(
    target: Tensor, memory: Tensor, pre: Affine, conv: GateShare, *, accumulate: bool
) -> bool:
    """target (+)= the share of `memory` by memnet's fused kernel; False where it cannot."""
    rows, out = _pixels(memory), _pixels(target)
    if rows is None or out is None:
        return False
    return fused_gate_share(
        out, rows, pre.scale, pre.shift, conv.matrix, conv.bias, accumulate=accumulate
    )


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
        if _native_share(target, memory, pre, conv, accumulate=not first):
            return
        activated = pre(memory)
        if first:
            conv.into_(target, activated)
        else:
            conv.add_(target, activated)

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
