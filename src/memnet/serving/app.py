"""The FastAPI application: routes, authentication, the upload limit and JSON errors.

Every error a client can cause is answered as `{"error": "<one line>"}` with its status: 400
bad parameters, 401 missing or wrong token, 404 unknown job, 413 too large (the body while it
streams in, the picture from its header), 415 not an image, 422 undecodable, 429 queue full,
503 shutting down.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from memnet import __version__
from memnet.errors import MemNetError
from memnet.imaging.formats import FORMAT_BY_SUFFIX
from memnet.serving.catalogue import Catalogue
from memnet.serving.errors import ServeError
from memnet.serving.forms import describe_task, with_level_fields
from memnet.serving.jobs import Job, WorkerPool
from memnet.serving.restoring import probe_upload
from memnet.serving.settings import ServeSettings
from memnet.tasks import kinds_in_words, task_classes, task_kinds

__all__ = ["create_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# How often a waiting request looks whether its client is still there.
DISCONNECT_POLL_S = 0.25
# Reads the token for the schema's security scheme; a missing header is ours to answer (401).
BEARER = HTTPBearer(auto_error=False, description="the server's --token")
STATIC = resources.files("memnet.serving") / "static"
PAGE_FILES = {"app.js": "text/javascript", "app.css": "text/css"}

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "content": {"application/json": {"example": {"error": text}}}}
    for status, text in (
        (400, "bad parameters"),
        (401, "missing or wrong token"),
        (413, "upload or image too large"),
        (415, "not an image"),
        (422, "the image cannot be decoded"),
        (429, "the queue is full; retry later"),
        (503, "the server is shutting down"),
    )
}


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split())}, status_code=status, headers=headers)


class UploadTooLarge(StarletteHTTPException):
    """Raised from the request body stream as soon as it passes the limit (an HTTP error, so
    that the form parser passes it on rather than calling it a malformed body)."""

    def __init__(self, message: str) -> None:
        super().__init__(413, message, headers={"Connection": "close"})


class UploadLimit:
    """ASGI middleware: refuse bodies over `max_bytes` by Content-Length, or while they stream."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"the upload is larger than this server's limit of {self.max_bytes / 1e6:g} MB"
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"").decode("latin-1")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await _error(413, message, {"Connection": "close"})(scope, receive, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            incoming = await receive()
            if incoming["type"] == "http.request":
                received += len(incoming.get("body", b""))
                if received > self.max_bytes:
                    raise UploadTooLarge(message)
            return incoming

        async def watched_send(outgoing: Message) -> None:
            nonlocal started
            started = started or outgoing["type"] == "http.response.start"
            await send(outgoing)

        try:
            await self.app(scope, limited_receive, watched_send)
        except UploadTooLarge as error:
            # Raised outside the routes' error handling (e.g. by a body read in a middleware).
            if started:
                raise
            await _error(413, str(error.detail), error.headers)(scope, receive, send)


def create_app(settings: ServeSettings, *, start_workers: bool = True) -> FastAPI:
    """The memnet server for `settings`; workers start with the app (its lifespan)."""
    settings.check()
    catalogue = Catalogue(settings.models)
    pool = WorkerPool(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if start_workers:
            pool.start()
        try:
            yield
        finally:
            await run_in_threadpool(pool.close)

    app = FastAPI(
        title="memnet",
        version=__version__,
        description="MemNet image restoration over HTTP: super-resolution, denoising and JPEG "
        "deblocking. Errors are JSON objects with one `error` line.",
        lifespan=lifespan,
        docs_url=None,  # the interactive docs load their scripts from a CDN
        redoc_url=None,
        openapi_url=None,  # served below, behind the token like the rest of the API
    )
    app.state.pool = pool
    app.state.catalogue = catalogue
    app.add_middleware(UploadLimit, max_bytes=settings.max_upload_bytes)

    async def authorised(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> None:
        if settings.token is None:
            return
        given = credentials.credentials if credentials is not None else ""
        if not secrets.compare_digest(given.encode(), settings.token.encode()):
            raise ServeError(
                401,
                "missing or wrong token: send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )

    guarded = [Depends(authorised)]

    @app.exception_handler(ServeError)
    async def serve_error(_request: Request, error: ServeError) -> JSONResponse:
        return _error(error.status, error.message, error.headers)

    @app.exception_handler(RequestValidationError)
    async def bad_parameters(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = []
        for item in error.errors():
            where = ".".join(
                str(part) for part in item.get("loc", ()) if part not in ("body", "query")
            )
            problems.append(
                f"{where}: {item.get('msg', 'invalid')}" if where else str(item.get("msg"))
            )
        return _error(400, "; ".join(problems) or "bad request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        return _error(error.status_code, str(error.detail), dict(error.headers or {}))

    @app.exception_handler(Exception)
    async def internal_error(_request: Request, error: Exception) -> JSONResponse:
        return _error(500, f"internal error: {type(error).__name__}")

    # ------------------------------------------------------------------ the page

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return Response((STATIC / "index.html").read_bytes(), media_type="text/html")

    @app.get("/static/{name}", include_in_schema=False)
    async def page_file(name: str) -> Response:
        if name not in PAGE_FILES:
            raise ServeError(404, f"no such file: {name}")
        return Response((STATIC / name).read_bytes(), media_type=PAGE_FILES[name])

    # ------------------------------------------------------------------ the API

    @app.get("/healthz", dependencies=guarded, summary="liveness and queue state")
    async def healthz() -> dict[str, object]:
        return {"status": "ok", "version": __version__, **pool.stats()}

    @app.get("/openapi.json", dependencies=guarded, include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get(
        "/v1/models",
        dependencies=guarded,
        summary="the models this server offers, with their measured metrics",
    )
    async def models() -> dict[str, object]:
        return {
            "tasks": [describe_task(cls) for cls in task_classes()],
            "models": [model.describe() for model in catalogue.models.values()],
            "defaults": {
                task: (chosen.name if (chosen := catalogue.default_for(task)) else None)
                for task in task_kinds()
            },
            "limits": {
                "max_pixels": settings.max_pixels,
                "max_upload_bytes": settings.max_upload_bytes,
                "sync_max_pixels": settings.sync_max_pixels,
            },
        }

    async def restore(
        request: Request,
        image: Annotated[UploadFile, File(description="the picture: PNG, JPEG, WebP, TIFF or BMP")],
        task: Annotated[
            str | None, Form(description=f"{kinds_in_words()}; default: the model's")
        ] = None,
        model: Annotated[
            str | None, Form(description="a name from /v1/models; default: the task's")
        ] = None,
        color: Annotated[Literal["auto", "y", "ycbcr", "rgb"], Form()] = "auto",
        output_format: Annotated[
            Literal["auto", "png", "jpg", "webp", "tiff"],
            Form(alias="format", description="auto: the input's, PNG for JPEG deblocking"),
        ] = "auto",
        mode: Annotated[
            Literal["auto", "sync", "job"], Form(description="auto: a job when the result is large")
        ] = "auto",
        **levels: float | None,
    ) -> Response:
        filename = Path(image.filename or "image").name or "image"
        try:
            options = catalogue.options(
                filename=filename,
                task=task,
                model=model,
                levels=levels,
                color=color,
                output_format=output_format,
            )
        except (MemNetError, ValueError) as error:
            raise ServeError(400, str(error)) from None
        suffix = Path(filename).suffix.lower()
        upload = pool.new_upload_path(suffix if suffix in FORMAT_BY_SUFFIX else ".bin")
        try:
            await run_in_threadpool(_save, image, upload)
            height, width = await run_in_threadpool(
                probe_upload, upload, filename, options, settings.max_pixels
            )
            job = Job(upload, filename, options, height, width)
            pool.submit(job)
        except BaseException:
            upload.unlink(missing_ok=True)
            raise
        if mode == "job" or (mode == "auto" and height * width > settings.sync_max_pixels):
            return JSONResponse(
                job.describe(pool.position(job)),
                status_code=202,
                headers={"Location": f"/v1/jobs/{job.id}"},
            )
        if not await _wait(request, job, pool):
            return _error(409, "the client disconnected; the job was cancelled")
        return _result(job)

    app.post(
        "/v1/restore",
        dependencies=guarded,
        summary="restore an image",
        description="Returns the restored image (200), or for a result over the server's "
        "sync limit, or mode=job, a job to follow with GET /v1/jobs/{id} (202).",
        responses={
            200: {
                "content": {m: {} for m in ("image/png", "image/jpeg", "image/webp", "image/tiff")},
                "description": "the restored image",
            },
            202: {"description": "a job: follow it with GET /v1/jobs/{id}"},
            **ERROR_RESPONSES,
        },
    )(with_level_fields(restore))

    @app.get("/v1/jobs/{job_id}", dependencies=guarded, summary="a job's state and progress")
    async def job_state(job_id: str) -> dict[str, object]:
        job = _job(pool, job_id)
        return job.describe(pool.position(job))

    @app.get(
        "/v1/jobs/{job_id}/result",
        dependencies=guarded,
        summary="a finished job's image",
        responses={
            200: {"description": "the restored image"},
            409: {"description": "not finished yet"},
        },
    )
    async def job_result(job_id: str) -> Response:
        job = _job(pool, job_id)
        if not job.finished:
            raise ServeError(409, f"job {job_id} is {job.state}; poll GET /v1/jobs/{job_id}")
        return _result(job)

    @app.delete("/v1/jobs/{job_id}", dependencies=guarded, summary="cancel a job")
    async def job_cancel(job_id: str) -> dict[str, object]:
        job = _job(pool, job_id)
        pool.cancel(job)
        return job.describe(pool.position(job))

    return app


def _save(upload: UploadFile, target: Path) -> None:
    """Copy the spooled upload to a named file for memnet's reader."""
    upload.file.seek(0)
    with open(target, "wb") as handle:
        shutil.copyfileobj(upload.file, handle, 1 << 20)


def _attachment(filename: str) -> str:
    """A Content-Disposition header for any file name (headers are Latin-1; names may not be)."""
    plain = re.sub(r"[^A-Za-z0-9._-]", "_", filename)
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(filename)}"


def _job(pool: WorkerPool, job_id: str) -> Job:
    job = pool.get(job_id)
    if job is None:
        raise ServeError(404, f"no job {job_id} (unknown, or its result has expired)")
    return job


async def _wait(request: Request, job: Job, pool: WorkerPool) -> bool:
    """Wait for a job (True), or cancel it when the client disconnects, freeing its place."""
    loop = asyncio.get_running_loop()
    finished = asyncio.Event()

    def wake() -> None:
        loop.call_soon_threadsafe(finished.set)

    job.on_finish(wake)
    while not finished.is_set():
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(finished.wait(), DISCONNECT_POLL_S)
        if not finished.is_set() and await request.is_disconnected():
            pool.cancel(job)
            return False
    return True


def _result(job: Job) -> Response:
    if job.result is None:
        error = job.error or ServeError(500, "the job ended without a result")
        return _error(error.status, error.message, error.headers)
    result = job.result
    return Response(
        result.data,
        media_type=result.media_type,
        headers={
            "Content-Disposition": _attachment(result.filename),
            "X-Memnet-Job": job.id,
            "X-Memnet-Model": job.options.model.name,
            "X-Memnet-Task": f"{job.options.task.kind} {job.options.task.label}",
        },
    )
