"""A run killed with SIGKILL resumes from its last complete checkpoint; SIGTERM checkpoints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from memnet.training.checkpoint import load_training_state
from memnet.training.recipe import load_recipe
from memnet.training.trainer import RunOptions, train
from memnet.weights.files import load_weights

SMOKE = Path(__file__).parents[1] / "configs" / "smoke.yaml"
ENDLESS = [
    "train.iterations=100000",
    "train.batch_size=8",
    "validation.interval=0",
    "checkpoint.interval=2",
    "checkpoint.snapshot_interval=0",
    "log.interval=1",
]


def start_run(run_dir: Path) -> subprocess.Popen[str]:
    sets = [arg for item in ENDLESS for arg in ("--set", item)]
    command = [sys.executable, "-m", "memnet", "train", str(SMOKE), "--out", str(run_dir)]
    return subprocess.Popen(
        [*command, *sets, "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def wait_for_iteration(run_dir: Path, process: subprocess.Popen[str], iteration: int) -> None:
    deadline = time.monotonic() + 120
    metrics = run_dir / "metrics.jsonl"
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1]
        if metrics.exists():
            lines = metrics.read_text().splitlines()
            done = [json.loads(x)["iteration"] for x in lines[-3:] if x.endswith("}")]
            if done and max(done) >= iteration:
                return
        time.sleep(0.05)
    raise AssertionError("training did not progress")


@pytest.mark.slow
def test_sigkill_mid_training_resumes_from_the_last_complete_checkpoint(tmp_path: Path) -> None:
    process = start_run(tmp_path)
    try:
        wait_for_iteration(tmp_path, process, 15)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL

    state = load_training_state(tmp_path / "checkpoints" / "last.state.pt")
    saved = state["iteration"]
    assert saved >= 14
    assert saved % 2 == 0
    # the weights file may lag the state by one interval if the kill fell between the two
    _, meta = load_weights(tmp_path / "checkpoints" / "last.safetensors")
    assert int(meta["memnet.iteration"]) in (saved, saved - 2)

    recipe = load_recipe(SMOKE, ENDLESS)
    result = train(recipe, RunOptions(out=tmp_path, quiet=True, resume="auto", stop_at=saved + 3))
    assert (result.reason, result.iteration) == ("stop_at", saved + 3)
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines() if x]
    resumed = [r for r in records if r.get("event") == "resume"]
    assert resumed
    assert resumed[-1]["iteration"] == saved
    logged = [r["iteration"] for r in records if r["kind"] == "train"]
    assert logged == list(range(1, saved + 4))  # iterations replayed after the kill: logged once
    assert not list((tmp_path / "checkpoints").glob(".*.tmp"))  # leftovers cleaned up
    final = load_training_state(tmp_path / "checkpoints" / "last.state.pt")
    assert final["iteration"] == saved + 3
    assert all(torch.isfinite(v).all() for v in final["model"].values())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signum", "code", "event"),
    [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")],
    ids=["SIGTERM", "Ctrl-C"],
)
def test_a_stop_signal_writes_the_last_checkpoint(
    tmp_path: Path, signum: int, code: int, event: str
) -> None:
    process = start_run(tmp_path)
    try:
        wait_for_iteration(tmp_path, process, 5)
        process.send_signal(signum)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == code, process.communicate()[1]
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines() if x]
    assert records[-1]["event"] == event
    stopped = records[-1]["iteration"]
    assert load_training_state(tmp_path / "checkpoints" / "last.state.pt")["iteration"] == stopped
    _, meta = load_weights(tmp_path / "checkpoints" / "last.safetensors")
    assert meta["memnet.iteration"] == str(stopped)


def test_the_metrics_log_follows_its_file_when_it_is_replaced(tmp_path: Path) -> None:
    """A run folder's metrics.jsonl replaced under a running run (a checkout, a copy restored
    over it) still gets every later record: none goes into the replaced file."""
    import json
    import os

    from memnet.training.log import MetricsLog

    path = tmp_path / "metrics.jsonl"
    log = MetricsLog(path, None)
    log.write({"kind": "event", "event": "start", "iteration": 0})
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(path.read_bytes())
    os.replace(copy, path)  # what `git stash` / `git checkout` do to a tracked file
    log.write({"kind": "train", "iteration": 50})
    log.close()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["kind"] for r in records] == ["event", "train"]
