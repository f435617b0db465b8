"""One device resolver: what `auto` picks, what is refused, and that every command uses it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

import memnet
from memnet import devices
from memnet.cli import main
from memnet.errors import MemNetError
from memnet.inference.engine import Restorer
from memnet.model import MemNet

PROJECT = Path(__file__).resolve().parents[1]
SMOKE = PROJECT / "configs" / "smoke.yaml"


def machine(monkeypatch: pytest.MonkeyPatch, *, cuda: int = 0, mps: bool = False) -> None:
    """Pretend this machine has `cuda` CUDA devices and Apple MPS or not."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: cuda)
    monkeypatch.setattr(devices, "mps_available", lambda: mps)


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"),
    [(1, True, "cuda"), (2, False, "cuda"), (0, True, "mps"), (0, False, "cpu")],
)
def test_auto_prefers_cuda_then_mps_then_cpu(
    monkeypatch: pytest.MonkeyPatch, cuda: int, mps: bool, expected: str
) -> None:
    machine(monkeypatch, cuda=cuda, mps=mps)
    assert devices.resolve_device("auto") == torch.device(expected)
    assert devices.resolve_device() == torch.device(expected)
    assert devices.resolve_device(" AUTO ") == torch.device(expected)


def test_without_mps_auto_skips_it_and_mps_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    machine(monkeypatch, cuda=0, mps=True)
    assert devices.resolve_device("auto", allow_mps=False) == torch.device("cpu")
    with pytest.raises(MemNetError, match="MPS is not supported here"):
        devices.resolve_device("mps", allow_mps=False)
    assert devices.resolve_device("mps") == torch.device("mps")


def test_a_local_rank_maps_cuda_and_auto_to_its_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    machine(monkeypatch, cuda=4)
    assert devices.resolve_device("auto", local_rank=2) == torch.device("cuda:2")
    assert devices.resolve_device("cuda", local_rank=3) == torch.device("cuda:3")
    assert devices.resolve_device("cuda:1", local_rank=3) == torch.device("cuda:1")
    assert devices.resolve_device("cpu", local_rank=3) == torch.device("cpu")
    assert devices.resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(MemNetError, match="only 4 CUDA device"):
        devices.resolve_device("auto", local_rank=4)
    machine(monkeypatch, cuda=0)
    assert devices.resolve_device("auto", local_rank=2) == torch.device("cpu")


@pytest.mark.parametrize(
    ("name", "cuda", "mps", "message"),
    [
        ("cuda", 0, False, "CUDA is not available"),
        ("cuda:1", 1, False, "only 1 CUDA device"),
        ("mps", 0, False, "MPS is not available"),
        ("banana", 0, False, "unknown device 'banana'"),
        ("meta", 0, False, "unsupported device 'meta'"),
    ],
)
def test_explicit_names_are_checked_in_one_line(
    monkeypatch: pytest.MonkeyPatch, name: str, cuda: int, mps: bool, message: str
) -> None:
    machine(monkeypatch, cuda=cuda, mps=mps)
    with pytest.raises(MemNetError, match=message) as caught:
        devices.resolve_device(name)
    assert "\n" not in str(caught.value)


# --------------------------------------------------------------------------------------------
# every entry point goes through the one resolver
# --------------------------------------------------------------------------------------------


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, dict[str, Any]]]:
    """Every call of memnet.devices.resolve_device (which still resolves as before)."""
    seen: list[tuple[Any, dict[str, Any]]] = []
    real = devices.resolve_device

    def recording(name: Any = "auto", **options: Any) -> torch.device:
        seen.append((name, options))
        return real(name, **options)

    monkeypatch.setattr(devices, "resolve_device", recording)
    return seen


def picture(path: Path, size: int = 40) -> Path:
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def tiny_model() -> MemNet:
    return MemNet(blocks=1, recursions=1, channels=4)


def test_the_api_and_the_restorer_resolve_through_it(
    calls: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    memnet.load("bicubic", task="sr", scale=2, device="cpu")
    assert calls[-1][0] == "cpu"
    machine(monkeypatch, cuda=0, mps=False)
    restorer = Restorer(tiny_model())
    # the default is memnet.load's, auto, which on a machine without a GPU is the CPU
    assert calls[-1][0] == "auto"
    assert restorer.device == torch.device("cpu")


def test_restore_eval_compare_and_serve_resolve_through_it(
    tmp_path: Path, calls: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    image = picture(tmp_path / "clean.png")
    bicubic = ["--task", "sr", "--method", "bicubic", "--device", "cpu"]
    assert main(["restore", "-i", str(image), "-o", str(tmp_path / "out.png"), *bicubic]) == 0
    assert [name for name, _ in calls] == ["cpu"]

    folder = tmp_path / "set"
    folder.mkdir()
    picture(folder / "a.png")
    evaluate = ["eval", "--sets", str(folder), "--scales", "2", "--quiet", *bicubic]
    assert main(evaluate) == 0
    assert [name for name, _ in calls] == ["cpu", "cpu"]

    compare = ["compare", "-i", str(image), "-o", str(tmp_path / "c.png"), "--model", "bicubic"]
    assert main([*compare, "--device", "cpu"]) == 0
    assert [name for name, _ in calls] == ["cpu", "cpu", "cpu"]

    from memnet.serving.settings import ServeSettings

    ServeSettings(device="cpu").check()
    assert len(calls) == 4
    capsys.readouterr()


def test_eval_refuses_an_unusable_device_even_for_a_baseline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    machine(monkeypatch, cuda=0, mps=False)
    folder = tmp_path / "set"
    folder.mkdir()
    picture(folder / "a.png")
    args = ["eval", "--task", "sr", "--method", "bicubic", "--sets", str(folder), "--quiet"]
    assert main([*args, "--device", "mps"]) == 1
    assert "MPS is not available" in capsys.readouterr().err


def test_training_resolves_through_it_with_its_rank_and_without_mps(
    tmp_path: Path,
    calls: list[Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    machine(monkeypatch, cuda=0, mps=True)
    monkeypatch.setenv("LOCAL_RANK", "0")
    run = ["train", str(SMOKE), "--out", str(tmp_path / "run"), "--quiet"]
    assert main([*run, "--set", "train.device=mps"]) == 1
    assert calls == [("mps", {"local_rank": 0, "allow_mps": False})]
    err = capsys.readouterr().err
    assert "train.device: device 'mps': Apple MPS is not supported here" in err
    assert err.count("\n") == 1
