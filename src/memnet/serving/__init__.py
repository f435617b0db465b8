"""`memnet serve`: an HTTP API and a web page for restoring images, on FastAPI and uvicorn.

The modules that need the `serve` extra (FastAPI, uvicorn, python-multipart) are imported
only by `memnet.serving.app` and `memnet.serving.server`; the settings, the job queue and the
request handling below them use memnet alone.
"""

from __future__ import annotations

import importlib.util

from memnet.errors import MemNetError
from memnet.serving.settings import ServeSettings

__all__ = ["INSTALL_HINT", "ServeSettings", "require_serve_extra"]

INSTALL_HINT = 'pip install -c constraints.txt -e ".[serve]"'


def require_serve_extra() -> None:
    """Refuse to serve, in one line, when a package of the `serve` extra is not installed."""
    missing = [
        name
        for name in ("fastapi", "uvicorn", "python_multipart")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise MemNetError(f"needs the serve extra ({', '.join(missing)} missing): {INSTALL_HINT}")
