"""Faults during training: SIGKILL at random moments and inside checkpoint writes, a full disk, a
read-only run folder. Nothing is lost: every resume succeeds and ends bit-identical to a run that
was never interrupted; a write that cannot happen is a one-line error that keeps the last
checkpoint whole and leaves no partial file.

Each trial is cheap — the `tiny` network, 8 iterations of 4 patches, one thread, a checkpoint
every 2 iterations — and its processes are forked from a forkserver that has imported memnet
once (tests/fault_child.py): 20 trials, 12 killed at random moments and 8 inside a checkpoint
write, take about 30 s of CPU.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import fault_child
from memnet.training.checkpoint import load_training_state

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml"
ITERATIONS = 8
SHORT = [
    f"train.iterations={ITERATIONS}",
    "train.batch_size=4",
    "train.threads=1",
    "train.deterministic=true",
    "data.patch_size=16",
    "data.synthetic={images: 4, size: 32, seed: 0}",
    "validation.interval=0",
    "checkpoint.interval=2",
    "checkpoint.snapshot_interval=0",
    "log.interval=2",
    "log.tensorboard=false",
]
RANDOM_TRIALS = 12
# the first and the third write of each checkpoint file (there are 4 plus the final one)
PAUSED_TRIALS = [(pause, count) for pause in fault_child.PAUSES for count in (1, 3)]
TRIAL_SEED = 14


def train_args(run_dir: Path, *extra: str, overrides: list[str] | None = None) -> list[str]:
    sets = [arg for item in (overrides or SHORT) for arg in ("--set", item)]
    return ["train", str(SMOKE), "--out", str(run_dir), "--quiet", *sets, *extra]


@pytest.fixture(scope="module")
def forks() -> Iterator[multiprocessing.context.BaseContext]:
    context = multiprocessing.get_context("forkserver")
    commands = [
        f"memnet.cli.{name}" for name in ("restore", "eval", "train", "export", "compare", "info")
    ]
    context.set_forkserver_preload(
        ["memnet.training.trainer", "memnet.cli", *commands, "fault_child"]
    )
    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # the forkserver, and so every trial, starts with it
    yield context
    if previous is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = previous


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    # in memory where there is a tmpfs: the trials write (and fsync) many checkpoints
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    root = Path(tempfile.mkdtemp(prefix="memnet-faults-", dir=base))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def start(forks: multiprocessing.context.BaseContext, argv: list[str], **pause: object) -> object:
    process = forks.Process(target=fault_child.run, args=(argv,), kwargs=pause)  # type: ignore[attr-defined]
    process.start()
    return process


def finish(forks: multiprocessing.context.BaseContext, run_dir: Path) -> int:
    """Resume the run to its end; returns the exit code."""
    process = start(forks, train_args(run_dir, "--resume", "auto"))
    process.join(120)  # type: ignore[attr-defined]
    return int(process.exitcode)  # type: ignore[attr-defined]


def kill(process: object) -> bool:
    """SIGKILL the process; False when it had already finished."""
    try:
        os.kill(process.pid, signal.SIGKILL)  # type: ignore[attr-defined]
    except ProcessLookupError:
        return False
    process.join(30)  # type: ignore[attr-defined]
    return process.exitcode == -signal.SIGKILL  # type: ignore[attr-defined]


def final_tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "checkpoints" / "last.safetensors"))


@pytest.fixture(scope="module")
def reference(
    forks: multiprocessing.context.BaseContext, scratch: Path
) -> tuple[dict[str, torch.Tensor], float]:
    """The weights of an uninterrupted run and how long it took."""
    run_dir = scratch / "reference"
    started = time.monotonic()
    process = start(forks, train_args(run_dir))
    process.join(120)  # type: ignore[attr-defined]
    assert process.exitcode == 0  # type: ignore[attr-defined]
    return final_tensors(run_dir), time.monotonic() - started


def assert_nothing_lost(run_dir: Path, reference: dict[str, torch.Tensor]) -> None:
    state = load_training_state(run_dir / "checkpoints" / "last.state.pt")
    assert state["iteration"] == ITERATIONS
    got = final_tensors(run_dir)
    assert got.keys() == reference.keys()
    different = [k for k in got if not torch.equal(got[k], reference[k])]
    assert not different, f"weights differ from the uninterrupted run: {different[:3]}"
    assert not list(run_dir.rglob(".*.tmp"))  # no partial file left behind
    events = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x]
    assert events[-1]["event"] == "completed"


@pytest.mark.parametrize("trial", range(RANDOM_TRIALS))
def test_sigkill_at_a_random_moment_then_resume_gives_the_same_weights(
    forks: multiprocessing.context.BaseContext,
    scratch: Path,
    reference: tuple[dict[str, torch.Tensor], float],
    trial: int,
) -> None:
    weights, duration = reference
    rng = random.Random(TRIAL_SEED * 1000 + trial)
    run_dir = scratch / f"random-{trial}"
    rounds = 1 + trial % 2  # every other trial is killed twice, the second time while resuming
    window = duration
    for _attempt in range(6):  # a busy machine may run faster than the reference did: retry
        shutil.rmtree(run_dir, ignore_errors=True)
        killed = 0
        for round_ in range(rounds):
            extra = ("--resume", "auto") if round_ else ()
            process = start(forks, train_args(run_dir, *extra))
            # a moment anywhere in the run: start-up, data, steps, checkpoint writes, the end
            time.sleep(rng.uniform(0.0, window * (0.9 if round_ == 0 else 0.5)))
            killed += kill(process)
        if killed:
            break
        window /= 2
    assert killed >= 1
    assert finish(forks, run_dir) == 0
    assert_nothing_lost(run_dir, weights)


@pytest.mark.parametrize(("pause", "count"), PAUSED_TRIALS)
def test_sigkill_inside_a_checkpoint_write_then_resume_gives_the_same_weights(
    forks: multiprocessing.context.BaseContext,
    scratch: Path,
    reference: tuple[dict[str, torch.Tensor], float],
    pause: str,
    count: int,
) -> None:
    run_dir = scratch / f"{pause}-{count}"
    marker = scratch / f"{pause}-{count}.paused"
    process = start(forks, train_args(run_dir), pause=pause, count=count, marker=str(marker))
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert process.is_alive(), "the run ended before the chosen checkpoint write"  # type: ignore[attr-defined]
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert list((run_dir / "checkpoints").glob(".*.tmp"))  # killed with a temporary file there
    kill(process)
    if count > 1:  # the checkpoint before the interrupted one is whole
        assert load_training_state(run_dir / "checkpoints" / "last.state.pt")["iteration"] > 0
    assert finish(forks, run_dir) == 0
    assert_nothing_lost(run_dir, reference[0])


# --------------------------------------------------------------------------------------------
# a full disk and a read-only run folder
# --------------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted for the test (needs root and the right to mount)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small filesystem needs root (and mount(8))")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def run_cli(
    forks: multiprocessing.context.BaseContext, argv: list[str], log: Path
) -> tuple[int, list[str]]:
    """Run memnet in a child with stderr captured to `log`; (exit code, stderr lines)."""
    process = forks.Process(target=_with_stderr, args=(argv, str(log)))  # type: ignore[attr-defined]
    process.start()
    process.join(120)
    return int(process.exitcode), log.read_text().splitlines()


def _with_stderr(argv: list[str], log: str) -> None:
    import sys

    sys.stderr = open(log, "w")  # noqa: SIM115 (the child exits right after)
    fault_child.run(argv)


def fill(disk: Path, leave: int) -> None:
    """Fill the filesystem until only about `leave` bytes are free."""
    free = shutil.disk_usage(disk).free
    (disk / "filler").write_bytes(b"\0" * max(0, free - leave))


def test_a_full_disk_during_a_checkpoint_keeps_the_last_one(
    forks: multiprocessing.context.BaseContext, small_disk: Path, scratch: Path
) -> None:
    run_dir = small_disk / "run"
    half = [x if not x.startswith("train.iterations") else "train.iterations=4" for x in SHORT]
    code, lines = run_cli(forks, train_args(run_dir, overrides=half), scratch / "disk-1.log")
    assert code == 0, lines
    before = (run_dir / "checkpoints" / "last.state.pt").read_bytes()
    fill(small_disk, leave=8 * 1024)  # room for the metrics lines, not for another checkpoint
    code, lines = run_cli(forks, train_args(run_dir, "--resume", "auto"), scratch / "disk-2.log")
    assert code == 1
    errors = [line for line in lines if "error" in line]
    assert len(errors) == 1, lines
    assert "no space left" in errors[0].lower(), errors
    assert "cannot write the checkpoint" in errors[0], errors
    assert "internal error" not in errors[0]
    assert (run_dir / "checkpoints" / "last.state.pt").read_bytes() == before
    assert load_training_state(run_dir / "checkpoints" / "last.state.pt")["iteration"] == 4
    assert not list(run_dir.rglob(".*.tmp"))


def test_a_read_only_run_folder_is_a_one_line_error_and_loses_nothing(
    forks: multiprocessing.context.BaseContext, small_disk: Path, scratch: Path
) -> None:
    run_dir = small_disk / "run"
    half = [x if not x.startswith("train.iterations") else "train.iterations=4" for x in SHORT]
    code, lines = run_cli(forks, train_args(run_dir, overrides=half), scratch / "ro-1.log")
    assert code == 0, lines
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    remount = subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], capture_output=True)
    if remount.returncode != 0:
        pytest.skip("cannot remount the tmpfs read-only here")
    code, lines = run_cli(forks, train_args(run_dir, "--resume", "auto"), scratch / "ro-2.log")
    assert code == 1
    errors = [line for line in lines if "error" in line]
    assert len(errors) == 1, lines
    assert "read-only" in errors[0].lower(), errors
    assert "internal error" not in errors[0]
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
