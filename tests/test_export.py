"""`memnet export`: ONNX (checked against ONNX Runtime) and TorchScript, with dynamic sizes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from memnet.cli import main
from memnet.model import MemNet
from memnet.weights.files import save_weights
from rounding import float32_bound


@pytest.fixture
def weights(tmp_path: Path) -> tuple[MemNet, Path]:
    torch.manual_seed(2)
    model = MemNet(blocks=2, recursions=2, channels=8).eval()
    path = tmp_path / "small.safetensors"
    save_weights(model, path, {"task": "sr"})
    return model, path


@pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("onnx") is None,
    reason="onnx/onnxruntime not installed (pip install 'memnet[onnx]')",
)
def test_onnx_matches_pytorch_at_any_size(
    weights: tuple[MemNet, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import onnx
    import onnxruntime

    model, path = weights
    out = tmp_path / "small.onnx"
    assert main(["export", "--format", "onnx", "--weights", str(path), "-o", str(out)]) == 0
    assert "checked with ONNX Runtime" in capsys.readouterr().out
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for shape in ((1, 1, 64, 64), (3, 1, 37, 90), (1, 1, 130, 21)):
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        (y,) = session.run(None, {"input": x})
        with torch.no_grad():
            reference = model(torch.from_numpy(x)).numpy()
        assert y.shape == shape
        # another runtime, other kernels: the same network up to float32 rounding
        assert np.abs(y - reference).max() <= float32_bound(model.config, np.abs(reference).max())
    metadata = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert '"channels": 8' in metadata["memnet.config"]
    # an existing output is not replaced without --overwrite
    assert main(["export", "--format", "onnx", "--weights", str(path), "-o", str(out)]) == 1


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_torchscript_runs_at_other_sizes(weights: tuple[MemNet, Path], tmp_path: Path) -> None:
    model, path = weights
    out = tmp_path / "small.pt"
    assert main(["export", "--format", "torchscript", "--weights", str(path), "-o", str(out)]) == 0
    loaded = torch.jit.load(str(out))
    x = torch.rand(2, 1, 41, 77)
    with torch.no_grad():
        reference = model(x)
        bound = float32_bound(model.config, reference.abs().max().item())
        assert (loaded(x) - reference).abs().max() <= bound


def test_export_needs_a_network(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["export", "--format", "onnx", "--model", "bicubic", "-o", str(tmp_path / "x")]) == 1
    )
    assert "nothing to export" in capsys.readouterr().err
