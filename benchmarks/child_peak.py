"""One measured child process for the memory benchmarks: its exit code, stderr, wall time and
peak resident memory (the kernel's high-water mark of that process, `os.wait4`'s ru_maxrss), so
that what the driver itself holds never counts."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class ChildRun:
    exit_code: int
    stderr: str
    seconds: float
    peak_mb: float


def run_child(command: list[str]) -> ChildRun:
    start = time.perf_counter()
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    # Read stderr before waiting: a child that fills the pipe would otherwise never exit.
    errors = process.stderr.read() if process.stderr else ""
    _pid, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    return ChildRun(process.returncode, errors, seconds, usage.ru_maxrss / 1024)  # KiB on Linux
