"""The released-weights registry: lookup by name, hash check, defaults, and `memnet info`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import memnet
from memnet.cli import main
from memnet.errors import MemNetError
from memnet.model import MemNet, MemNetConfig
from memnet.weights import zoo
from memnet.weights.files import load_any_weights, save_weights

CONFIG = MemNetConfig(blocks=2, recursions=2, channels=8)


@pytest.fixture
def temp_zoo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> zoo.ZooEntry:
    """A zoo with one SR model whose file lives in a temporary weights folder."""
    torch.manual_seed(1)
    model = MemNet.from_config(CONFIG, identity_init=True)
    save_weights(model, tmp_path / "memnet-test-sr.safetensors", {"task": "sr"})
    entry = zoo.ZooEntry(
        name="memnet-test-sr",
        file="memnet-test-sr.safetensors",
        sha256=zoo.sha256_of(tmp_path / "memnet-test-sr.safetensors"),
        config=CONFIG,
        task="sr",
        levels=(2.0, 3.0, 4.0),
        description="test model",
        metrics={"Set5 x2": "12.34 / 0.5678"},
    )
    monkeypatch.setattr(zoo, "REGISTRY", {entry.name: entry})
    monkeypatch.setattr(zoo, "weights_dir", lambda: tmp_path)
    return entry


def test_load_by_name_checks_the_hash(temp_zoo: zoo.ZooEntry) -> None:
    model, entry = zoo.load_model(temp_zoo.name)
    assert entry is temp_zoo
    assert model.config == CONFIG
    assert zoo.default_for("sr") is temp_zoo
    assert zoo.default_for("jpeg") is None
    restorer = memnet.load(temp_zoo.name, device="cpu", scale=2)
    assert restorer.task == "sr"
    assert restorer(np.zeros((10, 10), dtype=np.uint8)).shape == (20, 20)


def test_corrupt_and_missing_files_give_clear_errors(temp_zoo: zoo.ZooEntry) -> None:
    path = zoo.weights_path(temp_zoo)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(MemNetError, match="corrupt"):
        zoo.load_model(temp_zoo.name)
    path.unlink()
    with pytest.raises(MemNetError, match="missing"):
        zoo.load_model(temp_zoo.name)
    with pytest.raises(MemNetError, match=r"unknown model 'nope'.*memnet-test-sr"):
        zoo.get("nope")


def test_info_lists_the_zoo(temp_zoo: zoo.ZooEntry, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    assert "memnet-test-sr" in capsys.readouterr().out
    assert main(["info", "memnet-test-sr"]) == 0
    out = capsys.readouterr().out
    assert temp_zoo.sha256 in out
    assert "Set5 x2: 12.34 / 0.5678" in out


def test_pickles_are_refused_unless_allowed(tmp_path: Path) -> None:
    model = MemNet.from_config(CONFIG)
    pickle = tmp_path / "legacy.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, pickle)
    with pytest.raises(MemNetError, match="refusing to load a pickle"):
        load_any_weights(pickle)
    loaded, _ = load_any_weights(pickle, unsafe_load=True)
    assert loaded.config == CONFIG
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)
    # weights_only=True: an object that is not plain tensors is refused, not executed
    hostile = tmp_path / "hostile.pt"
    torch.save({"state_dict": {"fenet.weight": torch.zeros(1)}, "x": Path("/")}, hostile)
    with pytest.raises(MemNetError, match="weights-only"):
        load_any_weights(hostile, unsafe_load=True)
    # a pickle in disguise is recognised by its content
    disguised = tmp_path / "weights.safetensors"
    disguised.write_bytes(pickle.read_bytes())
    with pytest.raises(MemNetError, match="refusing"):
        load_any_weights(disguised)
