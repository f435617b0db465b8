"""The one exception type memnet raises for problems a user can fix (bad files, bad options)."""

from __future__ import annotations

__all__ = ["MemNetError"]


class MemNetError(Exception):
    """A user-facing error whose message is one clear line; the CLI prints it, no traceback."""
