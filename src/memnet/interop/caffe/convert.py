"""Convert the authors' trained Caffe MemNet (.caffemodel) into a memnet weights file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from memnet import __version__
from memnet.errors import MemNetError
from memnet.fsutil import sha256_of
from memnet.interop.caffe.authors_layout import LayoutLayer, check_graph, infer_shape
from memnet.interop.caffe.net import CaffeLayer, CaffeNet, read_caffemodel, read_prototxt
from memnet.model import MemNet
from memnet.weights.files import META_LEVELS, META_TASK, META_VERSION, save_weights

__all__ = ["AUTHORS_LEVELS", "Conversion", "convert_caffemodel", "convert_net"]

# What the authors trained each released model on (one model per task covers these levels).
AUTHORS_LEVELS = {"sr": [2, 3, 4], "denoise": [30, 50, 70], "jpeg": [10, 20]}


@dataclass
class Conversion:
    """A converted network and what it was made from."""

    model: MemNet
    metadata: dict[str, str]


def _squeezed(shape: tuple[int, ...]) -> tuple[int, ...]:
    # Legacy blobs are 4-D (num, channels, height, width): a bias of 64 is (1, 1, 1, 64).
    return tuple(d for d in shape if d != 1)


def _fit(blob: NDArray[np.float32], shape: tuple[int, ...], where: str) -> NDArray[np.float32]:
    if _squeezed(blob.shape) != _squeezed(shape):
        raise MemNetError(f"{where} has shape {blob.shape}; memnet expects {shape}")
    return blob.reshape(shape)


class _Filler:
    """Fills a MemNet's state dict from Caffe blobs, checking each tensor is filled once."""

    def __init__(self, model: MemNet, source: Path) -> None:
        self.state = {k: v.clone() for k, v in model.state_dict().items()}
        self.filled: dict[str, str] = {}  # state key → the Caffe layer it came from
        self.source = source

    def put(self, key: str, value: NDArray[np.float32] | NDArray[np.float64], layer: str) -> None:
        target = self.state[key]
        where = f"{self.source}: layer {layer!r}"
        array = _fit(np.asarray(value), tuple(target.shape), f"{where} → {key}")
        if key in self.filled:
            raise MemNetError(f"{where} fills {key}, already filled by {self.filled[key]!r}")
        target.copy_(torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)))
        self.filled[key] = layer

    def unfilled(self) -> list[str]:
        return [
            k for k in self.state if k not in self.filled and not k.endswith("num_batches_tracked")
        ]


def _blobs(layer: CaffeLayer, count: int, source: Path) -> list[NDArray[np.float32]]:
    if len(layer.blobs) != count:
        raise MemNetError(
            f"{source}: layer {layer.name!r} ({layer.type}) has {len(layer.blobs)} weight blobs, "
            f"expected {count}"
        )
    return layer.blobs


def _shared_conv(
    group: list[LayoutLayer], graph: CaffeNet, weights: dict[str, CaffeLayer], source: Path
) -> tuple[str, list[NDArray[np.float32]]]:
    """The one weight set of convs memnet shares (a block's recursions, the reconstruction).

    Every layer's copy that the caffemodel holds must be identical; a layer without a copy is
    accepted only when the prototxt shares its parameters by name, as Caffe then would.
    """
    graph_layers = graph.by_name()
    copies = [
        (g.name, weights[g.name].blobs)
        for g in group
        if g.name in weights and weights[g.name].blobs
    ]
    if not copies:
        raise MemNetError(
            f"{source}: no weights for layer {group[0].name!r} (the caffemodel of a smaller "
            "network, or a truncated file?)"
        )
    first_name, first = copies[0]
    for name, blobs in copies[1:]:
        same = len(blobs) == len(first) and all(
            a.shape == b.shape and np.array_equal(a, b) for a, b in zip(blobs, first, strict=True)
        )
        if not same:
            raise MemNetError(
                f"{source}: layers {first_name!r} and {name!r} hold different weights, but memnet "
                "shares one conv between them (as the authors' training net does)"
            )
    with_copy = {name for name, _ in copies}
    shared_names = set(graph_layers[first_name].param_names()) - {""}
    for g in group:
        if g.name not in with_copy and not (
            shared_names and set(graph_layers[g.name].param_names()) == shared_names
        ):
            raise MemNetError(
                f"{source}: no weights for layer {g.name!r}, and the network does not share "
                f"them with {first_name!r} by parameter name"
            )
    return first_name, first


def _conv_blobs(
    group: list[LayoutLayer], graph: CaffeNet, by_name: dict[str, CaffeLayer], source: Path
) -> tuple[str, tuple[NDArray[np.float32], NDArray[np.float32]]]:
    name, blobs = _shared_conv(group, graph, by_name, source)
    if len(blobs) != 2:
        raise MemNetError(
            f"{source}: layer {name!r} has {len(blobs)} weight blobs, expected 2 (weights, bias)"
        )
    return name, (blobs[0], blobs[1])


def convert_net(weights: CaffeNet, graph: CaffeNet | None = None) -> MemNet:
    """Build the memnet MemNet equal to a Caffe net in the authors' layout.

    `graph` is the network description to follow (a deploy prototxt); by default the one stored
    in the caffemodel itself.
    """
    graph = graph or weights
    source = weights.source
    blocks, recursions = infer_shape(graph)
    layout = check_graph(graph, blocks, recursions)
    by_name = {layer.name: layer for layer in weights.layers}
    known = {layer.name for layer in layout}
    stray = [layer.name for layer in weights.layers if layer.blobs and layer.name not in known]
    if stray:
        raise MemNetError(
            f"{source}: layer {stray[0]!r} holds weights but is not in an M{blocks}R{recursions} "
            "MemNet (a caffemodel of another network, or the prototxt of another model?)"
        )
    missing = [
        layer.name
        for layer in layout
        if layer.type in ("BatchNorm", "Scale") and layer.name not in by_name
    ]
    if missing:
        raise MemNetError(
            f"{source}: no weights for layer {missing[0]!r} (the caffemodel of a smaller "
            "network, or a truncated file?)"
        )

    conv1 = next(layer for layer in layout if layer.name == "conv1")
    fenet_weight = _conv_blobs([conv1], graph, by_name, source)[1][0]
    if fenet_weight.ndim != 4:
        raise MemNetError(
            f"{source}: layer 'conv1' weights have shape {fenet_weight.shape}, not 4-D"
        )
    channels, in_channels = int(fenet_weight.shape[0]), int(fenet_weight.shape[1])
    model = MemNet(blocks, recursions, channels, in_channels)
    filler = _Filler(model, source)

    convs: dict[str, list[LayoutLayer]] = {}
    branch_weights = np.zeros(blocks, dtype=np.float64)
    for layer in layout:
        if layer.type == "Convolution":
            convs.setdefault(layer.target, []).append(layer)
        elif layer.type == "BatchNorm":
            mean, var, factor = _blobs(by_name[layer.name], 3, source)
            if factor.size != 1:
                raise MemNetError(
                    f"{source}: layer {layer.name!r} has a scale-factor blob of {factor.size} values"
                )
            # Caffe keeps running sums; the third blob is their total weight (0 means empty).
            total = float(factor.reshape(-1)[0])
            scale = 0.0 if total == 0 else 1.0 / total
            filler.put(f"{layer.target}.running_mean", mean.astype(np.float64) * scale, layer.name)
            filler.put(f"{layer.target}.running_var", var.astype(np.float64) * scale, layer.name)
        elif layer.type == "Scale" and layer.bias:  # the BatchNorm2d's affine γ, β
            gamma, beta = _blobs(by_name[layer.name], 2, source)
            filler.put(f"{layer.target}.weight", gamma, layer.name)
            filler.put(f"{layer.target}.bias", beta, layer.name)
        elif layer.type == "Scale":  # w_m: one scalar per branch
            (weight,) = _blobs(by_name[layer.name], 1, source)
            if weight.size != 1:
                raise MemNetError(
                    f"{source}: layer {layer.name!r} holds {weight.size} weights, expected 1"
                )
            branch_weights[int(layer.target.rsplit(".", 1)[1])] = float(weight.reshape(-1)[0])
    filler.put("branch_weights", branch_weights, "weight_output_end_*")
    for target, group in convs.items():
        name, (weight, bias) = _conv_blobs(group, graph, by_name, source)
        filler.put(f"{target}.weight", weight, name)
        filler.put(f"{target}.bias", bias, name)
    unfilled = filler.unfilled()
    if unfilled:
        raise MemNetError(f"{source}: nothing in the caffemodel fills memnet's {unfilled[0]}")
    model.load_state_dict(filler.state, strict=True)
    return model.eval()


def check_conversion_paths(
    caffemodel: Path, output: Path, *, prototxt: Path | None = None, overwrite: bool = False
) -> None:
    """Refuse missing inputs and an output that is not a new (or, with overwrite, replaceable)
    .safetensors file in an existing folder, before anything is read."""
    if not caffemodel.is_file():
        raise MemNetError(f"{caffemodel}: file not found")
    if prototxt is not None and not prototxt.is_file():
        raise MemNetError(f"{prototxt}: file not found")
    if output.suffix != ".safetensors":
        raise MemNetError(f"-o {output}: the output must be a .safetensors file")
    if output.exists() and not overwrite:
        raise MemNetError(f"-o {output}: already exists (pass --overwrite to replace it)")
    if output.exists() and output.resolve() in {
        caffemodel.resolve(),
        (prototxt or caffemodel).resolve(),
    }:
        raise MemNetError(f"-o {output}: would overwrite an input file")
    if not output.parent.is_dir():
        raise MemNetError(f"-o {output}: folder {output.parent} does not exist")


def convert_caffemodel(
    caffemodel: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    task: str,
    prototxt: str | os.PathLike[str] | None = None,
) -> Conversion:
    """Read an authors' .caffemodel (and optionally its deploy prototxt); write memnet weights."""
    if task not in AUTHORS_LEVELS:
        raise MemNetError(f"unknown task {task!r}; use one of {', '.join(AUTHORS_LEVELS)}")
    caffemodel, output = Path(caffemodel), Path(output)
    weights = read_caffemodel(caffemodel)
    graph = read_prototxt(prototxt) if prototxt is not None else None
    model = convert_net(weights, graph)
    metadata = {
        META_TASK: task,
        META_LEVELS: json.dumps(AUTHORS_LEVELS[task]),
        "memnet.source": caffemodel.name,
        "memnet.source_sha256": sha256_of(caffemodel),
        "memnet.source_format": "caffemodel",
        META_VERSION: __version__,
    }
    if prototxt is not None:
        metadata["memnet.prototxt"] = Path(prototxt).name
        metadata["memnet.prototxt_sha256"] = sha256_of(Path(prototxt))
    save_weights(model, output, metadata)
    return Conversion(model, metadata)
