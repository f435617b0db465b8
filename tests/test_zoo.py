"""The released-weights registry: lookup by name, hash check, defaults, and `memnet info`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import memnet
from memnet.cli import main
from memnet.errors import MemNetError
from memnet.fsutil import sha256_of
from memnet.model import MemNet, MemNetConfig, exact_context
from memnet.tasks import make_task
from memnet.weights import zoo
from memnet.weights.files import load_any_weights, save_weights
from memnet.weights.loading import load_model, outside_training

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
        sha256=sha256_of(tmp_path / "memnet-test-sr.safetensors"),
        preset="tiny",
        task="sr",
        levels=(2.0, 3.0, 4.0),
        description="test model",
        metrics={"Set5/x2": zoo.Score(12.34, 0.5678)},
        default=True,
    )
    monkeypatch.setattr(zoo, "REGISTRY", {entry.name: entry})
    monkeypatch.setattr(zoo, "weights_dir", lambda: tmp_path)
    return entry


def test_load_by_name_checks_the_hash(temp_zoo: zoo.ZooEntry) -> None:
    loaded = load_model(temp_zoo.name)
    assert loaded.entry is temp_zoo
    assert loaded.source == "zoo"
    assert loaded.sha256 == temp_zoo.sha256
    assert loaded.network is not None
    assert loaded.network.config == CONFIG
    assert zoo.default_model("sr") is temp_zoo
    with pytest.raises(MemNetError, match="no released model is the default for task 'jpeg'"):
        zoo.default_model("jpeg")
    restorer = memnet.load(temp_zoo.name, device="cpu", scale=2)
    assert restorer.task == "sr"
    assert restorer(np.zeros((10, 10), dtype=np.uint8)).shape == (20, 20)


def test_corrupt_and_missing_files_give_clear_errors(temp_zoo: zoo.ZooEntry) -> None:
    path = zoo.weights_path(temp_zoo)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(MemNetError, match="corrupt"):
        load_model(temp_zoo.name)
    path.unlink()
    with pytest.raises(MemNetError, match="missing"):
        load_model(temp_zoo.name)
    with pytest.raises(MemNetError, match=r"unknown model 'nope'.*memnet-test-sr"):
        zoo.get("nope")


def test_info_lists_the_zoo(temp_zoo: zoo.ZooEntry, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    assert "memnet-test-sr" in capsys.readouterr().out
    assert main(["info", "memnet-test-sr"]) == 0
    out = capsys.readouterr().out
    assert temp_zoo.sha256 in out
    assert "Set5/x2: 12.34 / 0.5678" in out


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


@pytest.mark.parametrize("name", sorted(zoo.REGISTRY))
def test_a_released_model_is_described_alike_by_name_and_by_file(name: str) -> None:
    # memnet-sr.safetensors starts with the byte 0x80 (its header length), like an old pickle:
    # it is still read as the safetensors file it is.
    by_name = load_model(name)
    by_file = load_model(zoo.verified_weights_path(zoo.get(name)))
    assert (by_name.source, by_file.source) == ("zoo", "safetensors")
    assert by_name.entry is zoo.get(name)
    assert by_file.entry is None
    for field in ("task", "levels", "level_range", "context", "dtypes", "sha256", "metadata"):
        assert getattr(by_name, field) == getattr(by_file, field), field
    assert by_name.network is not None
    assert by_name.context == exact_context(by_name.network) > 0


def test_outside_training_reads_levels_and_ranges(tmp_path: Path) -> None:
    path = tmp_path / "blind.safetensors"
    meta = {"memnet.task": "denoise", "memnet.levels": "[]", "memnet.range": "[0, 75]"}
    save_weights(MemNet.from_config(CONFIG), path, meta)
    blind = load_model(path)
    assert (blind.levels, blind.level_range, blind.trained) == ((), (0.0, 75.0), "0-75")
    assert outside_training(blind, make_task("denoise", 75)) is None
    assert "range 0-75; sigma80 is outside" in str(
        outside_training(blind, make_task("denoise", 80))
    )
    fixed = load_model(zoo.verified_weights_path(zoo.get("memnet-jpeg")))
    assert outside_training(fixed, make_task("jpeg", 15)) is None
    assert "levels 10, 20; q30 is outside" in str(outside_training(fixed, make_task("jpeg", 30)))
    # a file that does not say what it was trained on is never warned about
    save_weights(MemNet.from_config(CONFIG), path, {"memnet.task": "denoise"})
    assert outside_training(load_model(path), make_task("denoise", 80)) is None


def test_baselines_and_task_checks(tmp_path: Path) -> None:
    bicubic = load_model("bicubic", task="sr")
    assert (bicubic.network, bicubic.task, bicubic.source, bicubic.path) == (
        None,
        "sr",
        "baseline",
        None,
    )
    assert load_model("identity").task is None
    with pytest.raises(MemNetError, match="trained for 'jpeg', not 'sr'"):
        load_model("memnet-jpeg", task="sr")
    with pytest.raises(MemNetError, match="unknown task 'video'"):
        load_model("bicubic", task="video")
    untold = tmp_path / "untold.safetensors"
    save_weights(MemNet.from_config(CONFIG), untold)
    assert load_model(untold).task is None
    assert load_model(untold, task="jpeg").task == "jpeg"
