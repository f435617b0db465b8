"""`memnet serve`: an HTTP API and a web page for restoring images (the `serve` extra)."""

from __future__ import annotations

import argparse
import os

from memnet.cli.options import DEVICE

EPILOG = """\
examples:
  memnet serve                                  # http://127.0.0.1:8000/
  memnet serve --workers 2 --model memnet-sr --model bicubic
  MEMNET_TOKEN=... memnet serve --host 0.0.0.0  # every API request needs the token

API: POST /v1/restore, GET /v1/jobs/{id}, GET /v1/models, GET /healthz; schema at
/openapi.json. Errors are JSON {"error": "..."} with the HTTP status (docs/serving.md).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve an HTTP API and a web page for restoring images",
        description="Start an HTTP server (FastAPI + uvicorn) with the restore API and a web "
        "page at /. It listens on localhost unless --host says otherwise.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="port (default 8000; 0 = any free one)"
    )
    parser.add_argument(
        "--model",
        action="append",
        default=None,
        help="a model clients may choose: a released name, a .safetensors file, bicubic or "
        "identity; repeat for several (default: every released model and both baselines)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="images restored at once (default 1); each worker loads its own models",
    )
    parser.add_argument(
        "--queue",
        type=int,
        default=8,
        help="images that may wait for a worker; more get 429 (default 8)",
    )
    parser.add_argument(
        "--max-pixels",
        type=float,
        default=16e6,
        help="largest result in pixels, width × height after restoration (default 16e6)",
    )
    parser.add_argument(
        "--max-upload-mb", type=float, default=32.0, help="largest upload in MB (default 32)"
    )
    parser.add_argument(
        "--sync-max-pixels",
        type=float,
        default=2e6,
        help="results larger than this are answered with a job id to poll (default 2e6)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("MEMNET_TOKEN"),
        help="require 'Authorization: Bearer TOKEN' on every API request (default: $MEMNET_TOKEN)",
    )
    parser.add_argument("--device", **DEVICE)
    parser.add_argument(
        "--tile", type=int, default=None, help="tile edge in output pixels (as memnet restore)"
    )
    parser.add_argument(
        "--log-level", default="info", choices=("critical", "error", "warning", "info", "debug")
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from memnet.serving import require_serve_extra

    require_serve_extra()
    from memnet.serving.server import run_server
    from memnet.serving.settings import ServeSettings

    settings = ServeSettings(
        host=args.host,
        port=args.port,
        models=tuple(args.model or ()),
        workers=args.workers,
        queue_size=args.queue,
        max_pixels=int(args.max_pixels),
        max_upload_bytes=int(args.max_upload_mb * 1e6),
        sync_max_pixels=int(args.sync_max_pixels),
        token=args.token or None,
        device=args.device,
        tile=args.tile,
    ).check()
    run_server(settings, log_level=args.log_level)
    return 0
