"""Bounded work: a waiting line of at most `queue_size` jobs and `workers` threads that run them.

Each worker owns one Engine, so each model is loaded once per worker and never shared between
two images at once. A job whose client has gone is taken out of the line at once (or stopped
at its next progress step when already running), which frees its place.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from memnet.errors import MemNetError
from memnet.serving.catalogue import RestoreOptions
from memnet.serving.errors import JobCancelledError, ServeError
from memnet.serving.restoring import Engine, RestoreResult
from memnet.serving.settings import ServeSettings

__all__ = ["Job", "WorkerPool"]

JobState = Literal["queued", "running", "done", "failed", "cancelled"]
FINISHED: tuple[JobState, ...] = ("done", "failed", "cancelled")


@dataclass(eq=False)
class Job:
    """One image to restore, its progress, and its result or error once finished."""

    upload: Path
    filename: str
    options: RestoreOptions
    height: int  # of the result
    width: int
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    state: JobState = "queued"
    done: int = 0
    total: int = 0
    result: RestoreResult | None = None
    error: ServeError | None = None
    created: float = field(default_factory=time.monotonic)
    finished_at: float | None = None
    cancel_requested: bool = False
    _finished: threading.Event = field(default_factory=threading.Event, repr=False)
    _listeners: list[Callable[[], None]] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def progress(self, done: int, total: int) -> None:
        """The restorer's progress callback; stops the work when the job was cancelled."""
        if self.cancel_requested:
            raise JobCancelledError
        self.done, self.total = done, total

    def on_finish(self, listener: Callable[[], None]) -> None:
        """Call `listener()` (from any thread) once the job has finished, or now if it has."""
        with self._lock:
            if not self.finished:
                self._listeners.append(listener)
                return
        listener()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until finished (True) or `timeout` seconds have passed (False)."""
        return self._finished.wait(timeout)

    def finish(
        self,
        state: JobState,
        *,
        result: RestoreResult | None = None,
        error: ServeError | None = None,
    ) -> None:
        """Record the outcome, drop the upload and tell whoever waits."""
        with self._lock:
            if self.finished:
                return
            self.state, self.result, self.error = state, result, error
            self.finished_at = time.monotonic()
            if state == "done":
                self.done = self.total = max(self.total, 1)
            self._finished.set()
            listeners, self._listeners = self._listeners, []
        with contextlib.suppress(OSError):
            self.upload.unlink(missing_ok=True)
        for listener in listeners:
            listener()

    def describe(self, position: int | None = None) -> dict[str, object]:
        """The job as GET /v1/jobs/{id} tells it."""
        fraction = 1.0 if self.state == "done" else (self.done / self.total if self.total else 0.0)
        return {
            "id": self.id,
            "state": self.state,
            "progress": round(fraction, 4),
            "done": self.done,
            "total": self.total,
            "queue_position": position,
            "model": self.options.model.name,
            "task": self.options.task.kind,
            "level": self.options.task.label,
            "width": self.width,
            "height": self.height,
            "filename": self.options.filename,
            "result": f"/v1/jobs/{self.id}/result" if self.state == "done" else None,
            "error": None
            if self.error is None
            else {"status": self.error.status, "message": self.error.message},
        }


class WorkerPool:
    """`workers` threads over one bounded waiting line; jobs are kept a while for their clients."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self._scratch: Path | None = None
        self._waiting: deque[Job] = deque()
        self._jobs: dict[str, Job] = {}
        self._running = 0
        self._closed = False
        self._condition = threading.Condition()
        self._threads: list[threading.Thread] = []
        self.served = 0
        self.failed = 0

    # ------------------------------------------------------------------ life

    @property
    def scratch(self) -> Path:
        """The folder for uploads and encoded results, made on first use, removed at close."""
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="memnet-serve-"))
        return self._scratch

    def start(self) -> None:
        """Start the worker threads (each loads its models on first use)."""
        with self._condition:
            if self._threads or self._closed:
                return
            for index in range(self.settings.workers):
                engine = Engine(self.settings.device, self.settings.tile, self.settings.workers)
                thread = threading.Thread(
                    target=self._work, args=(engine,), name=f"memnet-worker-{index}", daemon=True
                )
                self._threads.append(thread)
                thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Cancel what waits, let running jobs stop at their next step, remove the scratch folder."""
        with self._condition:
            self._closed = True
            waiting, self._waiting = list(self._waiting), deque()
            for job in self._jobs.values():
                job.cancel_requested = True
            self._condition.notify_all()
        for job in waiting:
            job.finish("cancelled", error=ServeError(503, "the server is shutting down"))
        for thread in self._threads:
            thread.join(timeout)
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)

    # ------------------------------------------------------------------ jobs

    def new_upload_path(self, suffix: str) -> Path:
        """A fresh file name in the scratch folder for an upload."""
        return self.scratch / f"{uuid.uuid4().hex}{suffix}"

    def submit(self, job: Job) -> None:
        """Put a job in line; 429 when the line is full, 503 when the server is closing."""
        with self._condition:
            self._expire()
            if self._closed:
                raise ServeError(503, "the server is shutting down")
            if len(self._waiting) >= self.settings.queue_size:
                raise ServeError(
                    429,
                    f"the server is busy ({len(self._waiting)} images waiting); try again shortly",
                    headers={"Retry-After": "1"},
                )
            self._waiting.append(job)
            self._jobs[job.id] = job
            self._condition.notify()

    def get(self, job_id: str) -> Job | None:
        """The job with this id, while it is kept."""
        with self._condition:
            self._expire()
            return self._jobs.get(job_id)

    def position(self, job: Job) -> int | None:
        """How many jobs wait before this one (0 = next), or None when it is not waiting."""
        with self._condition:
            try:
                return self._waiting.index(job)
            except ValueError:
                return None

    def cancel(self, job: Job) -> None:
        """Stop a job: out of the line at once if waiting, at its next step if running."""
        with self._condition:
            job.cancel_requested = True
            waiting = job in self._waiting
            if waiting:
                self._waiting.remove(job)
        if waiting:
            job.finish("cancelled", error=ServeError(409, "the job was cancelled"))

    def stats(self) -> dict[str, int]:
        """Counts for /healthz."""
        with self._condition:
            return {
                "workers": len(self._threads),
                "running": self._running,
                "waiting": len(self._waiting),
                "queue_size": self.settings.queue_size,
                "kept_jobs": len(self._jobs),
                "served": self.served,
                "failed": self.failed,
            }

    def _expire(self) -> None:
        # Finished jobs are kept for their clients to fetch, for a while and up to a number.
        now = time.monotonic()
        finished = sorted(
            (job for job in self._jobs.values() if job.finished and job.finished_at is not None),
            key=lambda job: job.finished_at or 0.0,
        )
        surplus = len(finished) - self.settings.max_kept_jobs
        for index, job in enumerate(finished):
            if index < surplus or now - (job.finished_at or now) > self.settings.job_ttl_s:
                del self._jobs[job.id]

    # ------------------------------------------------------------------ workers

    def _next(self) -> Job | None:
        with self._condition:
            while not self._waiting and not self._closed:
                self._condition.wait()
            if self._closed:
                return None
            job = self._waiting.popleft()
            job.state = "running"
            self._running += 1
            return job

    def _work(self, engine: Engine) -> None:
        while (job := self._next()) is not None:
            try:
                result = engine.run(
                    job.upload, job.filename, job.options, self.scratch, job.progress
                )
            except JobCancelledError:
                job.finish("cancelled", error=ServeError(409, "the job was cancelled"))
            except ServeError as error:
                job.finish("failed", error=error)
            except MemNetError as error:
                job.finish("failed", error=ServeError(422, str(error)))
            except MemoryError:
                job.finish(
                    "failed", error=ServeError(503, "the server ran out of memory for this image")
                )
            except Exception as error:  # a bug, not the client's fault: 500, and keep serving
                job.finish(
                    "failed",
                    error=ServeError(500, f"internal error: {type(error).__name__}: {error}"),
                )
            else:
                job.finish("done", result=result)
            with self._condition:
                self._running -= 1
                if job.state == "done":
                    self.served += 1
                elif job.state == "failed":
                    self.failed += 1
