"""`memnet serve`: an HTTP API and a web page for restoring images, on FastAPI and uvicorn.

The modules that need the `serve` extra (FastAPI, uvicorn, python-multipart) are imported
only by `memnet.serving.app` and `memnet.serving.server`; the settings, the job queue and the
request handling below them use memnet alone.
"""

from __future__ import annotations

from memnet.serving.settings import ServeSettings

__all__ = ["ServeSettings"]
