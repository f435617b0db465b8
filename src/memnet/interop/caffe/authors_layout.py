"""The authors' Caffe layout of MemNet: layer names, wiring, and where each layer lands in memnet.

Read from the deploy prototxts the authors publish (MemNet_M6R6_80C64, MemNet_M10R10_212C64);
block m and recursion r are written with two digits (`conv03_05_a`). Every pre-activation is a
BatchNorm, an in-place Scale (γ, β) and an in-place ReLU before its conv:

    bn_conv1 scale_conv1 relu1 conv1                                  FENet on the input "data"
    bn_convMM_RR_a … convMM_RR_a, bn_convMM_RR_b … convMM_RR_b         recursion r of block m
    eltwiseMM_RR = (previous) + convMM_RR_b                            the residual sum
    concatMM = [conv1, conv_transition_01 .. (m-1), eltwiseMM_01 .. RR]  long- then short-term
    bn_conv_transition_MM … conv_transition_MM (1×1)                   the gate unit: B_m
    bn_conv_end_MM … conv_end_MM, HR_recovery_MM = data + conv_end_MM   branch m's restoration
    weight_output_end_MM (Scale, no bias)                              w_m · y_m
    HR_recovery = Σ_m weight_output_end_MM                             the output

The convs of one block are shared by its recursions and `conv_end_MM` by all branches; the
training prototxts share them by parameter name, and Caffe writes a copy of the shared blobs
under every layer's name in the caffemodel.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from memnet.errors import MemNetError
from memnet.interop.caffe.net import CaffeLayer, CaffeNet

__all__ = ["INPUT", "OUTPUT", "LayoutLayer", "authors_layout", "check_graph", "infer_shape"]

INPUT = "<input>"  # the network's input blob ("data"), however it is declared
OUTPUT = "HR_recovery"
DATA_LAYER_TYPES = frozenset({"Input", "Data", "HDF5Data", "ImageData", "MemoryData", "DummyData"})


@dataclass(frozen=True)
class LayoutLayer:
    """One layer of the authors' network: what it computes from which layers, and its memnet home.

    `target` is the memnet module a BatchNorm, Scale or Convolution fills (a Scale fills the
    BatchNorm2d's affine), or `branch_weights.K` for the branch weight w_(K+1).
    """

    name: str
    type: str
    inputs: tuple[str, ...]
    target: str = ""
    kernel: int = 0  # convolutions: kernel size
    bias: bool = True  # Scale layers: whether it has a bias blob


def _pre_activation(bn: str, scale: str, relu: str, source: str, target: str) -> list[LayoutLayer]:
    return [
        LayoutLayer(bn, "BatchNorm", (source,), target),
        LayoutLayer(scale, "Scale", (bn,), target),
        LayoutLayer(relu, "ReLU", (scale,)),
    ]


def authors_layout(blocks: int, recursions: int) -> list[LayoutLayer]:
    """The layers of an M-block, R-recursion MemNet in the authors' file order."""
    layers = _pre_activation("bn_conv1", "scale_conv1", "relu1", INPUT, "fenet_pre.0")
    layers.append(LayoutLayer("conv1", "Convolution", ("relu1",), "fenet", kernel=3))
    gates: list[str] = []
    for m in range(1, blocks + 1):
        block = f"blocks.{m - 1}"
        previous = gates[-1] if gates else "conv1"
        short_term = []
        for r in range(1, recursions + 1):
            unit = f"{block}.recursions.{r - 1}"
            source = previous
            for half in ("a", "b"):
                tag = f"{m:02d}_{r:02d}_{half}"
                layers += _pre_activation(
                    f"bn_conv{tag}",
                    f"scale_conv{tag}",
                    f"relu{tag}",
                    source,
                    f"{unit}.pre_{half}.0",
                )
                layers.append(
                    LayoutLayer(
                        f"conv{tag}", "Convolution", (f"relu{tag}",), f"{block}.conv_{half}", 3
                    )
                )
                source = f"conv{tag}"
            eltwise = f"eltwise{m:02d}_{r:02d}"
            layers.append(LayoutLayer(eltwise, "Eltwise", (previous, source)))
            short_term.append(eltwise)
            previous = eltwise
        concat = f"concat{m:02d}"
        layers.append(LayoutLayer(concat, "Concat", ("conv1", *gates, *short_term)))
        tag = f"transition_{m:02d}"
        layers += _pre_activation(
            f"bn_conv_{tag}", f"scale_conv_{tag}", f"relu_{tag}", concat, f"{block}.gate.pre.0"
        )
        layers.append(
            LayoutLayer(f"conv_{tag}", "Convolution", (f"relu_{tag}",), f"{block}.gate.conv", 1)
        )
        gates.append(f"conv_{tag}")
    weighted = []
    for m, gate in enumerate(gates, start=1):
        tag = f"end_{m:02d}"
        layers += _pre_activation(
            f"bn_conv_{tag}",
            f"scale_conv_{tag}",
            f"relu_{tag}",
            gate,
            f"reconstruction_pre.{m - 1}.0",
        )
        layers.append(
            LayoutLayer(f"conv_{tag}", "Convolution", (f"relu_{tag}",), "reconstruction", 3)
        )
        recovery = f"HR_recovery_{m:02d}"
        layers.append(LayoutLayer(recovery, "Eltwise", (INPUT, f"conv_{tag}")))
        weight = f"weight_output_{tag}"
        layers.append(
            LayoutLayer(weight, "Scale", (recovery,), f"branch_weights.{m - 1}", bias=False)
        )
        weighted.append(weight)
    layers.append(LayoutLayer(OUTPUT, "Eltwise", tuple(weighted)))
    return layers


def infer_shape(net: CaffeNet) -> tuple[int, int]:
    """(blocks, recursions) of a network in the authors' naming, from its layer names."""
    names = [layer.name for layer in net.layers]
    blocks = {int(m.group(1)) for n in names if (m := re.fullmatch(r"conv_transition_(\d+)", n))}
    recursions = {int(m.group(1)) for n in names if (m := re.fullmatch(r"conv01_(\d+)_a", n))}
    if not blocks or not recursions:
        raise MemNetError(
            f"{net.source}: no layers named conv_transition_01 and conv01_01_a: not a MemNet "
            "in the authors' layer naming"
        )
    return max(blocks), max(recursions)


@dataclass(frozen=True)
class _Wired:
    layer: CaffeLayer
    sources: tuple[str, ...]  # the layers its bottoms come from (INPUT: the network input)
    inputs: frozenset[str]  # names of the network-input blobs it reads


def _wiring(net: CaffeNet) -> dict[str, _Wired]:
    """Every layer with the layers its inputs come from (in-place layers and Splits resolved)."""
    producer: dict[str, str] = {}  # blob name → the layer that last wrote it
    origin: dict[str, str] = {}  # a Split's copy of an input blob → that blob
    wired: dict[str, _Wired] = {}
    for layer in net.layers:
        sources = tuple(producer.get(bottom, INPUT) for bottom in layer.bottoms)
        inputs = frozenset(
            origin.get(b, b) for b, s in zip(layer.bottoms, sources, strict=True) if s == INPUT
        )
        if layer.type == "Split":  # Caffe's own fan-out: its tops are its bottom
            for top in layer.tops:
                if sources and sources[0] != INPUT:
                    producer[top] = sources[0]
                elif layer.bottoms:
                    origin[top] = origin.get(layer.bottoms[0], layer.bottoms[0])
            continue
        if layer.type in DATA_LAYER_TYPES:
            for top in layer.tops:
                producer.pop(top, None)
            continue
        if layer.name in wired:
            raise MemNetError(f"{net.source}: two layers are named {layer.name!r}")
        wired[layer.name] = _Wired(layer, sources, inputs)
        for top in layer.tops:
            producer[top] = layer.name
    return wired


def _on_path(wired: dict[str, _Wired], output: str) -> set[str]:
    seen: set[str] = set()
    stack = [output]
    while stack:
        name = stack.pop()
        if name in seen or name == INPUT:
            continue
        seen.add(name)
        stack.extend(wired[name].sources)
    return seen


def _same_inputs(kind: str, actual: Iterable[str], expected: Iterable[str]) -> bool:
    if kind == "Eltwise":  # a sum does not depend on the order of its terms
        return sorted(actual) == sorted(expected)
    return list(actual) == list(expected)


def _check_settings(layer: CaffeLayer, expected: LayoutLayer, where: str) -> None:
    """The settings memnet's modules fix: 'same' stride-1 convs, plain sums, eps 1e-5, …"""
    problems = []
    if expected.type == "Convolution":
        kernel = layer.param("convolution_param", "kernel_size") or layer.param(
            "convolution_param", "kernel_h"
        )
        pad = layer.param("convolution_param", "pad", layer.param("convolution_param", "pad_h", 0))
        for setting, value, wanted in (
            ("kernel_size", kernel, expected.kernel),
            ("pad", pad, (expected.kernel - 1) // 2),
            ("stride", layer.param("convolution_param", "stride", 1), 1),
            ("dilation", layer.param("convolution_param", "dilation", 1), 1),
            ("group", layer.param("convolution_param", "group", 1), 1),
            ("bias_term", layer.param("convolution_param", "bias_term", True), True),
        ):
            if any(v != wanted for v in _as_list(value)):
                problems.append(f"{setting} {value} (memnet needs {wanted})")
    elif expected.type == "BatchNorm":
        eps = float(layer.param("batch_norm_param", "eps", 1e-5))
        if abs(eps - 1e-5) > 1e-11:
            problems.append(f"eps {eps:g} (memnet's BatchNorm uses 1e-05)")
        if layer.param("batch_norm_param", "use_global_stats", True) is False:
            problems.append("use_global_stats false (a test net uses the stored statistics)")
    elif expected.type == "Scale":
        if bool(layer.param("scale_param", "bias_term", False)) != expected.bias:
            problems.append(f"bias_term {not expected.bias} (expected {expected.bias})")
        for setting in ("axis", "num_axes"):
            if layer.param("scale_param", setting, 1) != 1:
                problems.append(f"{setting} {layer.param('scale_param', setting)} (expected 1)")
    elif expected.type == "ReLU":
        if float(layer.param("relu_param", "negative_slope", 0.0)) != 0.0:
            problems.append("a leaky ReLU (memnet uses a plain ReLU)")
    elif expected.type == "Eltwise":
        if layer.param("eltwise_param", "operation", "SUM") != "SUM":
            problems.append(f"operation {layer.param('eltwise_param', 'operation')} (expected SUM)")
        coeff = layer.param("eltwise_param", "coeff")
        if coeff is not None and any(float(c) != 1.0 for c in _as_list(coeff)):
            problems.append(f"coefficients {coeff} (memnet sums with weight 1)")
    elif expected.type == "Concat":
        axis = layer.param("concat_param", "axis", layer.param("concat_param", "concat_dim", 1))
        if axis != 1:
            problems.append(f"axis {axis} (expected the channel axis 1)")
    if problems:
        raise MemNetError(f"{where}: layer {layer.name!r} has {'; '.join(problems)}")


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def check_graph(net: CaffeNet, blocks: int, recursions: int) -> list[LayoutLayer]:
    """The authors' layout of an M-R MemNet; a clear error unless `net` computes exactly it.

    Layers that do not feed the output (a training net's data and loss layers) are ignored.
    """
    layout = authors_layout(blocks, recursions)
    wired = _wiring(net)
    if OUTPUT not in wired:
        raise MemNetError(
            f"{net.source}: no layer named {OUTPUT!r}: not a MemNet in the authors' layout "
            "(or a truncated file)"
        )
    on_path = _on_path(wired, OUTPUT)
    expected = {layer.name: layer for layer in layout}
    for layer in layout:
        if layer.name not in on_path:
            where = "has no" if layer.name not in wired else "does not use its"
            raise MemNetError(
                f"{net.source}: the network {where} layer {layer.name!r}, which an "
                f"M{blocks}R{recursions} MemNet in the authors' layout has"
            )
        actual, sources = wired[layer.name].layer, wired[layer.name].sources
        if actual.type != layer.type:
            raise MemNetError(
                f"{net.source}: layer {layer.name!r} is a {actual.type}, expected a {layer.type}"
            )
        if not _same_inputs(layer.type, sources, layer.inputs):
            raise MemNetError(
                f"{net.source}: layer {layer.name!r} reads {list(sources)}, expected "
                f"{list(layer.inputs)} ('{INPUT}' is the network input)"
            )
        _check_settings(actual, layer, str(net.source))
    input_blobs = set().union(*(wired[name].inputs for name in on_path))
    if len(input_blobs) > 1:
        raise MemNetError(
            f"{net.source}: the network reads {len(input_blobs)} inputs ({', '.join(sorted(input_blobs))}); "
            "a MemNet has one"
        )
    extra = sorted(on_path - set(expected))
    if extra:
        first = wired[extra[0]].layer
        raise MemNetError(
            f"{net.source}: layer {first.name!r} ({first.type}) feeds {OUTPUT!r} but is not part "
            "of the authors' MemNet layout"
        )
    return layout
