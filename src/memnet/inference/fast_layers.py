"""The layers of the inference network (memnet.inference.fast_network), each one op done fast.

- `fused_conv`: oneDNN's stride-1 conv with the ReLU or a residual add done as it writes.
- `Affine`: an eval-mode τ (BatchNorm + ReLU) as one multiply-add over the pixels' channels.
- `Conv`: a 3×3 (or 1×1) "same" conv that picks, per call, the Winograd kernel
  (memnet.inference.winograd, where measured faster here) or oneDNN, for whole tensors and for
  the strips memnet.inference.streaming cuts; it can read its input through an `Affine`.
- `GateShare`: one memory's share of a gate's 1×1 conv as an in-place matrix product, and
  `native_share`, the same with its BatchNorm + ReLU in memnet's fused kernel (`native_shares`:
  several memories' shares summed in one call).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from memnet.inference import winograd
from memnet.inference.gates import fused_gate_share, fused_gate_shares
from memnet.inference.winograd import Rows, SplitRows
from memnet.model import PreActivation

__all__ = [
    "Affine",
    "Conv",
    "GateShare",
    "fused_conv",
    "fused_conv_available",
    "native_share",
    "native_shares",
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

    def _winograd(self, *tensors: Rows) -> winograd.WinogradConv | None:
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

    def takes_split_rows(self) -> bool:
        """Whether `strip_add_` and `strip_activated_into` take `SplitRows` (the Winograd
        kernel runs this conv)."""
        return self._winograd() is not None

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
        self, target: Rows, window: Rows, pad_rows: tuple[int, int], pre: Affine, *, relu: bool
    ) -> None:
        """target = conv(pre(window)), ReLU'd, where `fuses(pre)`: `window` holds the rows of
        context it has, and (above, below) `pad_rows` zero rows stand in for those it has not
        (the image's edges). Either may be split rows (the kernel reads them in place)."""
        fast = self._winograd(window, target)
        activation = _activation(pre)
        assert fast is not None, "only where fuses(pre)"
        assert activation is not None, "only where fuses(pre)"
        fast(window, pad_rows, pre=activation, relu=relu, out=target)

    def strip_add_(self, target: Rows, window: Rows) -> None:
        """target += `strip(window)`, added as the conv writes its output; split rows only
        where this conv runs as Winograd (`fuses`)."""
        if (fast := self._winograd(window, target)) is not None:
            fast(window, 0, add=target, out=target)
            return
        if isinstance(target, SplitRows) or isinstance(window, SplitRows):
            raise TypeError("split rows are read only by the Winograd kernel")
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


def native_share(
    target: Tensor, memory: Tensor, pre: Affine, conv: GateShare, *, accumulate: bool
) -> bool:
    """target (+)= the share of `memory` by memnet's fused kernel; False where it cannot."""
    rows, out = _pixels(memory), _pixels(target)
    if rows is None or out is None:
        return False
    return fused_gate_share(
        out, rows, pre.scale, pre.shift, conv.matrix, conv.bias, accumulate=accumulate
    )


def native_shares(
    target: Tensor, memories: list[Tensor], pres: list[Affine], convs: list[GateShare]
) -> bool:
    """target = the sum of the shares of `memories` (the first carrying its conv's bias, the
    others without one) by one call of memnet's fused kernel; False where it cannot."""
    rows = [_pixels(memory) for memory in memories]
    out = _pixels(target)
    if out is None or any(r is None for r in rows) or any(c.bias is not None for c in convs[1:]):
        return False
    return fused_gate_shares(
        out,
        [r for r in rows if r is not None],
        [pre.scale for pre in pres],
        [pre.shift for pre in pres],
        [conv.matrix for conv in convs],
        convs[0].bias,
    )
