"""Export a MemNet to ONNX or TorchScript with dynamic batch, height and width.

The exported graph is the eval-mode network: input (N, 1, H, W) float32 in [0, 1] units (for SR
already bicubic-upsampled, see memnet.tasks), output the restored image of the same shape.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from memnet.errors import MemNetError
from memnet.fsutil import atomic_path
from memnet.interop.export_formats import DEFAULT_OPSET, FORMATS
from memnet.model import MemNet
from memnet.weights.files import CONFIG_KEY

__all__ = ["FORMATS", "export_file", "export_model", "verify_onnx"]

# Traced on this size; any other size works because every op is stride-1 and size-agnostic.
EXAMPLE_SIZE = 64


class _Restoration(nn.Module):
    """The network's weighted output only (no branches, no input checks in the graph)."""

    def __init__(self, model: MemNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def export_model(
    model: MemNet, path: str | os.PathLike[str], fmt: str, *, opset: int = DEFAULT_OPSET
) -> Path:
    """Write `model` to `path` as ONNX or TorchScript, atomically; returns the path."""
    path = Path(path)
    if fmt not in FORMATS:
        raise MemNetError(f"unknown export format {fmt!r}; use {', '.join(FORMATS)}")
    wrapper = _Restoration(model.eval().cpu()).eval()
    example = torch.rand(1, model.config.in_channels, EXAMPLE_SIZE, EXAMPLE_SIZE)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # Tracing warns about the Python-level shape check in MemNet.forward; it is constant.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        if fmt == "torchscript":
            with torch.no_grad():
                traced = torch.jit.trace(wrapper, example)
            traced.save(str(tmp))
        else:
            _export_onnx(wrapper, example, tmp, opset, model)
    return path


def _export_onnx(wrapper: nn.Module, example: Tensor, tmp: Path, opset: int, model: MemNet) -> None:
    try:
        import onnx  # the exporter needs it, and it stores the config below
    except ImportError:
        raise MemNetError(
            "ONNX export needs the 'onnx' package: pip install 'memnet[onnx]'"
        ) from None
    axes = {0: "batch", 2: "height", 3: "width"}
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            (example,),
            str(tmp),
            dynamo=False,  # the TorchScript-based exporter: no extra dependency, dynamic axes
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": axes, "output": axes},
            opset_version=opset,
            do_constant_folding=True,
        )
    graph = onnx.load(str(tmp))
    entry = graph.metadata_props.add()
    entry.key, entry.value = CONFIG_KEY, json.dumps(model.config.to_dict(), sort_keys=True)
    onnx.save(graph, str(tmp))


def verify_onnx(
    model: MemNet, path: str | os.PathLike[str], size: tuple[int, int] = (45, 61)
) -> float:
    """Max |ONNX Runtime − PyTorch| on a random input of `size` (not the traced size)."""
    try:
        import onnxruntime
    except ImportError:
        raise MemNetError("verifying needs onnxruntime: pip install 'memnet[onnx]'") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((2, model.config.in_channels, *size), dtype=np.float32)
    (onnx_out,) = session.run(None, {"input": x})
    with torch.no_grad():
        torch_out = model.eval().cpu()(torch.from_numpy(x)).numpy()
    return float(np.abs(onnx_out - torch_out).max())


def export_file(
    fmt: str,
    *,
    preset: str | None = None,
    name_or_path: str | None = None,
    output: str | os.PathLike[str] | None = None,
    opset: int = DEFAULT_OPSET,
    overwrite: bool = False,
    unsafe_load: bool = False,
    say: Callable[[str], None] = print,
) -> Path:
    """Export an untrained `preset` or a released model / weights file, and check an ONNX file
    with ONNX Runtime when it is installed; `say` gets what was done. Returns the output path.

    The output defaults to NAME.onnx or NAME.pt in the current folder.
    """
    from memnet.model import create_model
    from memnet.weights.loading import load_model

    if preset:
        model, name = create_model(preset), preset
    else:
        if name_or_path is None:
            raise MemNetError("give a preset, a released model or a weights file to export")
        loaded = load_model(name_or_path, unsafe_load=unsafe_load)
        if loaded.network is None:
            raise MemNetError(f"{loaded.name!r} is a method without a network; nothing to export")
        model, name = loaded.network, Path(loaded.name).stem
    extension = ".onnx" if fmt == "onnx" else ".pt"
    path = Path(output) if output else Path(f"{name}{extension}")
    if path.exists() and not overwrite:
        raise MemNetError(f"{path}: already exists (pass --overwrite to replace it)")
    if not path.parent.is_dir():
        raise MemNetError(f"{path}: output folder {path.parent} does not exist")
    export_model(model, path, fmt, opset=opset)
    say(f"wrote {path} ({fmt}, input (N, 1, H, W) float32, dynamic N/H/W)")
    if fmt == "onnx":
        try:
            difference = verify_onnx(model, path)
        except MemNetError:
            say("onnxruntime is not installed: the export was not verified")
        else:
            say(f"checked with ONNX Runtime: max |difference| to PyTorch {difference:.2e}")
    return path
