"""Prototype Winograd F(2×2,3×3) and F(4×4,3×3) convolutions, and their fp32 error bound.

The 3×3, stride-1, zero-padded convs of the inference network, for one channels_last fp32
image on the CPU:

- `reference` — the same algorithm in plain torch (unfold + einsum), in any dtype: the check of
  the C++ kernels, and (on absolute values, `magnitude`) the size its rounding errors scale with.
- `extension()` — winograd.cpp, compiled on first use with the machine's C++ compiler
  (-O3 -march=native: AVX2 + FMA); None if there is no compiler.
- `Winograd` — a conv's weight transformed once (in float64), run with the extension's fused
  kernel (own GEMM micro-kernel) or with torch's batched matmul for the t² GEMMs.
- `error_bound` — the componentwise fp32 bound the kernels' results are checked against.
"""

from __future__ import annotations

import math
import shutil
from functools import cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

SOURCE = Path(__file__).with_name("winograd.cpp")
UNIT_ROUNDOFF = 2.0**-24  # fp32, round to nearest
# Tiles per block of the fused kernel: a block's V and M (2·t²·block·C floats) stay in the L2.
BLOCK = {2: 48, 4: 24}

# Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (2016): Bᵀ (t×t), G (t×3),
# Aᵀ (m×t), t = m + 2; y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A for a t×t input tile d and 3×3 filter g.
_MATRICES: dict[int, tuple[list[list[float]], list[list[float]], list[list[float]]]] = {
    2: (
        [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]],
        [[1, 1, 1, 0], [0, 1, -1, -1]],
    ),
    4: (
        [
            [4, 0, -5, 0, 1, 0],
            [0, -4, -4, 1, 1, 0],
            [0, 4, -4, -1, 1, 0],
            [0, -2, -1, 2, 1, 0],
            [0, 2, -1, -2, 1, 0],
            [0, 4, 0, -5, 0, 1],
        ],
        [
            [1 / 4, 0, 0],
            [-1 / 6, -1 / 6, -1 / 6],
            [-1 / 6, 1 / 6, -1 / 6],
            [1 / 24, 1 / 12, 1 / 6],
            [1 / 24, -1 / 12, 1 / 6],
            [0, 0, 1],
        ],
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
    ),
}


def matrices(m: int, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor, Tensor]:
    """Bᵀ, G, Aᵀ of F(m×m, 3×3)."""
    return tuple(torch.tensor(a, dtype=dtype) for a in _MATRICES[m])  # type: ignore[return-value]


def weight_transform(weight: Tensor, m: int) -> Tensor:
    """U[ξ][c][k] = (G g_kc Gᵀ)_ξ for a [K, C, 3, 3] weight, computed in float64, then fp32."""
    _, g, _ = matrices(m)
    u = torch.einsum("ij,kcjl,ml->imkc", g, weight.double(), g)  # [t, t, K, C]
    t = m + 2
    return u.reshape(t * t, *u.shape[2:]).transpose(1, 2).contiguous().float()


def reference(
    x: Tensor, weight: Tensor, bias: Tensor | None, m: int, *, absolute: bool = False
) -> Tensor:
    """The Winograd conv in plain torch (x's dtype); with `absolute`, the same chain on |x|, |w|
    and the transforms' absolute values — the magnitude every rounding error is relative to."""
    bt, g, at = (a.to(x.dtype) for a in matrices(m))
    if absolute:
        x, weight, bt, g, at = x.abs(), weight.abs(), bt.abs(), g.abs(), at.abs()
        bias = None if bias is None else bias.abs()
    _, _, h, w = x.shape
    t, th, tw = m + 2, math.ceil(h / m), math.ceil(w / m)
    padded = F.pad(x, (1, tw * m + 1 - w, 1, th * m + 1 - h))
    d = padded.unfold(2, t, m).unfold(3, t, m)  # [N, C, th, tw, t, t]
    v = torch.einsum("ij,ncabjk,lk->ncabil", bt, d, bt)
    u = torch.einsum("ij,kcjl,ml->kcim", g, weight.to(x.dtype), g)
    prod = torch.einsum("ncabij,kcij->nkabij", v, u)
    y = torch.einsum("ij,nkabjl,ml->nkaibm", at, prod, at)  # [N, K, th, m, tw, m]
    y = y.reshape(y.shape[0], y.shape[1], th * m, tw * m)[:, :, :h, :w]
    return y if bias is None else y + bias.to(x.dtype).view(1, -1, 1, 1)


def rounding_depth(m: int, channels: int) -> int:
    """How many fp32 roundings one output element's longest path through the kernels has.

    Each stage is a sum of products, exact but for one rounding per term (FMA, or a ±1 add):
    two passes of Bᵀ (up to its most non-zeros per row each), U's one rounding from float64 to
    fp32, the GEMM's C-term sum, two passes of Aᵀ, the bias add. Each term's relative error is
    then at most γ_k = k·u / (1 - k·u) of its absolute value (Higham, Accuracy and Stability of
    Numerical Algorithms, §3.1, products of (1 + δ) factors)."""
    bt, _, at = matrices(m)
    per_row = lambda a: int((a != 0).sum(1).max())  # noqa: E731
    return 2 * per_row(bt) + 1 + channels + 2 * per_row(at) + 1


def gamma(k: int) -> float:
    return k * UNIT_ROUNDOFF / (1 - k * UNIT_ROUNDOFF)


def error_bound(x: Tensor, weight: Tensor, bias: Tensor | None, m: int) -> Tensor:
    """Componentwise bound on |fp32 Winograd − exact conv|: γ_k times the absolute chain
    |Aᵀ|[(|G||g||G|ᵀ) ⊙ (|Bᵀ||d||B|)]|A| summed over input channels (plus |bias|), in float64."""
    k = rounding_depth(m, weight.shape[1])
    return gamma(k) * reference(
        x.double(), weight.double(), None if bias is None else bias.double(), m, absolute=True
    )


def direct_magnitude(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """Σ|w||x| (+|bias|) per output: what a direct conv's rounding error is relative to."""
    b = None if bias is None else bias.double().abs()
    return F.conv2d(x.double().abs(), weight.double().abs(), b, padding=1)


@cache
def extension() -> Any:
    """The compiled winograd.cpp (built once per machine into torch's extension cache), or None
    when this machine has no C++ compiler."""
    if shutil.which("c++") is None and shutil.which("g++") is None:
        return None
    from torch.utils.cpp_extension import load

    return load(
        name="memnet_winograd_prototype",
        sources=[str(SOURCE)],
        extra_cflags=["-O3", "-march=native", "-mavx2", "-mfma"],
        verbose=False,
    )


class Winograd:
    """A 3×3 conv (stride 1, padding 1) as F(m×m, 3×3) Winograd with a pre-transformed weight.

    `gemm="own"` runs the extension's fused, blocked kernel; `gemm="torch"` transforms the whole
    image with the extension, multiplies the t² [tiles, C]·[C, K] pairs with torch.bmm (oneDNN /
    MKL sgemm), and transforms back."""

    def __init__(self, weight: Tensor, bias: Tensor | None, m: int, gemm: str = "own") -> None:
        if extension() is None:
            raise RuntimeError("the Winograd prototype needs a C++ compiler")
        self.m, self.gemm = m, gemm
        self.u = weight_transform(weight, m)
        out_channels = weight.shape[0]
        self.bias = (torch.zeros(out_channels) if bias is None else bias).float().contiguous()

    def __call__(self, x: Tensor) -> Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        ext = extension()
        if self.gemm == "own":
            return ext.conv(x, self.u, self.bias, self.m, BLOCK[self.m])
        v = ext.input_transform(x, self.m)
        return ext.output_transform(torch.bmm(v, self.u), self.bias, self.m, x.shape[2], x.shape[3])
