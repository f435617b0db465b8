"""The network is MemNet as released: structure, sharing, sizes, receptive field, behaviour."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch import nn

from memnet.model import (
    PRESETS,
    MemNet,
    MemNetConfig,
    MemoryBlock,
    RecursiveUnit,
    create_model,
    summarize,
)
from memnet.training.losses import multi_supervision_loss
from rounding import float32_bound


@pytest.mark.parametrize(
    ("name", "conv_weights", "parameters", "batchnorms", "mflop", "field"),
    [
        ("m6r6", 676_992, 695_497, 85, 5.78, 149),
        ("m10r10", 1_373_312, 1_422_029, 221, 16.03, 405),
    ],
)
def test_paper_sizes(
    name: str, conv_weights: int, parameters: int, batchnorms: int, mflop: float, field: int
) -> None:
    summary = summarize(create_model(name))
    assert summary.conv_weights == conv_weights
    assert summary.parameters == parameters
    assert summary.batchnorm_layers == batchnorms
    assert round(summary.mflop_per_pixel, 2) == mflop
    assert summary.receptive_field == field


def _spatial_conv_weights(model: MemNet) -> int:
    return sum(
        m.weight.numel()
        for m in model.modules()
        if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)
    )


def test_recursion_convs_are_shared() -> None:
    shallow = MemNet(blocks=3, recursions=1, channels=8)
    deep = MemNet(blocks=3, recursions=5, channels=8)
    # 3×3 conv weights do not depend on R; only the gate's 1×1 conv grows (by C·C per recursion
    # and block) because it sees every short-term memory.
    assert _spatial_conv_weights(shallow) == _spatial_conv_weights(deep)
    gate_growth = sum(b.gate.conv.weight.numel() for b in deep.blocks) - sum(
        b.gate.conv.weight.numel() for b in shallow.blocks
    )
    assert gate_growth == 3 * 4 * 8 * 8
    # recursive units own no convolution of their own
    for block in deep.blocks:
        for unit in block.recursions:
            assert not any(isinstance(m, nn.Conv2d) for m in unit.modules())


def test_shared_conv_is_used_by_every_recursion() -> None:
    model = MemNet(blocks=2, recursions=4, channels=8).eval()
    block = model.blocks[0]
    assert isinstance(block, MemoryBlock)
    outputs: list[torch.Tensor] = []
    hooks = [
        unit.register_forward_hook(lambda m, i, o: outputs.append(o.clone()))
        for unit in block.recursions
    ]
    # Each recursion's change could also come from its input (the previous recursion); the
    # call count shows that every one of the 4 recursions runs the block's own pair of convs.
    calls: Counter[str] = Counter()
    for label, conv in (("a", block.conv_a), ("b", block.conv_b)):
        hooks.append(conv.register_forward_hook(lambda m, i, o, label=label: calls.update([label])))
    x = torch.rand(1, 1, 12, 12)
    with torch.no_grad():
        model(x)
        assert calls == {"a": 4, "b": 4}
        before = list(outputs)
        outputs.clear()
        block.conv_b.weight.add_(0.1)
        model(x)
    for hook in hooks:
        hook.remove()
    assert len(before) == len(outputs) == 4
    for r, (old, new) in enumerate(zip(before, outputs, strict=True)):
        assert not torch.allclose(old, new), (
            f"recursion {r + 1} ignored a change of the shared conv"
        )


def test_every_recursion_has_its_own_batchnorm() -> None:
    model = create_model("m6r6")
    norms = [
        id(bn)
        for block in model.blocks
        for unit in block.recursions
        for bn in unit.modules()
        if isinstance(bn, nn.BatchNorm2d)
    ]
    assert len(norms) == 6 * 6 * 2
    assert len(set(norms)) == len(norms)
    assert all(isinstance(u, RecursiveUnit) for b in model.blocks for u in b.recursions)
    recon_norms = {id(pre[0]) for pre in model.reconstruction_pre}
    assert len(recon_norms) == 6


def test_gate_sees_long_term_then_short_term_memories() -> None:
    model = MemNet(blocks=3, recursions=2, channels=4)
    for m, block in enumerate(model.blocks, start=1):
        assert block.gate.conv.in_channels == (m + 2) * 4


@pytest.mark.slow
def test_receptive_field_is_exactly_149_pixels() -> None:
    model = create_model("m6r6").double().eval()
    size, centre = 165, 82
    x = torch.rand(1, 1, size, size, dtype=torch.float64)
    perturbed = x.clone()
    perturbed[0, 0, centre, centre] += 1.0
    with torch.no_grad():
        changed = (model(perturbed) - model(x)).abs()[0, 0] > 0
    rows = torch.nonzero(changed.any(dim=1)).flatten()
    cols = torch.nonzero(changed.any(dim=0)).flatten()
    half = 149 // 2
    assert (rows.min().item(), rows.max().item()) == (centre - half, centre + half)
    assert (cols.min().item(), cols.max().item()) == (centre - half, centre + half)
    # and nearly all of the window responds (a few paths end in inactive ReLUs)
    window = changed[centre - half : centre + half + 1, centre - half : centre + half + 1]
    assert window.float().mean().item() > 0.9


def test_every_parameter_learns_from_multi_supervision() -> None:
    model = MemNet(blocks=3, recursions=2, channels=8).train()
    x = torch.rand(4, 1, 16, 16)
    target = torch.rand(4, 1, 16, 16)
    out = model(x, branches=True)
    assert len(out.branches) == 3
    multi_supervision_loss(out.restored, out.branches, target).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.count_nonzero(param.grad) > 0, name


@pytest.mark.parametrize("scaling", ["caffe", "mean", "l1"])
def test_loss_scalings(scaling: str) -> None:
    target = torch.zeros(2, 1, 3, 3)
    restored = torch.ones(2, 1, 3, 3)
    branches = [torch.ones(2, 1, 3, 3) * 2, torch.zeros(2, 1, 3, 3)]
    loss = multi_supervision_loss(restored, branches, target, scaling)  # type: ignore[arg-type]
    if scaling == "caffe":  # (18·1 + 18·4 + 0) / (2·2)
        assert loss.item() == pytest.approx(90 / 4)
    elif scaling == "mean":  # 1/3 · 1 + (2/3)/2 · (4 + 0)
        assert loss.item() == pytest.approx(1 / 3 + 4 / 3)
    else:  # 1/3 · 1 + (2/3)/2 · (2 + 0): absolute errors, where the squares give 4
        assert loss.item() == pytest.approx(1 / 3 + 2 / 3)


def test_weighted_output_is_the_sum_of_weighted_branches() -> None:
    model = MemNet(blocks=3, recursions=2, channels=8).eval()
    x = torch.rand(1, 1, 10, 10)
    with torch.no_grad():
        out = model(x, branches=True)
        expected = sum(w * b for w, b in zip(model.branch_weights, out.branches, strict=True))
    torch.testing.assert_close(out.restored, expected)


def test_identity_init_starts_as_the_input() -> None:
    model = MemNet(blocks=3, recursions=2, channels=8, identity_init=True).eval()
    x = torch.rand(2, 1, 9, 11)
    with torch.no_grad():
        torch.testing.assert_close(model(x), x)


def test_eval_is_deterministic_and_layout_independent() -> None:
    model = create_model("m4r4c32").eval()
    # Keep the output at image scale (as a trained model's), where the rounding bound is meaningful.
    model.reconstruction.weight.data.mul_(0.02)
    x = torch.rand(2, 1, 40, 36)
    with torch.no_grad():
        a = model(x)
        b = model(x)
        c = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    assert torch.equal(a, b)
    # channels_last runs other kernels: the same arithmetic up to float32 rounding
    assert (a - c).abs().max().item() <= float32_bound(model.config, a.abs().max().item())


def test_init_is_kaiming_with_zero_biases() -> None:
    model = create_model("m6r6")
    conv = model.blocks[2].conv_a
    expected_std = (2.0 / (64 * 9)) ** 0.5
    assert conv.weight.std().item() == pytest.approx(expected_std, rel=0.05)
    assert all(
        torch.count_nonzero(m.bias) == 0 for m in model.modules() if isinstance(m, nn.Conv2d)
    )


def test_unknown_preset_lists_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown MemNet preset 'm7r7'.*m6r6"):
        create_model("m7r7")


@pytest.mark.parametrize("field", ["blocks", "recursions", "channels", "in_channels"])
@pytest.mark.parametrize("value", [0, -1, 2.5])
def test_non_positive_sizes_are_rejected(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"{field} must be a positive integer"):
        MemNetConfig(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", [(1, 3, 8, 8), (1, 8, 8), (8, 8)])
def test_wrong_input_shape_is_rejected(shape: tuple[int, ...]) -> None:
    model = MemNet(blocks=1, recursions=1, channels=4)
    with pytest.raises(ValueError, match=r"expects input of shape \(N, 1, H, W\)"):
        model(torch.zeros(shape))


def test_presets_build() -> None:
    for name, config in PRESETS.items():
        assert create_model(name).config == config
