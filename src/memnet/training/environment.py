"""Where a run executes: its processes, its device, its threads and determinism, stop signals.

Several processes (one per GPU, or CPU processes with gloo) train one model through
DistributedDataParallel when launched by `torchrun`, which describes them in the environment
(RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE); only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

import torch

from memnet import devices
from memnet.cpu_settings import available_cores
from memnet.errors import MemNetError
from memnet.training.recipe import Recipe

__all__ = [
    "Processes",
    "StopSignals",
    "default_threads",
    "global_settings",
    "processes_from_env",
    "training_device",
]


@dataclass(frozen=True)
class Processes:
    """This process's place among the processes of a run."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and validates."""
        return self.rank == 0


def processes_from_env() -> Processes:
    """The processes of this run as torchrun describes them (one process without torchrun)."""
    env = os.environ
    world = int(env.get("WORLD_SIZE", "1"))
    return Processes(
        rank=int(env.get("RANK", "0")),
        local_rank=int(env.get("LOCAL_RANK", "0")),
        world_size=world,
        local_world_size=int(env.get("LOCAL_WORLD_SIZE", str(world))),
    )


def training_device(recipe: Recipe, procs: Processes) -> torch.device:
    """The device this process trains on: train.device as memnet.devices resolves it, with
    `cuda` meaning this process's local GPU; MPS is refused."""
    try:
        return devices.resolve_device(
            recipe.train.device, local_rank=procs.local_rank, allow_mps=False
        )
    except MemNetError as error:
        raise MemNetError(f"train.device: {error}") from None


def default_threads(procs: Processes) -> int:
    """Compute threads of one process when the recipe does not fix them: its share of the cores."""
    return max(1, available_cores() // max(1, procs.local_world_size))


@contextlib.contextmanager
def global_settings(threads: int, deterministic: bool, device: torch.device) -> Iterator[None]:
    """Threads and determinism for the run, restored afterwards (library callers keep theirs)."""
    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    previous_benchmark = torch.backends.cudnn.benchmark
    torch.set_num_threads(threads)
    if deterministic and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_deterministic)
        torch.backends.cudnn.benchmark = previous_benchmark


class StopSignals:
    """Ctrl-C / SIGTERM ask the loop to stop after the current step (and checkpoint).

    A second Ctrl-C interrupts at once.
    """

    def __init__(self) -> None:
        self.reason: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.reason = "interrupted" if signum == signal.SIGINT else "terminated"

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
