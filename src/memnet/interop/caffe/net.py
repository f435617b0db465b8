"""Caffe networks as memnet reads them: layers with their wiring, settings and weight blobs.

`read_caffemodel` decodes a binary `.caffemodel` (its own copy of the network description plus
the trained blobs); `read_prototxt` a text network description (no blobs). Both give the layers
a Caffe test-phase net would build, in file order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from memnet.errors import MemNetError
from memnet.interop.caffe import text_format, wire
from memnet.interop.caffe.wire import Message

__all__ = ["CaffeLayer", "CaffeNet", "read_caffemodel", "read_prototxt"]


@dataclass
class CaffeLayer:
    """One layer: its name, type, bottom and top blob names, settings and weight blobs."""

    name: str
    type: str
    bottoms: list[str]
    tops: list[str]
    message: Message  # every decoded field, e.g. message["convolution_param"]
    blobs: list[NDArray[np.float32]] = field(default_factory=list)

    def param(self, group: str, name: str, default: Any = None) -> Any:
        """A setting of the layer, e.g. param("convolution_param", "pad", 0); repeated → list."""
        groups = self.message.get(group) or [{}]
        values = groups[-1].get(name)
        if not values:
            return default
        return values if len(values) > 1 else values[0]

    def param_names(self) -> list[str]:
        """The names its parameter blobs are shared under (ParamSpec.name; '' when unnamed)."""
        names = []
        for spec in self.message.get("param", []):
            given = spec.get("name") or [""]
            names.append(str(given[-1]))
        return names


@dataclass
class CaffeNet:
    """The layers of a network and the file they came from."""

    source: Path
    name: str
    layers: list[CaffeLayer]

    def by_name(self) -> dict[str, CaffeLayer]:
        return {layer.name: layer for layer in self.layers}


def _blob_array(blob: Message, where: str) -> NDArray[np.float32]:
    """A BlobProto as an array of its shape (`shape`, else the legacy num/channels/h/w)."""
    parts = blob.get("data", [])
    doubles = blob.get("double_data", [])
    if parts:
        values = np.concatenate([np.atleast_1d(np.asarray(p, dtype=np.float32)) for p in parts])
    elif doubles:
        values = np.concatenate([np.atleast_1d(np.asarray(p, dtype=np.float64)) for p in doubles])
        values = values.astype(np.float32)
    else:
        values = np.zeros(0, dtype=np.float32)
    shapes = blob.get("shape")
    if shapes:
        dims = [int(d) for d in shapes[-1].get("dim", [])]
    else:
        dims = [int((blob.get(k) or [0])[-1]) for k in ("num", "channels", "height", "width")]
        if not any(dims):
            dims = [values.size]
    if any(d < 0 for d in dims) or int(np.prod(dims, dtype=np.int64)) != values.size:
        raise MemNetError(
            f"{where}: blob of shape {tuple(dims)} holds {values.size} values "
            "(truncated or damaged file?)"
        )
    return values.reshape(dims)


def _in_test_phase(message: Message) -> bool:
    # Caffe builds a deploy net in the TEST phase: layers included only in TRAIN are left out.
    includes, excludes = message.get("include", []), message.get("exclude", [])
    if includes:
        return any(rule.get("phase", ["TEST"])[-1] == "TEST" for rule in includes)
    return not any(rule.get("phase", [None])[-1] == "TEST" for rule in excludes)


def _layers(net: Message, source: Path, with_blobs: bool) -> list[CaffeLayer]:
    if net.get("layers") and not net.get("layer"):
        raise MemNetError(
            f"{source}: uses Caffe's legacy V1 'layers' format, which has no BatchNorm or Scale "
            "layers, so it cannot describe a MemNet"
        )
    layers = []
    for index, message in enumerate(net.get("layer", [])):
        if not _in_test_phase(message):
            continue
        name = str((message.get("name") or [f"#{index}"])[-1])
        layer = CaffeLayer(
            name=name,
            type=str((message.get("type") or [""])[-1]),
            bottoms=[str(b) for b in message.get("bottom", [])],
            tops=[str(t) for t in message.get("top", [])],
            message=message,
        )
        if with_blobs:
            layer.blobs = [
                _blob_array(blob, f"{source}: layer {name!r} blob {i}")
                for i, blob in enumerate(message.get("blobs", []))
            ]
        layers.append(layer)
    return layers


def read_caffemodel(path: str | os.PathLike[str]) -> CaffeNet:
    """Decode a binary .caffemodel: its layers with their trained blobs."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise MemNetError(f"{path}: cannot read ({error.strerror or error})") from None
    if not data:
        raise MemNetError(f"{path}: the file is empty")
    try:
        net = wire.decode(data, wire.NET_PARAMETER)
    except wire.WireError as error:
        raise MemNetError(f"{path}: not a readable caffemodel ({error})") from None
    layers = _layers(net, path, with_blobs=True)
    if not layers:
        raise MemNetError(f"{path}: not a caffemodel (no Caffe layers found in it)")
    return CaffeNet(path, str((net.get("name") or [""])[-1]), layers)


def read_prototxt(path: str | os.PathLike[str]) -> CaffeNet:
    """Parse a text .prototxt network description (layers without blobs)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise MemNetError(f"{path}: not a prototxt (the file is not UTF-8 text)") from None
    except OSError as error:
        raise MemNetError(f"{path}: cannot read ({error.strerror or error})") from None
    try:
        net = text_format.parse(text)
    except text_format.TextFormatError as error:
        raise MemNetError(f"{path}: not a readable prototxt ({error})") from None
    layers = _layers(net, path, with_blobs=False)
    if not layers:
        raise MemNetError(f"{path}: not a Caffe network description (no 'layer' entries)")
    return CaffeNet(path, str((net.get("name") or [""])[-1]), layers)
