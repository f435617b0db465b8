"""Run the app under uvicorn (the `serve` extra)."""

from __future__ import annotations

import sys

import uvicorn

from memnet.serving.app import create_app
from memnet.serving.settings import ServeSettings

__all__ = ["run_server"]


def run_server(settings: ServeSettings, *, log_level: str = "info") -> None:
    """Serve until interrupted; warns when listening beyond loopback without a token."""
    settings.check()
    if not settings.is_local:
        if settings.token is None:
            print(
                f"memnet serve: warning: listening on {settings.host} with no authentication: "
                "anyone who can reach this port can use it; set --token to require one",
                file=sys.stderr,
            )
        else:
            print(
                f"memnet serve: listening on {settings.host}; every API request needs "
                "'Authorization: Bearer <token>'",
                file=sys.stderr,
            )
    app = create_app(settings)
    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    print(f"memnet serve: http://{shown}:{settings.port}/ (Ctrl+C to stop)", file=sys.stderr)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=log_level)
