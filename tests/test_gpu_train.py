"""tools/gpu_train.sh --dry-run: the GPU training script end to end on the CPU, in seconds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from memnet.tasks import SuperResolution
from memnet.training.checkpoint import load_training_state
from memnet.training.device_patches import sr_degrade
from memnet.weights.files import load_weights

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_the_dry_run_trains_saves_and_reports_every_task(tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path), "OMP_NUM_THREADS": "1", "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(ROOT / "tools" / "gpu_train.sh"), "--dry-run", "--max-iterations", "12"],
        capture_output=True, text=True, env=env, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    log = (tmp_path / "gpu_train.log").read_text()
    for kind in ("sr", "denoise", "jpeg"):
        assert f"summary {kind}: validation PSNR mean" in log
        assert f"[{kind}] iter 12/12" in log
        assert "patches/s" in log
        folder = tmp_path / kind / "checkpoints"
        # what `memnet eval --weights` reads
        model, meta = load_weights(folder / "last.safetensors")
        assert meta["memnet.task"] == kind
        assert meta["memnet.iteration"] == "12"
        assert "iterations: 12" in meta["memnet.recipe_yaml"]
        state = load_training_state(folder / "last.state.pt")
        assert state["iteration"] == 12
        for key, value in model.state_dict().items():
            assert torch.equal(value, state["model"][key]), key


def test_device_bicubic_is_the_protocol_degradation() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 256, (36, 30), dtype=np.uint8)
    for scale in (2, 3, 4):
        cropped = SuperResolution(scale).ground_truth(truth)
        expected = SuperResolution(scale).degrade(cropped, rng)
        got = sr_degrade(torch.from_numpy(np.ascontiguousarray(cropped)), scale).numpy()
        # float64 sums of at most 4·4·4 taps per pixel, in another order: 64·eps of 1
        np.testing.assert_allclose(got, expected, rtol=0, atol=64 * np.finfo(np.float64).eps)
