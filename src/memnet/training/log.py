"""What a training run tells its user: a progress bar or status lines, and the metrics log.

`metrics.jsonl` gets one JSON object per log line, validation and event (appended and flushed,
so a killed run loses at most the line being written; the file is opened for each record, so
one replaced while the run goes on — a checkout or a copy of the run folder — still gets every
later line); TensorBoard gets the same scalars when
it is installed. On a terminal a tqdm bar shows progress; in a log file a status line is printed
every log interval instead.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from memnet.fsutil import atomic_write_text

__all__ = ["MetricsLog", "Progress", "format_duration", "plural"]


def _drop_partial_line(path: Path) -> None:
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as handle:
        data = handle.read()
        if not data.endswith(b"\n"):
            handle.truncate(data.rfind(b"\n") + 1)


def _drop_records_after(path: Path, iteration: int) -> None:
    """Remove train/val lines past `iteration`: work a killed run did after its last checkpoint.

    The resumed run repeats those iterations, so keeping them would log each one twice. Events
    (start, resume, stops) are kept: they are the run's history.
    """
    if not path.exists():
        return
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    kept = []
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        past = record.get("kind") in ("train", "val") and int(record["iteration"]) > iteration
        if not past:
            kept.append(line)
    if len(kept) != len(lines):
        atomic_write_text(path, "".join(kept))


class MetricsLog:
    """Appends JSON lines to metrics.jsonl (and TensorBoard scalars when installed).

    `resume_at`: the iteration a resumed run continues from; records after it are dropped.
    """

    def __init__(
        self, path: Path | None, tensorboard_dir: Path | None, resume_at: int | None = None
    ) -> None:
        self._path: Path | None = None
        self._board: Any = None
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        _drop_partial_line(path)  # a killed run may have cut its last line short
        if resume_at is not None:
            _drop_records_after(path, resume_at)
        self._path = path
        path.touch()
        if tensorboard_dir is not None:
            with contextlib.suppress(ImportError):
                from torch.utils.tensorboard import SummaryWriter

                purge = None if resume_at is None else resume_at + 1
                self._board = SummaryWriter(str(tensorboard_dir), purge_step=purge)

    @property
    def tensorboard(self) -> bool:
        return self._board is not None

    def write(self, record: dict[str, Any]) -> None:
        if self._path is None:
            return
        # Opened by name every time: a handle kept open would write into a file that has been
        # replaced at this path (e.g. by `git checkout`), and those lines would be lost.
        with open(self._path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, allow_nan=True) + "\n")
        kind = record.get("kind")
        if self._board is None or kind not in ("train", "val"):
            return
        step = int(record["iteration"])
        for key, value in record.items():
            if isinstance(value, dict):
                for label, number in value.items():
                    self._board.add_scalar(f"{key}/{label}", number, step)
            elif (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and key != "iteration"
            ):
                self._board.add_scalar(f"{kind}/{key}", value, step)

    def close(self) -> None:
        self._path = None
        if self._board is not None:
            self._board.close()
            self._board = None


class Progress:
    """A tqdm bar on a terminal, a plain line per log interval otherwise, nothing when quiet."""

    def __init__(self, enabled: bool, total: int, start: int) -> None:
        self.enabled = enabled
        self.total = total
        self._bar: tqdm[Any] | None = None
        if enabled and sys.stderr.isatty():
            self._bar = tqdm(
                total=total, initial=start, unit="it", dynamic_ncols=True, mininterval=0.5
            )

    def step(self, postfix: dict[str, str]) -> None:
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(postfix, refresh=False)

    def line(self, text: str) -> None:
        """A message: through the bar on a terminal; to stderr otherwise (unless quiet)."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def interval_line(self, text: str) -> None:
        """Periodic status for logs (the bar shows it on a terminal)."""
        if self.enabled and self._bar is None:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
