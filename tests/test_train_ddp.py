"""Two gloo processes under torchrun train one model: identical weights, only rank 0 writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("ddp_worker.py")
ITERATIONS = 12


@pytest.mark.slow
def test_two_processes_hold_identical_weights_and_only_rank0_writes(tmp_path: Path) -> None:
    run_dir, dump = tmp_path / "run", tmp_path / "dump"
    dump.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        str(WORKER), str(run_dir), str(dump),
        f"train.iterations={ITERATIONS}", "train.batch_size=8", "train.threads=1",
        "log.interval=4", "checkpoint.interval=4", "checkpoint.snapshot_interval=0",
        "validation.interval=6", "validation.at_start=false",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]

    weights = [torch.load(dump / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert weights[0].keys() == weights[1].keys()
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key
    # training really happened (the reconstruction conv starts at zero with identity_init)
    assert weights[0]["reconstruction.weight"].abs().sum() > 0

    reports = [json.loads((dump / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert reports[0]["iteration"] == reports[1]["iteration"] == ITERATIONS
    assert reports[1]["written"] == [], reports[1]["written"]
    assert any("last.state.pt" in w for w in reports[0]["written"])
    assert any("best.safetensors" in w or ".best.safetensors." in w for w in reports[0]["written"])

    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    train_lines = [r["iteration"] for r in lines if r["kind"] == "train"]
    assert train_lines == [4, 8, 12]  # written once, by one process
    start = next(r for r in lines if r.get("event") == "start")
    assert start["processes"] == 2
