"""What a command prints while it restores: whole lines in order, progress bars only on a terminal."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TextIO

from tqdm import tqdm

__all__ = ["Console", "emit"]


def emit(text: str, stream: TextIO) -> None:
    """Write one whole line and flush it, after flushing the other stream.

    When stdout and stderr go to one pipe, stdout is block-buffered and stderr is not:
    without this, error lines come out before every output line and can land inside one.
    """
    other = sys.stderr if stream is sys.stdout else sys.stdout
    other.flush()
    tqdm.write(text, file=stream)
    stream.flush()


@dataclass(frozen=True)
class Console:
    """Output lines (stdout, unless quiet) and notes (stderr, always) of one command."""

    command: str
    quiet: bool = False

    def say(self, text: str) -> None:
        """An output line: what was written, a summary."""
        if not self.quiet:
            emit(text, sys.stdout)

    def note(self, text: str) -> None:
        """An error or warning, prefixed with the command's name."""
        emit(f"{self.command}: {text}", sys.stderr)

    def bar(self, **options: object) -> tqdm:
        """A progress bar; none when quiet, and disable=None shows it only on a terminal."""
        return tqdm(disable=None if not self.quiet else True, **options)  # type: ignore[call-overload]
