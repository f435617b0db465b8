"""`memnet convert`: caffemodels written here in the wire format, in the authors' Caffe layout.

The authors' deploy prototxts (tyshiwo/MemNet, test/MemNet_M6R6_80C64 and MemNet_M10R10_212C64)
name and wire their layers by one pattern; `authors_layers` below writes it out for any M and R.
The caffemodels are encoded by `encode_net`, a protobuf writer of its own (field numbers from
caffe.proto), and the reference output is a NumPy interpreter of the layer list, independent
of memnet's parser, layout and model.
"""

from __future__ import annotations

import json
import math
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from memnet.cli import main
from memnet.evaluation.authors_tiles import authors_tiling
from memnet.inference.engine import Restorer
from memnet.interop.caffe import convert_caffemodel
from memnet.interop.caffe.authors_layout import authors_layout
from memnet.model import MemNet, MemNetConfig
from memnet.weights.files import load_weights, read_metadata
from memnet.weights.zoo import sha256_of
from rounding import EPS32, float32_bound
from test_eval import write_set

Layer = dict[str, Any]

# --------------------------------------------------------------------------------------------
# the authors' layout, as read from their deploy prototxts
# --------------------------------------------------------------------------------------------


def authors_layers(blocks: int, recursions: int, channels: int, *, share: bool) -> list[Layer]:
    """Layers of an M-block R-recursion MemNet named and wired as in the authors' prototxts.

    `share` names the recursion convs' parameters per block (conv01_wa, conv01_ba, …) as the
    M10R10 deploy file and both training files do; the M6R6 deploy file leaves them unnamed.
    The reconstruction conv is always shared as Recon_w / Recon_b.
    """
    layers: list[Layer] = []

    def pre(bn: str, scale: str, relu: str, bottom: str) -> str:
        layers.append({"name": bn, "type": "BatchNorm", "bottom": [bottom], "top": [bn]})
        layers.append(
            {"name": scale, "type": "Scale", "bottom": [bn], "top": [bn], "bias_term": True}
        )
        layers.append({"name": relu, "type": "ReLU", "bottom": [bn], "top": [bn]})
        return bn

    def conv(name: str, bottom: str, out: int, kernel: int, names: list[str] | None) -> None:
        layers.append(
            {"name": name, "type": "Convolution", "bottom": [bottom], "top": [name]}
            | {"num_output": out, "kernel": kernel, "param_names": names}
        )

    conv("conv1", pre("bn_conv1", "scale_conv1", "relu1", "data"), channels, 3, None)
    gates: list[str] = []
    for m in range(1, blocks + 1):
        previous = gates[-1] if gates else "conv1"
        short_term = []
        for r in range(1, recursions + 1):
            source = previous
            for half in "ab":
                tag = f"{m:02d}_{r:02d}_{half}"
                names = [f"conv{m:02d}_w{half}", f"conv{m:02d}_b{half}"] if share else None
                conv(f"conv{tag}", pre(f"bn_conv{tag}", f"scale_conv{tag}", f"relu{tag}", source),
                     channels, 3, names)  # fmt: skip
                source = f"conv{tag}"
            name = f"eltwise{m:02d}_{r:02d}"
            layers.append(
                {"name": name, "type": "Eltwise", "bottom": [previous, source], "top": [name]}
            )
            short_term.append(name)
            previous = name
        concat = f"concat{m:02d}"
        layers.append(
            {
                "name": concat,
                "type": "Concat",
                "bottom": ["conv1", *gates, *short_term],
                "top": [concat],
            }
        )
        t = f"transition_{m:02d}"
        conv(
            f"conv_{t}",
            pre(f"bn_conv_{t}", f"scale_conv_{t}", f"relu_{t}", concat),
            channels,
            1,
            None,
        )
        gates.append(f"conv_{t}")
    weighted = []
    for m, gate in enumerate(gates, start=1):
        e = f"end_{m:02d}"
        conv(f"conv_{e}", pre(f"bn_conv_{e}", f"scale_conv_{e}", f"relu_{e}", gate), 1, 3,
             ["Recon_w", "Recon_b"])  # fmt: skip
        hr = f"HR_recovery_{m:02d}"
        layers.append({"name": hr, "type": "Eltwise", "bottom": ["data", f"conv_{e}"], "top": [hr]})
        w = f"weight_output_{e}"
        layers.append({"name": w, "type": "Scale", "bottom": [hr], "top": [w], "bias_term": False})
        weighted.append(w)
    layers.append(
        {"name": "HR_recovery", "type": "Eltwise", "bottom": weighted, "top": ["HR_recovery"]}
    )
    return layers


def prototxt(layers: list[Layer], name: str = "MemNet_test") -> str:
    """The layers as a deploy prototxt, formatted like the authors' files."""
    lines = [f'name: "{name}"', 'input: "data"'] + ["input_dim: 1"] * 2 + ["input_dim: 48"] * 2
    for layer in layers:
        lines += ["layer {", f'    name: "{layer["name"]}"', f'    type: "{layer["type"]}"']
        lines += [f'    bottom: "{b}"' for b in layer["bottom"]]
        lines += [f'    top: "{t}"' for t in layer["top"]]
        kind = layer["type"]
        if kind == "BatchNorm":
            lines += ["    param {", "        lr_mult: 0", "    }"] * 3
        elif kind == "Scale":
            lines += [
                "    scale_param {",
                f"        bias_term: {str(layer['bias_term']).lower()}",
                "    }",
            ]
        elif kind == "Convolution":
            for i, mult in enumerate(("1.000000", "0.100000")):
                names = layer["param_names"]
                lines += ["    param {"]
                lines += [f'        name: "{names[i]}"'] if names else []
                lines += [f"        lr_mult: {mult}", "    }"]
            k = layer["kernel"]
            lines += [
                "    convolution_param {",
                f"        num_output: {layer['num_output']}",
                f"        kernel_size: {k}",
                "        stride: 1",
                f"        pad: {(k - 1) // 2}",
                '        weight_filler {\n            type: "msra"\n        }',
                "    }",
            ]
        elif kind == "Eltwise":
            lines += ["    eltwise_param {", "        operation: SUM", "    }"]
        elif kind == "Concat":
            lines += ["    concat_param {", "        axis: 1", "    }"]
        lines.append("}")
    return "\n".join(lines) + "\n"


def make_blobs(layers: list[Layer], seed: int = 0) -> dict[str, list[NDArray[np.float32]]]:
    """Random trained-looking blobs for every parametric layer, shared convs copied per layer."""
    rng = np.random.default_rng(seed)
    channels = {"data": 1}
    blobs: dict[str, list[NDArray[np.float32]]] = {}
    shared: dict[str, list[NDArray[np.float32]]] = {}
    for layer in layers:
        kind, c = layer["type"], channels[layer["bottom"][0]]
        if kind == "BatchNorm":
            factor = np.float32(rng.uniform(50, 1000))  # Caffe's moving-average weight
            mean = rng.normal(0, 0.3, c) * factor
            var = rng.uniform(0.5, 2.0, c) * factor
            blobs[layer["name"]] = [a.astype(np.float32) for a in (mean, var, np.array([factor]))]
        elif kind == "Scale" and layer["bias_term"]:
            blobs[layer["name"]] = [
                rng.uniform(0.5, 1.5, c).astype(np.float32),
                rng.normal(0, 0.1, c).astype(np.float32),
            ]
        elif kind == "Scale":
            blobs[layer["name"]] = [np.array([rng.uniform(0.1, 0.5)], dtype=np.float32)]
        elif kind == "Convolution":
            # the authors' net shares a block's convs (and the reconstruction) whether or
            # not a deploy file names the shared parameters; Caffe saves a copy per layer
            name = layer["name"]
            if re.fullmatch(r"conv\d\d_\d\d_[ab]", name):
                key = name[:6] + name[-1]
            else:
                key = "Recon" if name.startswith("conv_end_") else name
            if key not in shared:
                k, out = layer["kernel"], layer["num_output"]
                std = math.sqrt(2.0 / (c * k * k))
                shared[key] = [
                    rng.normal(0, std, (out, c, k, k)).astype(np.float32),
                    rng.normal(0, 0.05, out).astype(np.float32),
                ]
            blobs[layer["name"]] = [a.copy() for a in shared[key]]
        if kind == "Convolution":
            channels[layer["top"][0]] = layer["num_output"]
        elif kind == "Concat":
            channels[layer["top"][0]] = sum(channels[b] for b in layer["bottom"])
        else:
            channels[layer["top"][0]] = c
    return blobs


# --------------------------------------------------------------------------------------------
# a protobuf writer (Caffe field numbers) and a NumPy interpreter of the layer list
# --------------------------------------------------------------------------------------------


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, payload: bytes | int | float, wire: int | None = None) -> bytes:
    if isinstance(payload, bytes):
        return varint(number << 3 | 2) + varint(len(payload)) + payload
    if isinstance(payload, float) or wire == 5:
        return varint(number << 3 | 5) + struct.pack("<f", payload)
    return varint(number << 3) + varint(int(payload))


def text(number: int, value: str) -> bytes:
    return field(number, value.encode())


def blob_proto(array: NDArray[np.float32], style: str) -> bytes:
    """A BlobProto: `shape` + packed data, legacy 4-D dims, or one float field per value."""
    values = np.ascontiguousarray(array, dtype="<f4")
    if style == "legacy":  # num, channels, height, width (a vector is 1 x 1 x 1 x n)
        dims = [1] * (4 - array.ndim) + list(array.shape)
        head = b"".join(field(n, d) for n, d in zip((1, 2, 3, 4), dims, strict=True))
    else:
        head = field(7, field(1, b"".join(varint(d) for d in array.shape)))
    if style == "unpacked":
        return head + b"".join(field(5, float(v), wire=5) for v in values.reshape(-1))
    return head + field(5, values.tobytes())


def encode_layer(layer: Layer, blobs: list[NDArray[np.float32]], style: str = "shape") -> bytes:
    out = text(1, layer["name"]) + text(2, layer["type"])
    out += b"".join(text(3, b) for b in layer["bottom"]) + b"".join(
        text(4, t) for t in layer["top"]
    )
    if layer["type"] == "Convolution":
        for name in layer["param_names"] or []:
            out += field(6, text(1, name))
        k = layer["kernel"]
        conv = field(1, layer["num_output"]) + field(4, k) + field(3, (k - 1) // 2) + field(6, 1)
        out += field(106, conv)
    if layer["type"] == "Scale":
        out += field(142, field(4, int(layer["bias_term"])))
    out += b"".join(field(7, blob_proto(b, style)) for b in blobs)
    return out


def encode_net(
    layers: list[Layer],
    blobs: dict[str, list[NDArray[np.float32]]],
    styles: dict[str, str] | None = None,
) -> bytes:
    """A NetParameter: name, then every layer (field 100) with its blobs, as Caffe saves it."""
    styles = styles or {}
    out = text(1, "MemNet_test")
    for layer in layers:
        style = styles.get(layer["type"], "shape")
        out += field(100, encode_layer(layer, blobs.get(layer["name"], []), style))
    return out


def conv2d(
    x: NDArray[np.float64], weight: NDArray[np.float64], bias: NDArray[np.float64]
) -> NDArray[np.float64]:
    k = weight.shape[-1]
    p = (k - 1) // 2
    padded = np.pad(x, ((0, 0), (p, p), (p, p)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(1, 2))
    return np.einsum("ihwab,oiab->ohw", windows, weight) + bias[:, None, None]


def run_layers(
    layers: list[Layer], blobs: dict[str, list[NDArray[np.float32]]], image: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Caffe's forward pass of the layer list in float64 (test-phase BatchNorm)."""
    values: dict[str, NDArray[np.float64]] = {"data": image[None]}
    for layer in layers:
        x = [values[b] for b in layer["bottom"]]
        w = [b.astype(np.float64) for b in blobs.get(layer["name"], [])]
        kind = layer["type"]
        if kind == "BatchNorm":
            s = 0.0 if w[2][0] == 0 else 1.0 / w[2][0]
            y = (x[0] - (w[0] * s)[:, None, None]) / np.sqrt(w[1] * s + 1e-5)[:, None, None]
        elif kind == "Scale":
            y = x[0] * w[0][:, None, None] + (w[1][:, None, None] if len(w) > 1 else 0.0)
        elif kind == "ReLU":
            y = np.maximum(x[0], 0.0)
        elif kind == "Convolution":
            y = conv2d(x[0], w[0], w[1])
        elif kind == "Eltwise":
            y = np.sum(x, axis=0)
        elif kind == "Concat":
            y = np.concatenate(x, axis=0)
        else:
            raise AssertionError(kind)
        values[layer["top"][0]] = y
    return values["HR_recovery"][0]


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------

M, R, C = 3, 2, 8  # M ≠ R, so that blocks and recursions cannot be swapped unnoticed


@pytest.fixture(scope="module")
def authors_net() -> tuple[list[Layer], dict[str, list[NDArray[np.float32]]]]:
    layers = authors_layers(M, R, C, share=False)
    return layers, make_blobs(layers)


@pytest.fixture
def files(tmp_path: Path, authors_net: tuple[list[Layer], dict[str, Any]]) -> tuple[Path, Path]:
    """A caffemodel using every blob encoding and its deploy prototxt."""
    layers, blobs = authors_net
    model = tmp_path / "MemNet_M3R2_8C_SR.caffemodel"
    styles = {"BatchNorm": "legacy", "Scale": "unpacked"}
    model.write_bytes(encode_net(layers, blobs, styles))
    deploy = tmp_path / "MemNet_M3R2_deploy.prototxt"
    deploy.write_text(prototxt(layers))
    return model, deploy


def convert(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    code = main(["convert", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --------------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------------


def test_layout_follows_the_authors_m6r6_file() -> None:
    """Facts read off MemNet_M6R6_80C64_deploy.prototxt, and memnet's layout agrees."""
    layers = authors_layers(6, 6, 64, share=False)
    names = [layer["name"] for layer in layers]
    assert len(layers) == 395
    assert sum(layer["type"] == "BatchNorm" for layer in layers) == 85
    assert names[:9] == ["bn_conv1", "scale_conv1", "relu1", "conv1", "bn_conv01_01_a",
                         "scale_conv01_01_a", "relu01_01_a", "conv01_01_a", "bn_conv01_01_b"]  # fmt: skip
    by_name = {layer["name"]: layer for layer in layers}
    assert by_name["concat06"]["bottom"] == ["conv1"] + [
        f"conv_transition_0{i}" for i in range(1, 6)
    ] + [f"eltwise06_0{i}" for i in range(1, 7)]
    assert by_name["bn_conv02_01_a"]["bottom"] == ["conv_transition_01"]
    assert by_name["bn_conv_end_01"]["bottom"] == ["conv_transition_01"]
    assert by_name["HR_recovery_03"]["bottom"] == ["data", "conv_end_03"]
    assert names[-1] == "HR_recovery"
    assert by_name["HR_recovery"]["bottom"][-1] == "weight_output_end_06"
    assert by_name["conv_transition_06"]["kernel"] == 1
    assert by_name["conv_end_06"]["num_output"] == 1
    # memnet's own description of the layout: same layers, types and order
    layout = authors_layout(6, 6)
    assert [(x.name, x.type) for x in layout] == [(x["name"], x["type"]) for x in layers]


def expected_state(blobs: dict[str, list[NDArray[np.float32]]]) -> dict[str, NDArray[Any]]:
    """Where each Caffe blob of the M-R-C test net belongs in memnet's state dict."""
    expected: dict[str, NDArray[Any]] = {}

    def bn(target: str, layer: str) -> None:
        mean, var, factor = (b.astype(np.float64) for b in blobs[layer])
        expected[f"{target}.running_mean"] = mean / factor[0]
        expected[f"{target}.running_var"] = var / factor[0]
        gamma, beta = blobs["scale" + layer[2:]]
        expected[f"{target}.weight"], expected[f"{target}.bias"] = gamma, beta

    def conv(target: str, layer: str) -> None:
        expected[f"{target}.weight"], expected[f"{target}.bias"] = blobs[layer]

    bn("fenet_pre.0", "bn_conv1")
    conv("fenet", "conv1")
    for m in range(1, M + 1):
        b = f"blocks.{m - 1}"
        for r in range(1, R + 1):
            for half in "ab":
                bn(f"{b}.recursions.{r - 1}.pre_{half}.0", f"bn_conv{m:02d}_{r:02d}_{half}")
                conv(f"{b}.conv_{half}", f"conv{m:02d}_{r:02d}_{half}")  # one copy for all r
        bn(f"{b}.gate.pre.0", f"bn_conv_transition_{m:02d}")
        conv(f"{b}.gate.conv", f"conv_transition_{m:02d}")
        bn(f"reconstruction_pre.{m - 1}.0", f"bn_conv_end_{m:02d}")
        conv("reconstruction", f"conv_end_{m:02d}")
    expected["branch_weights"] = np.array(
        [blobs[f"weight_output_end_{m:02d}"][0][0] for m in range(1, M + 1)]
    )
    return expected


def test_every_tensor_lands_where_it_belongs(
    tmp_path: Path, files: tuple[Path, Path], authors_net: tuple[list[Layer], dict[str, Any]]
) -> None:
    expected = expected_state(authors_net[1])
    model_file, deploy = files
    for graph in (None, deploy):  # the caffemodel's own network, then the deploy prototxt
        out = tmp_path / f"out-{graph is None}.safetensors"
        model = convert_caffemodel(model_file, out, task="sr", prototxt=graph).model
        assert model.config == MemNetConfig(M, R, C, 1)
        state = {k: v.numpy() for k, v in model.state_dict().items()}
        assert {k for k in state if not k.endswith("num_batches_tracked")} == set(expected)
        for key, value in expected.items():
            # a BatchNorm statistic is one float32 rounding of its quotient; the rest are copies
            rtol = EPS32 if key.endswith(("running_mean", "running_var")) else 0.0
            np.testing.assert_allclose(
                state[key], value.reshape(state[key].shape), rtol=rtol, err_msg=key
            )


def test_converted_network_equals_numpy_evaluation_of_the_prototxt(
    tmp_path: Path, files: tuple[Path, Path], authors_net: tuple[list[Layer], dict[str, Any]]
) -> None:
    layers, blobs = authors_net
    model_file, deploy = files
    model = convert_caffemodel(
        model_file, tmp_path / "m.safetensors", task="sr", prototxt=deploy
    ).model
    image = np.random.default_rng(1).uniform(0, 1, (23, 19))
    reference = run_layers(layers, blobs, image)
    with torch.no_grad():
        output = model(torch.from_numpy(image[None, None]).float())[0, 0].double().numpy()
    bound = float32_bound(model.config, float(np.abs(reference).max()))
    assert np.abs(output - reference).max() <= bound
    # and it is a real network: the output is far from its input and from a plain average
    assert np.abs(reference - image).max() > 100 * bound


def test_cli_writes_weights_with_provenance(
    tmp_path: Path, files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model_file, deploy = files
    out = tmp_path / "authors.safetensors"
    code, stdout, stderr = convert(
        capsys, model_file, "--prototxt", deploy, "--task", "denoise", "-o", out
    )
    assert code == 0, stderr
    assert f"-> {out}: MemNet M3R2 C8, task denoise" in stdout
    metadata = read_metadata(out)
    assert metadata["memnet.task"] == "denoise"
    assert json.loads(metadata["memnet.levels"]) == [30, 50, 70]
    assert metadata["memnet.source"] == model_file.name
    assert metadata["memnet.source_sha256"] == sha256_of(model_file)
    assert metadata["memnet.prototxt_sha256"] == sha256_of(deploy)
    model, _ = load_weights(out)
    assert model.config == MemNetConfig(M, R, C, 1)
    # an existing output is kept unless --overwrite
    code, _, stderr = convert(capsys, model_file, "--task", "sr", "-o", out)
    assert code == 1
    assert "already exists" in stderr
    assert read_metadata(out)["memnet.task"] == "denoise"
    assert convert(capsys, model_file, "--task", "sr", "-o", out, "--overwrite")[0] == 0
    assert read_metadata(out)["memnet.task"] == "sr"


def test_convs_shared_by_parameter_name_need_one_copy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    layers = authors_layers(2, 3, 4, share=True)
    blobs = make_blobs(layers, seed=3)
    # keep the shared convs' blobs only under the first recursion (and the first branch)
    thin = {
        name: b
        for name, b in blobs.items()
        if not re.fullmatch(r"conv\d\d_(0[2-9]|[1-9]\d)_[ab]|conv_end_(0[2-9]|[1-9]\d)", name)
    }
    model_file = tmp_path / "thin.caffemodel"
    model_file.write_bytes(encode_net(layers, thin))
    shared = tmp_path / "shared.prototxt"
    shared.write_text(prototxt(layers))
    out = tmp_path / "thin.safetensors"
    code, _, stderr = convert(capsys, model_file, "--prototxt", shared, "--task", "sr", "-o", out)
    assert code == 0, stderr
    model, _ = load_weights(out)
    np.testing.assert_array_equal(
        model.blocks[1].conv_b.weight.detach().numpy(), blobs["conv02_03_b"][0]
    )
    # without the parameter names the later recursions would have no weights in Caffe either
    unshared = tmp_path / "unshared.prototxt"
    unshared.write_text(prototxt(authors_layers(2, 3, 4, share=False)))
    code, _, stderr = convert(
        capsys, model_file, "--prototxt", unshared, "--task", "sr", "-o", out, "--overwrite"
    )
    assert code == 1
    assert "no weights for layer 'conv01_02_a'" in stderr
    # copies that differ cannot be one shared conv
    blobs["conv02_02_a"][0][0, 0, 0, 0] += 1.0
    model_file.write_bytes(encode_net(layers, blobs))
    code, _, stderr = convert(capsys, model_file, "--task", "sr", "-o", out, "--overwrite")
    assert code == 1
    assert "'conv02_01_a' and 'conv02_02_a' hold different weights" in stderr


def test_empty_batchnorm_statistics_read_as_zero(tmp_path: Path) -> None:
    layers = authors_layers(1, 1, 4, share=False)
    blobs = make_blobs(layers, seed=5)
    blobs["bn_conv01_01_b"][2][0] = 0.0  # a moving average that never accumulated anything
    path = tmp_path / "zero.caffemodel"
    path.write_bytes(encode_net(layers, blobs))
    model = convert_caffemodel(path, tmp_path / "zero.safetensors", task="jpeg").model
    bn = model.blocks[0].recursions[0].pre_b[0]
    assert isinstance(bn, torch.nn.BatchNorm2d)
    assert bn.running_mean is not None
    assert bn.running_var is not None
    assert not bn.running_mean.any()
    assert not bn.running_var.any()


def _rename(layers: list[Layer], old: str, new: str) -> list[Layer]:
    renamed = []
    for layer in layers:
        layer = dict(layer)
        layer["name"] = new if layer["name"] == old else layer["name"]
        layer["top"] = [new if t == old else t for t in layer["top"]]
        layer["bottom"] = [new if b == old else b for b in layer["bottom"]]
        renamed.append(layer)
    return renamed


def _bad_files(tmp_path: Path, layers: list[Layer], blobs: dict[str, Any], case: str) -> list[str]:
    model_file = tmp_path / "bad.caffemodel"
    good = encode_net(layers, blobs)
    args: list[str] = []
    if case == "png":
        model_file.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    elif case == "text":
        model_file.write_text(prototxt(layers))
    elif case == "empty":
        model_file.write_bytes(b"")
    elif case == "truncated":
        model_file.write_bytes(good[: len(good) * 2 // 3])
    elif case == "truncated-at-layer":  # cut exactly between two layers: parses, but incomplete
        end = next(i for i, layer in enumerate(layers) if layer["name"] == "bn_conv_end_01")
        model_file.write_bytes(encode_net(layers[:end], blobs))
    elif case == "wrong-name":
        model_file.write_bytes(encode_net(_rename(layers, "conv01_02_b", "conv01_02_c"), blobs))
    elif case == "wrong-shape":
        blobs = dict(blobs)
        blobs["conv_transition_02"] = [
            blobs["conv_transition_02"][0][:, :-1],
            blobs["conv_transition_02"][1],
        ]
        model_file.write_bytes(encode_net(layers, blobs))
    elif case == "other-prototxt":
        model_file.write_bytes(good)
        other = tmp_path / "other.prototxt"
        other.write_text(prototxt(authors_layers(M - 1, R, C, share=False)))
        args = ["--prototxt", str(other)]
    elif case == "broken-prototxt":
        model_file.write_bytes(good)
        broken = tmp_path / "broken.prototxt"
        broken.write_text(prototxt(layers)[:-30])
        args = ["--prototxt", str(broken)]
    elif case == "legacy-v1":
        model_file.write_bytes(text(1, "old") + field(2, text(4, "conv1") + field(5, 4)))
    elif case == "leaky-relu":
        leaky = tmp_path / "leaky.prototxt"
        leaky.write_text(prototxt(layers).replace(
            'type: "ReLU"', 'type: "ReLU"\n    relu_param {\n        negative_slope: 0.1\n    }', 1))  # fmt: skip
        model_file.write_bytes(good)
        args = ["--prototxt", str(leaky)]
    return [str(model_file), *args]


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("png", "not a"),
        ("text", "not a"),
        ("empty", "the file is empty"),
        ("truncated", "truncated file?"),
        ("truncated-at-layer", "no layer named 'HR_recovery'"),
        ("wrong-name", "'conv01_02_b'"),
        ("wrong-shape", "conv_transition_02' → blocks.1.gate.conv.weight has shape (8, 31, 1, 1)"),
        ("other-prototxt", "layer 'bn_conv03_01_a' holds weights but is not in an M2R2 MemNet"),
        ("broken-prototxt", "not a readable prototxt"),
        ("legacy-v1", "legacy V1 'layers' format"),
        ("leaky-relu", "leaky ReLU"),
    ],
)
def test_bad_files_get_a_one_line_reason(
    tmp_path: Path,
    authors_net: tuple[list[Layer], dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    case: str,
    reason: str,
) -> None:
    layers, blobs = authors_net
    args = _bad_files(tmp_path, layers, blobs, case)
    out = tmp_path / "out.safetensors"
    code, _, stderr = convert(capsys, *args, "--task", "sr", "-o", out)
    assert code == 1
    assert stderr.startswith("memnet convert: error: "), stderr
    assert stderr.count("\n") == 1, stderr
    assert reason in stderr
    assert "internal error" not in stderr
    assert not out.exists()
    assert not list(tmp_path.glob(".out.safetensors*"))  # no temporary file left behind


# --------------------------------------------------------------------------------------------
# the authors' tiling
# --------------------------------------------------------------------------------------------


def matlab_tiles(image: NDArray[np.float64], net: Any, thresh: int, rf: int) -> NDArray[np.float64]:
    """The patch loop of the authors' test_MemNet_M6R6_*.m, index for index (1-based)."""
    hei, wid = image.shape
    hei_stride = math.ceil(hei / math.ceil(hei / (thresh + rf)))
    wid_stride = math.ceil(wid / math.ceil(wid / (thresh + rf)))
    out = np.full(image.shape, np.nan)

    def span(start: int, stride: int, length: int) -> tuple[int, int, int, int, int]:
        ext_start, pos_start = (start - rf, rf + 1) if start - rf > 1 else (start, 1)
        use_end = start + stride - 1
        if start + stride + rf - 1 <= length:
            size = stride + rf
            ext_end, pos_end = start + size - 1, size - rf + pos_start - 1
        else:
            size = length - ext_start + 1
            ext_end, pos_end, use_end = ext_start + size - 1, size, ext_start + size - 1
        return ext_start, ext_end, pos_start, pos_end, use_end

    for x in range(1, hei + 1, hei_stride):
        ex0, ex1, px0, px1, ux1 = span(x, hei_stride, hei)
        for y in range(1, wid + 1, wid_stride):
            ey0, ey1, py0, py1, uy1 = span(y, wid_stride, wid)
            sub = net(image[ex0 - 1 : ex1, ey0 - 1 : ey1])
            out[x - 1 : ux1, y - 1 : uy1] = sub[px0 - 1 : px1, py0 - 1 : py1]
    return out


def test_authors_tiles_reproduce_their_script() -> None:
    torch.manual_seed(0)
    model = MemNet(4, 4, 4).eval()  # receptive field 69 px: 16 px of context is not enough

    def whole(window: NDArray[np.float64]) -> NDArray[np.float64]:
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(window)[None, None]).float()
            return model(x)[0, 0].double().numpy()

    image = np.random.default_rng(2).uniform(0, 1, (341, 200))
    exact = whole(image)
    bound = float32_bound(model.config, float(np.abs(exact).max()))
    for task, thresh in (("sr", 150), ("denoise", 120)):
        tile, pad = authors_tiling(task)
        restored = Restorer(model, tile=tile, tile_pad=pad, optimize=False, device="cpu")(image)
        reference = matlab_tiles(image, whole, thresh, 16)
        assert not np.isnan(reference).any()
        assert np.abs(restored - reference).max() <= bound
        # the tiles matter: whole-image inference differs by far more than rounding
        assert np.abs(exact - reference).max() > 10 * bound


def test_eval_authors_tiles_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from memnet.weights.files import save_weights

    weights = tmp_path / "tiny.safetensors"
    save_weights(MemNet(1, 1, 4).eval(), weights, {"memnet.task": "denoise"})
    sets = write_set(tmp_path / "Gray", count=1, shape=(30, 28))
    out = tmp_path / "results"
    code = main(["eval", "--task", "denoise", "--sigmas", "50", "--sets", str(sets), "--weights",
                 str(weights), "--authors-tiles", "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    summary = json.loads(next(out.glob("*.json")).read_text())
    details = summary.get("details", summary)
    assert (details["tile"], details["tile_pad"], details["tiling"]) == (136, 16, "authors")
    code = main(
        ["eval", "--task", "sr", "--method", "bicubic", "--authors-tiles", "--sets", str(sets)]
    )
    assert code == 1
    assert "--authors-tiles applies to a network" in capsys.readouterr().err


def test_a_training_net_with_data_split_and_loss_layers(
    tmp_path: Path, authors_net: tuple[list[Layer], dict[str, Any]]
) -> None:
    """A caffemodel saved from training holds its data and loss layers and Caffe's own Splits."""
    layers, blobs = authors_net
    users = [layer for layer in layers if "data" in layer["bottom"]]
    split = [f"data_data_0_split_{i}" for i in range(len(users))]
    training: list[Layer] = [
        {"name": "data", "type": "HDF5Data", "bottom": [], "top": ["data", "label"]},
        {"name": "data_data_0_split", "type": "Split", "bottom": ["data"], "top": split},
    ]
    for layer in layers:
        if layer in users:
            layer = layer | {
                "bottom": [split[users.index(layer)] if b == "data" else b for b in layer["bottom"]]
            }
        training.append(layer)
    for m in range(1, M + 1):
        name = f"loss_{m:02d}"
        training.append(
            {
                "name": name,
                "type": "EuclideanLoss",
                "bottom": [f"HR_recovery_{m:02d}", "label"],
                "top": [name],
            }
        )
    plain, trained = tmp_path / "plain.caffemodel", tmp_path / "train.caffemodel"
    plain.write_bytes(encode_net(layers, blobs))
    trained.write_bytes(encode_net(training, blobs))
    a = convert_caffemodel(plain, tmp_path / "a.safetensors", task="sr").model.state_dict()
    b = convert_caffemodel(trained, tmp_path / "b.safetensors", task="sr").model.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_a_training_prototxt_is_followed_in_the_test_phase(
    tmp_path: Path, files: tuple[Path, Path], authors_net: tuple[list[Layer], dict[str, Any]]
) -> None:
    """The authors' training files: a TRAIN-only data layer, comments, `include: { … }`."""
    model_file, deploy = files
    header = """name: "MemNet_train"
layer {
    name: "data"
    type: "HDF5Data"
    top: "data"
    top: "label"
    hdf5_data_param {
        source: "train.txt" # change this to your txt path
        batch_size: 32
        shuffle: true
    }
    include: { phase: TRAIN }
}
"""
    body = deploy.read_text().split("\n", 6)[-1]  # without the deploy's name and input lines
    train = tmp_path / "train.prototxt"
    train.write_text(header + body)
    model = convert_caffemodel(model_file, tmp_path / "t.safetensors", task="sr", prototxt=train)
    expected = expected_state(authors_net[1])
    np.testing.assert_array_equal(
        model.model.fenet.weight.detach().numpy(), expected["fenet.weight"]
    )
