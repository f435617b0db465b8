"""Shared fixtures. Tests that need the benchmark images skip with a reason when they are absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_ROOT = PROJECT_ROOT.parent / "shared" / "datasets"


def data_root() -> Path:
    return Path(os.environ.get("MEMNET_DATA_ROOT", DEFAULT_DATA_ROOT))


@pytest.fixture(scope="session")
def datasets() -> Path:
    """The benchmark/training image root; skips the test when it is not on this machine."""
    root = data_root()
    if not (root / "sr" / "Set5").is_dir():
        pytest.skip(f"benchmark images not found at {root} (set MEMNET_DATA_ROOT to a copy)")
    return root


@pytest.fixture(autouse=True)
def _deterministic_threads() -> None:
    torch.manual_seed(0)


@pytest.fixture
def video_clip(tmp_path: Path) -> Path:
    """A short clip with an audio track (tests/test_video.py makes it); skips without PyAV."""
    pytest.importorskip("av", reason="video restoration needs the video extra (PyAV)")
    from test_video import make_clip

    return make_clip(tmp_path / "clip.mp4")


@pytest.fixture
def random_denoise_weights(tmp_path: Path) -> Path:
    """A tiny denoising network with random weights, which changes every pixel."""
    from memnet.model import MemNet
    from memnet.weights.files import save_weights

    weights = tmp_path / "tiny.safetensors"
    save_weights(MemNet(2, 2, 8), weights, {"task": "denoise"})
    return weights
