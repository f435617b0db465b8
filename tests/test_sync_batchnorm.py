"""train.sync_batchnorm: BatchNorm statistics over the whole batch of all DDP processes (gloo).

PyTorch's SyncBatchNorm refuses CPU modules, so CPU runs use memnet's SyncedBatchNorm2d; two
gloo processes, each with half of one batch, must hold the same statistics and gradients as
one process on the whole batch.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

WORKER = Path(__file__).with_name("sync_bn_worker.py")
EPS64 = float(torch.finfo(torch.float64).eps)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 2-process launch: OUT/sync with synced BatchNorm, OUT/plain without."""
    out = tmp_path_factory.mktemp("sync-bn")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=2", str(WORKER), str(out)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def load(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)


def bound(value: torch.Tensor) -> float:
    # float64 sums of at most BATCH·12·12·(M+R)·C = 8·144·32 terms, summed in another order by
    # the two processes than by one: a worst-case n·eps relative error of the values' scale
    return 8 * 144 * 32 * EPS64 * max(1.0, float(value.abs().max()))


@pytest.mark.slow
def test_synced_statistics_equal_across_processes_and_one_process_on_the_whole_batch(
    runs: Path,
) -> None:
    out = runs / "sync"
    ranks = [load(out / f"rank{r}.pt") for r in (0, 1)]
    whole = load(out / "whole.pt")
    buffers = [k for k in whole if k.startswith("buffer.") and "running" in k]
    assert buffers
    for key in buffers:
        assert torch.equal(ranks[0][key], ranks[1][key]), key  # one computation, bit for bit
    for key in whole:
        # DDP averages the gradients: those of one process on the whole batch
        for r in (0, 1):
            difference = float((ranks[r][key].double() - whole[key].double()).abs().max())
            assert difference <= bound(whole[key]), (key, r, difference)

    trainers = [torch.load(out / f"trainer{r}.pt", weights_only=True) for r in (0, 1)]
    assert trainers[0]["synced_layers"] > 0  # the recipe option converted the network
    for key, value in trainers[0]["stats"].items():
        assert torch.equal(value, trainers[1]["stats"][key]), key


@pytest.mark.slow
def test_without_the_option_each_process_has_its_own_statistics(runs: Path) -> None:
    # what the option fixes: per-process statistics differ from the whole batch's
    out = runs / "plain"
    ranks = [load(out / f"rank{r}.pt") for r in (0, 1)]
    whole = load(out / "whole.pt")
    key = "buffer.fenet_pre.0.running_var"
    assert not torch.equal(ranks[0][key], ranks[1][key])
    assert float((ranks[0][key] - whole[key]).abs().max()) > 100 * bound(whole[key])
    trainers = [torch.load(out / f"trainer{r}.pt", weights_only=True) for r in (0, 1)]
    assert trainers[0]["synced_layers"] == 0
    stats = trainers[0]["stats"]
    assert any(not torch.equal(v, trainers[1]["stats"][k]) for k, v in stats.items())
