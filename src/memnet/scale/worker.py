"""What one Ray actor does: hold one model, restore the files of each batch it is given."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memnet.inference.folders import Job, run_jobs
from memnet.video import EncodeOptions, is_video

__all__ = ["RESULT_COLUMNS", "RestoreWorker", "WorkerSettings"]

RESULT_COLUMNS = ("source", "target", "status", "reason", "megapixels")
# status: "restored" (written now), "present" (already complete when its turn came: written by
# an earlier attempt of this job whose worker died before reporting), or "failed". reason: why
# it failed, or for a restored file the warning `memnet restore` would print for it ("" if none).


@dataclass(frozen=True)
class WorkerSettings:
    """Everything an actor needs to build its restorer and write like the single-machine path."""

    load: dict[str, Any]  # keyword arguments of memnet.load
    video: EncodeOptions = field(default_factory=EncodeOptions)
    overwrite: bool = False
    threads: int | None = None  # torch threads per actor (its CPU share)


class RestoreWorker:
    """A Ray Data callable class: one model per actor, one row per file in and out."""

    def __init__(self, settings: WorkerSettings) -> None:
        import torch

        from memnet.cpu_settings import retain_freed_memory
        from memnet.inference.api import load

        # An actor owns its process: it keeps freed memory as the memnet command does.
        retain_freed_memory()
        if settings.threads:
            torch.set_num_threads(settings.threads)
        self.settings = settings
        self.restorer = load(**settings.load)

    def restore(self, job: Job) -> tuple[float, str]:
        """Restore one file like `memnet restore` does; returns output megapixels and the
        warning the command would print for it ("" if none)."""
        if is_video(job.source):
            from memnet.video import restore_video

            result = restore_video(
                self.restorer, job.source, job.target, options=self.settings.video
            )
            return result.megapixels, ""
        from memnet.imaging.reading import read_image
        from memnet.imaging.writing import alpha_dropped, write_image

        picture = read_image(job.source, samples=True)
        warning = alpha_dropped(job.source, picture, job.target) or ""
        restored = self.restorer.restore_for_file(picture, job.target)
        del picture
        write_image(restored, job.target)
        return restored.height * restored.width / 1e6, warning

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        rows: dict[str, list[Any]] = {name: [] for name in RESULT_COLUMNS}

        def add(job: Job, status: str, reason: str = "", megapixels: float = 0.0) -> None:
            for name, value in zip(
                RESULT_COLUMNS,
                (str(job.source), str(job.target), status, reason, megapixels),
                strict=True,
            ):
                rows[name].append(value)

        jobs = [
            Job(Path(str(s)), Path(str(t)))
            for s, t in zip(batch["source"], batch["target"], strict=True)
        ]
        todo = []
        for job in jobs:
            if not self.settings.overwrite and job.target.exists():
                add(job, "present")
            else:
                todo.append(job)
        done: dict[Job, tuple[float, str]] = {}

        def restore(job: Job) -> float:
            done[job] = self.restore(job)
            return done[job][0]

        def restored(job: Job) -> None:
            megapixels, warning = done.get(job, (0.0, ""))
            add(job, "restored", warning, megapixels)

        run_jobs(
            todo,
            restore,
            on_done=restored,
            on_error=lambda source, reason: add(
                next(j for j in todo if j.source == source), "failed", reason
            ),
        )
        return rows
