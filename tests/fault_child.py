"""What a fault trial runs in a child process: `memnet train`, optionally paused inside a checkpoint.

The trial (tests/test_train_faults.py) forks these from a forkserver that has imported memnet
and torch once, so each child starts in milliseconds. `pause` makes the child stop, at the n-th
write of a checkpoint file, in a chosen state: the temporary file complete but not yet renamed,
or only half written. It then writes `marker` and sleeps until the trial kills it. Nothing here
is part of memnet: the pauses wrap memnet's own calls from outside.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

PAUSES = ("state-complete", "state-partial", "weights-complete", "weights-partial")


def _stop_here(marker: str) -> None:
    Path(marker).write_text("paused\n")
    while True:  # until SIGKILL
        time.sleep(1)


def _install(pause: str, count: int, marker: str) -> None:
    import memnet.fsutil
    import memnet.training.checkpoint
    import memnet.weights.files

    kind, state = pause.split("-")
    seen = {"n": 0}

    def due() -> bool:
        seen["n"] += 1
        return seen["n"] == count

    if state == "complete":  # the temporary file is whole; the rename has not happened
        replace = os.replace
        suffix = ".state.pt" if kind == "state" else ".safetensors"

        def paused_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
            if str(dst).endswith(f"last{suffix}") and due():
                _stop_here(marker)
            replace(src, dst)

        memnet.fsutil.os.replace = paused_replace  # type: ignore[assignment]
    else:  # only half of the file's bytes are in the temporary file
        module = memnet.training.checkpoint if kind == "state" else memnet.weights.files
        real_write = module.atomic_write_bytes

        def partial_write(path: str | os.PathLike[str], data: bytes) -> None:
            if due():
                with memnet.fsutil.atomic_path(path) as tmp:
                    tmp.write_bytes(data[: len(data) // 2])
                    _stop_here(marker)
            real_write(path, data)

        module.atomic_write_bytes = partial_write  # type: ignore[attr-defined]


def run(argv: list[str], pause: str | None = None, count: int = 1, marker: str = "") -> None:
    """Run `memnet ARGV` in this process (a forked child) and exit with its code."""
    from memnet.cli import main

    if pause is not None:
        _install(pause, count, marker)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (the child exits right after)
    sys.exit(main(argv))
