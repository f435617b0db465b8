"""The one error a request can end in: an HTTP status and a one-line message for the client."""

from __future__ import annotations

__all__ = ["JobCancelledError", "ServeError"]


class ServeError(Exception):
    """A request that cannot be served: `status` is the HTTP code, the message is one line."""

    def __init__(self, status: int, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(" ".join(message.split()))
        self.status = status
        self.message = str(self)
        self.headers = headers or {}


class JobCancelledError(Exception):
    """Raised inside a running restoration when its client has gone or asked to stop."""
