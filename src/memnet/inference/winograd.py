"""Winograd F(4×4, 3×3) for the inference network's 3×3 convs on a CPU: fewer multiplies.

A direct 3×3 conv runs near the cores' FMA peak (benchmarks/results.md), so only fewer
multiplications make it faster: F(4×4, 3×3) does 36 per 4×4 output tile and channel pair where
the direct conv does 144. The kernel (kernels/winograd.cpp, AVX-512 or AVX2 + FMA, blocked so
that its transformed tiles stay in the L2 cache) is one of memnet's own (memnet.inference.native):
without a compiler, AVX2 or FMA it is simply not used.

It is used for a conv shape only where it was measured faster than oneDNN's direct conv on this
machine (`faster_than_direct`, once per machine, shape and build, kept beside the built kernel), and
`MEMNET_WINOGRAD=0` turns it off. Its rounding differs from the direct conv's: the transforms
multiply by entries up to 8 (Aᵀ) and 5 (Bᵀ), so one conv's fp32 error is bounded by γ_k times
a magnitude a few hundred times Σ|w||x| (`error_bound`); measured, it is a few times the direct
conv's, and the released models' PSNR is unchanged (tests/test_winograd.py, benchmarks).
"""

from __future__ import annotations

import ctypes
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import overload

import torch
import torch.nn.functional as F
from torch import Tensor

from memnet.inference import native

__all__ = [
    "SplitRows",
    "WinogradConv",
    "error_bound",
    "faster_than_direct",
    "forced",
    "kernel",
    "kernel_status",
    "rounding_depth",
    "suits",
    "weight_gradient",
    "weight_transform",
]

UNIT_ROUNDOFF = 2.0**-24  # fp32, round to nearest
# A block's transformed tiles (V and M) are kept within this much of the L2 cache per core:
# about half of a 512 KB L2, the rest holding the input rows being read and U. Measured on
# streamed strips (benchmarks/winograd/bench.py), blocks of 12-30 tiles ran 10-25 % faster than
# blocks filling the L2 (48 tiles at 32 channels).
BLOCK_CACHE_BYTES = 224 << 10

# Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2016), F(4×4, 3×3):
# y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A for a 6×6 input tile d and a 3×3 filter g.
BT = [
    [4, 0, -5, 0, 1, 0],
    [0, -4, -4, 1, 1, 0],
    [0, 4, -4, -1, 1, 0],
    [0, -2, -1, 2, 1, 0],
    [0, 2, -1, -2, 1, 0],
    [0, 4, 0, -5, 0, 1],
]
G = [
    [1 / 4, 0, 0],
    [-1 / 6, -1 / 6, -1 / 6],
    [-1 / 6, 1 / 6, -1 / 6],
    [1 / 24, 1 / 12, 1 / 6],
    [1 / 24, -1 / 12, 1 / 6],
    [0, 0, 1],
]
AT = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]


def kernel() -> ctypes.CDLL | None:
    """memnet's kernels (memnet.inference.native) where Winograd may be used, else None."""
    if os.environ.get("MEMNET_WINOGRAD", "1") == "0":
        return None
    return native.library()


def kernel_status() -> str:
    """A line on whether the Winograd kernel is used here, and why not."""
    if os.environ.get("MEMNET_WINOGRAD", "1") == "0":
        return "off (MEMNET_WINOGRAD=0)"
    if native.library() is None:
        return native.status()
    return f"available, used where measured faster than the direct conv ({native.status()})"


def suits(weight: Tensor) -> bool:
    """Whether a conv weight [K, C, 3, 3] has a shape the kernel takes: C a multiple of its
    vector (8 floats for AVX2, 16 for AVX-512), K of two vectors."""
    k, c, kh, kw = weight.shape
    lanes = native.vector_lanes()
    return (kh, kw) == (3, 3) and c % lanes == 0 and k % (2 * lanes) == 0


def weight_transform(weight: Tensor) -> Tensor:
    """U[ξ][c][k] = (G g_kc Gᵀ)_ξ for a [K, C, 3, 3] weight, in float64, then rounded to fp32."""
    g = torch.tensor(G, dtype=torch.float64)
    u = torch.einsum("ij,kcjl,ml->imkc", g, weight.detach().double().cpu(), g)  # [6, 6, K, C]
    return u.reshape(36, *u.shape[2:]).transpose(1, 2).contiguous().float()


@cache
def _block(channels: int, out_channels: int) -> int:
    """Tiles per block of the loaded kernel for this conv shape (fixed for the process)."""
    lib = native.library()
    assert lib is not None
    return int(lib.memnet_winograd_block(channels, out_channels, BLOCK_CACHE_BYTES))


def _packed(u: Tensor) -> Tensor:
    """U [36, C, K] in the order the loaded kernel's GEMMs read it (memnet_winograd_pack)."""
    lib = kernel()
    assert lib is not None
    packed = torch.empty_like(u)
    if lib.memnet_winograd_pack(u.data_ptr(), u.shape[1], u.shape[2], packed.data_ptr()) != 0:
        raise ValueError(f"Winograd kernel cannot pack a {tuple(u.shape)} weight")
    return packed


def _pointer(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


@dataclass(frozen=True)
class SplitRows:
    """The rows of one (1, C, H, W) image stored in two runs, `head` (its first rows) and then
    `tail`, each a channels_last tensor: a streamed ring buffer's rows where they wrap around
    its end (memnet.inference.streaming). The kernel reads and writes them in place."""

    head: Tensor
    tail: Tensor

    @property
    def shape(self) -> tuple[int, int, int, int]:
        n, c, rows, width = self.head.shape
        return n, c, rows + self.tail.shape[2], width


Rows = Tensor | SplitRows  # what the kernel reads and writes: a tensor or its rows in two runs


def _runs(rows: Rows | None, height: int) -> tuple[int | None, int | None, int]:
    """(first run, second run, rows in the first) of `rows` as the kernel takes them."""
    if rows is None:
        return None, None, height
    if isinstance(rows, SplitRows):
        return rows.head.data_ptr(), rows.tail.data_ptr(), rows.head.shape[2]
    return rows.data_ptr(), rows.data_ptr(), height


class WinogradConv:
    """One 3×3 conv's transformed weight, run by the kernel on channels_last fp32 CPU tensors."""

    def __init__(self, weight: Tensor, bias: Tensor | None) -> None:
        lib = kernel()
        assert lib is not None
        assert suits(weight)
        self.out_channels, self.in_channels = weight.shape[0], weight.shape[1]
        self.u = _packed(weight_transform(weight))
        self.bias = None if bias is None else bias.detach().float().contiguous().cpu()
        self.block = _block(self.in_channels, self.out_channels)

    @staticmethod
    def takes(x: Rows) -> bool:
        """Whether `x` is a tensor (or both runs of split rows) the kernel reads in place: fp32,
        CPU, channels_last."""
        if isinstance(x, SplitRows):
            return x.head.shape[:2] == x.tail.shape[:2] and all(
                WinogradConv.takes(run) and run.shape[3] == x.head.shape[3]
                for run in (x.head, x.tail)
            )
        return (
            x.dtype == torch.float32
            and x.device.type == "cpu"
            and x.dim() == 4
            and x.is_contiguous(memory_format=torch.channels_last)
        )

    @overload
    def __call__(
        self,
        x: Rows,
        pad_rows: int | tuple[int, int],
        *,
        pre: tuple[Tensor, Tensor] | None = ...,
        relu: bool = ...,
        add: Rows | None = ...,
        out: Tensor | None = ...,
    ) -> Tensor: ...

    @overload
    def __call__(
        self,
        x: Rows,
        pad_rows: int | tuple[int, int],
        *,
        pre: tuple[Tensor, Tensor] | None = ...,
        relu: bool = ...,
        add: Rows | None = ...,
        out: SplitRows,
    ) -> SplitRows: ...

    def __call__(
        self,
        x: Rows,
        pad_rows: int | tuple[int, int],
        *,
        pre: tuple[Tensor, Tensor] | None = None,
        relu: bool = False,
        add: Rows | None = None,
        out: Rows | None = None,
    ) -> Rows:
        """conv(x) with zero padding of one column each side and `pad_rows` rows each side, or
        (above, below) rows (0: x carries that row of context itself), + `add`, ReLU'd; written
        into `out` if given (`out` may be `add`). `pre` = (scale, shift): the conv reads
        relu(scale·x + shift) instead of x (an eval BatchNorm + ReLU, never written out) and
        pads that with zeros. Every tensor is a channels_last fp32 CPU tensor; x, add and out
        may be `SplitRows` of one image."""
        lib = kernel()
        assert lib is not None
        top, bottom = (pad_rows, pad_rows) if isinstance(pad_rows, int) else pad_rows
        n, c, height, width = x.shape
        shape = (n, self.out_channels, height + top + bottom - 2, width)
        if out is None:
            out = torch.empty(shape, dtype=torch.float32, memory_format=torch.channels_last)
        scale, shift = pre if pre is not None else (None, None)
        x_first, x_second, x_split = _runs(x, height)
        add_first, add_second, add_split = _runs(add, shape[2])
        y_first, y_second, y_split = _runs(out, shape[2])
        status = lib.memnet_winograd_conv(
            x_first, x_second, x_split, n, height, width, c, top, bottom, _pointer(scale),
            _pointer(shift), self.u.data_ptr(), self.out_channels, _pointer(self.bias),
            add_first, add_second, add_split, y_first, y_second, y_split, int(relu),
            torch.get_num_threads(), self.block,
        )  # fmt: skip
        if status != 0:
            raise ValueError(f"Winograd conv cannot take a {tuple(x.shape)} input")
        return out


def weight_gradient(x: Tensor, grad: Tensor, *, pre: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """The [K, C, 3, 3] weight gradient of a 'same' 3×3 conv (padding 1) by the kernel, for its
    input `x` [N, C, H, W] and output gradient `grad` [N, K, H, W], both channels_last fp32 CPU
    tensors: dU = Σ_tiles V ⊙ dM in the Winograd domain (dM = A dy Aᵀ), then dg = Gᵀ dU G in
    float64. `pre` = (scale, shift): the conv's input was relu(scale·x + shift), as
    `WinogradConv` reads it. Channels as `suits` takes them for the forward conv."""
    lib = kernel()
    assert lib is not None
    n, c, height, width = x.shape
    k = grad.shape[1]
    block = _block(c, k)
    du = torch.empty(36, c, k, dtype=torch.float32)
    scale, shift = pre if pre is not None else (None, None)
    status = lib.memnet_winograd_weight_grad(
        x.data_ptr(), n, height, width, c, _pointer(scale), _pointer(shift), grad.data_ptr(), k,
        du.data_ptr(), torch.get_num_threads(), block,
    )  # fmt: skip
    if status != 0:
        raise ValueError(f"Winograd weight gradient cannot take a {tuple(x.shape)} input")
    # dg[k][c][a][b] = Σ_ij G[i][a]·G[j][b]·dU[ij][c][k]: one [9, 36] × [36, C·K] product
    dg = _output_gradient_transform() @ du.double().reshape(36, c * k)
    return dg.reshape(3, 3, c, k).permute(3, 2, 0, 1).float()


@cache
def _output_gradient_transform() -> Tensor:
    """(G ⊗ G)ᵀ in float64: row ab, column ij holds G[i][a]·G[j][b]."""
    g = torch.tensor(G, dtype=torch.float64)
    return torch.kron(g, g).T.contiguous()


def _median_seconds(run: object, repeats: int) -> float:
    assert callable(run)
    run()  # warm-up: first-touch pages, oneDNN's primitive cache
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _measure(channels: int, out_channels: int, threads: int) -> bool:
    """Time both kernels on a typical streamed strip (16 rows of a 512-wide image)."""
    from memnet.inference.fast_layers import fused_conv, fused_conv_available

    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(out_channels, channels, 3, 3, generator=generator) * 0.05
    bias = torch.zeros(out_channels)
    x = torch.randn(1, channels, 18, 512, generator=generator).contiguous(
        memory_format=torch.channels_last
    )
    winograd = WinogradConv(weight, bias)
    if fused_conv_available():
        direct = _median_seconds(lambda: fused_conv(x, weight, bias, [0, 1]), 7)
    else:
        direct = _median_seconds(lambda: F.conv2d(x, weight, bias, padding=(0, 1)), 7)
    fast = _median_seconds(lambda: winograd(x, 0), 7)
    return fast < direct


_FORCED: bool | None = None  # set by `forced`: the choice, whatever was measured


@contextmanager
def forced(use: bool) -> Iterator[None]:
    """Inside, every network built takes Winograd for each conv it suits (`use`) or none,
    whatever this machine measured: for comparing the two paths (tests, benchmarks)."""
    global _FORCED
    before, _FORCED = _FORCED, use
    try:
        yield
    finally:
        _FORCED = before


def faster_than_direct(channels: int, out_channels: int) -> bool:
    """Whether the kernel beats oneDNN's direct conv for this shape here: measured once per
    machine, shape, thread count and kernel build, and kept beside the built kernel (so every run of this
    machine takes the same path and gives the same result)."""
    if kernel() is None:
        return False
    if _FORCED is not None:
        return _FORCED
    threads = torch.get_num_threads()
    key = f"{channels}x{out_channels}@{threads}/{native.isa()}"
    record = native.cache_folder() / "kernels" / "winograd-decisions.json"
    try:
        decisions = json.loads(record.read_text())
    except (OSError, ValueError):
        decisions = {}
    if key not in decisions:
        decisions[key] = _measure(channels, out_channels, threads)
        try:
            record.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=record.parent, delete=False) as file:
                json.dump(decisions, file)
            os.replace(file.name, record)
        except OSError:
            pass  # a read-only cache only means measuring again next time
    return bool(decisions[key])


def rounding_depth(channels: int) -> int:
    """The longest chain of fp32 roundings behind one output: two passes of Bᵀ (at most 4
    non-zeros per row each, 2 roundings per entry with the add), U rounded from float64, the
    GEMM's C-term sum, two passes of Aᵀ (up to 5 non-zeros), the bias. Each term's relative
    error is then at most γ_k (Higham, Accuracy and Stability of Numerical Algorithms, §3.1)."""
    per_row = lambda rows: max(sum(1 for v in row if v) for row in rows)  # noqa: E731
    return 2 * per_row(BT) + 1 + channels + 2 * per_row(AT) + 1


def error_bound(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    pad_rows: int | tuple[int, int] = 1,
    *,
    activated: bool = False,
) -> Tensor:
    """Componentwise bound on |fp32 Winograd − exact conv| in float64: γ_k times the absolute
    chain |Aᵀ|[Σ_c (|G||g||G|ᵀ) ⊙ (|Bᵀ||d||B|)]|A| (+ |bias|) of every output. `pad_rows` as
    the kernel takes it; `activated`: x is the exact activation the kernel computed from its
    input (`pre`), whose fp32 rounding adds one more to each chain (k + 1)."""
    k = rounding_depth(weight.shape[1]) + int(activated)
    gamma = k * UNIT_ROUNDOFF / (1 - k * UNIT_ROUNDOFF)
    bt, g, at = (torch.tensor(m, dtype=torch.float64).abs() for m in (BT, G, AT))
    d = x.double().abs()
    top, bottom = (pad_rows, pad_rows) if isinstance(pad_rows, int) else pad_rows
    d = F.pad(d, (0, 0, top, bottom))
    n, _, height, width = d.shape
    out_h, out_w = height - 2, width
    th, tw = -(-out_h // 4), -(-out_w // 4)
    d = F.pad(d, (1, tw * 4 + 1 - width, 0, th * 4 + 2 - height))
    tiles = d.unfold(2, 6, 4).unfold(3, 6, 4)  # [N, C, th, tw, 6, 6]
    v = torch.einsum("ij,ncabjk,lk->ncabil", bt, tiles, bt)
    u = torch.einsum("ij,kcjl,ml->kcim", g, weight.double().abs(), g)
    y = torch.einsum("ij,nkabjl,ml->nkaibm", at, torch.einsum("ncabij,kcij->nkabij", v, u), at)
    y = y.reshape(n, -1, th * 4, tw * 4)[:, :, :out_h, :out_w]
    if bias is not None:
        y = y + bias.double().abs().view(1, -1, 1, 1)
    return gamma * y
