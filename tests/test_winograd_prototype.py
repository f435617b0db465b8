"""The Winograd prototype (benchmarks/winograd) against a float64 conv, within its fp32 bound."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "winograd"))
import prototype


def _case(channels: int, h: int, w: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(channels + h)
    x = torch.randn(1, channels, h, w, generator=gen).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(channels, channels, 3, 3, generator=gen) / (3 * channels**0.5)
    return x, weight, torch.randn(channels, generator=gen)


@pytest.mark.parametrize("m", [2, 4])
def test_reference_is_the_conv(m: int) -> None:
    x, weight, bias = (t.double() for t in _case(8, 11, 13))
    exact = F.conv2d(x, weight, bias, padding=1)
    # float64 Winograd: its own bound, with float64's unit roundoff instead of fp32's
    scale = prototype.reference(x, weight, bias, m, absolute=True)
    k = prototype.rounding_depth(m, 8)
    assert (
        (prototype.reference(x, weight, bias, m) - exact).abs() <= k * 2.0**-53 * scale * 1.01
    ).all()


@pytest.mark.parametrize("gemm", ["own", "torch"])
@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize(("channels", "h", "w"), [(32, 17, 23), (64, 12, 30)])
def test_kernels_within_the_fp32_bound(m: int, gemm: str, channels: int, h: int, w: int) -> None:
    if prototype.extension() is None:
        pytest.skip("no C++ compiler to build the Winograd prototype")
    x, weight, bias = _case(channels, h, w)
    exact = F.conv2d(x.double(), weight.double(), bias.double(), padding=1)
    y = prototype.Winograd(weight, bias, m, gemm)(x)
    # odd sizes: partial tiles at the bottom and right edge are cropped correctly
    assert y.shape == exact.shape
    assert ((y.double() - exact).abs() <= prototype.error_bound(x, weight, bias, m)).all()
