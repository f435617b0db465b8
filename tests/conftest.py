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
