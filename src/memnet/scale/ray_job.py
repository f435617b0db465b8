"""Run a planned restore on Ray Data: one row per file, actors holding one model each.

The driver plans the job exactly as the single-machine path does (same output names, same
refusals), skips outputs that are already complete (every output is written atomically, so one
that exists is whole), sends the rest through an actor pool and collects one result row per
file. Ray re-runs the work of an actor that dies, so a killed worker costs time, not outputs;
files that fail are written to a JSON-lines manifest with their reasons.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memnet.errors import MemNetError
from memnet.fsutil import atomic_write_text, stale_temporaries
from memnet.inference.folders import BatchReport, Job
from memnet.scale.worker import RestoreWorker, WorkerSettings

__all__ = ["FAILED_MANIFEST", "RayOptions", "RayReport", "restore_on_ray"]

FAILED_MANIFEST = ".memnet-failed.jsonl"  # hidden: never taken as an input on a rerun


@dataclass(frozen=True)
class RayOptions:
    """Where the job runs and what each actor gets."""

    address: str | None = None  # None: RAY_ADDRESS, else this machine's cluster, else a new one
    workers: int | None = None  # actors; None: as many as the cluster's CPUs (GPUs) allow
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    progress: bool = True


@dataclass
class RayReport:
    """The batch report plus what only a resumable job has: outputs found complete."""

    batch: BatchReport
    skipped: list[Job] = field(default_factory=list)
    workers: int = 0
    failed_manifest: Path | None = None

    def summary(self) -> str:
        skipped = f", {len(self.skipped)} already complete" if self.skipped else ""
        where = f"; failures listed in {self.failed_manifest}" if self.failed_manifest else ""
        return f"{self.batch.summary()}{skipped} ({self.workers} Ray workers){where}"


def _require_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise MemNetError("--ray needs Ray: pip install -c constraints.txt 'memnet[ray]'") from None
    return ray


def _connect(ray: Any, address: str | None) -> None:
    if ray.is_initialized():  # e.g. a program (or test) that started Ray itself
        return
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise MemNetError(f"cannot reach the Ray cluster {address or ''}: {first}") from None


def _worker_count(ray: Any, options: RayOptions, files: int) -> int:
    if options.workers is not None:
        if options.workers < 1:
            raise MemNetError("--workers must be at least 1")
        return min(options.workers, files)
    resources = ray.cluster_resources()
    if options.gpus_per_worker > 0:
        fit = resources.get("GPU", 0) // options.gpus_per_worker
    else:
        fit = resources.get("CPU", 1) // max(options.cpus_per_worker, 1e-9)
    return int(max(1, min(fit, files)))


def restore_on_ray(
    jobs: list[Job],
    settings: WorkerSettings,
    options: RayOptions | None = None,
    *,
    failed_manifest: Path,
) -> RayReport:
    """Restore `jobs` on Ray; outputs already complete are skipped unless `settings.overwrite`."""
    options = options or RayOptions()
    if options.cpus_per_worker <= 0 or options.gpus_per_worker < 0:
        raise MemNetError("--cpus-per-worker must be positive and --gpus-per-worker not negative")
    skipped = [] if settings.overwrite else [job for job in jobs if job.target.exists()]
    done = set(skipped)
    pending = [job for job in jobs if job not in done]
    report = RayReport(BatchReport(), skipped)
    start = time.perf_counter()
    if pending:
        ray = _require_ray()
        _connect(ray, options.address)
        report.workers = _worker_count(ray, options, len(pending))
        rows = _run(ray, pending, settings, options, report.workers)
        _collect(report.batch, pending, rows)
        for job in pending:  # temporaries of workers killed mid-write
            for leftover in stale_temporaries(job.target):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
    report.batch.seconds = time.perf_counter() - start
    _write_manifest(report, failed_manifest)
    return report


def _run(
    ray: Any, pending: list[Job], settings: WorkerSettings, options: RayOptions, workers: int
) -> list[dict[str, Any]]:
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = options.progress
    threads = settings.threads or max(1, int(options.cpus_per_worker))
    worker_settings = WorkerSettings(settings.load, settings.video, settings.overwrite, threads)
    items = [{"source": str(job.source), "target": str(job.target)} for job in pending]
    # One block per file, so that idle actors take the next file as soon as they are free.
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    results = dataset.map_batches(
        RestoreWorker,
        fn_constructor_kwargs={"settings": worker_settings},
        batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_cpus=options.cpus_per_worker,
        num_gpus=options.gpus_per_worker,
    )
    try:
        return list(results.take_all())
    except ray.exceptions.RayError as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise MemNetError(f"the Ray job failed: {first}") from None


def _collect(batch: BatchReport, pending: list[Job], rows: list[dict[str, Any]]) -> None:
    by_source: dict[str, dict[str, Any]] = {}
    for line in rows:  # one row per file; a retried file keeps its last word
        by_source[str(line["source"])] = line
    for job in pending:
        row = by_source.get(str(job.source))
        if row is None:
            batch.failed.append((job.source, f"{job.source}: no result came back from Ray"))
        elif row["status"] == "failed":
            batch.failed.append((job.source, str(row["reason"])))
        else:
            batch.written.append(job)
            batch.megapixels += float(row["megapixels"])
            if row["status"] == "restored" and row["reason"]:
                batch.warnings.append(str(row["reason"]))


def _write_manifest(report: RayReport, path: Path) -> None:
    if report.batch.failed:
        lines = [
            json.dumps({"path": str(source), "reason": reason})
            for source, reason in report.batch.failed
        ]
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, "\n".join(lines) + "\n")
        report.failed_manifest = path
    else:  # a rerun that fixed everything leaves no stale list behind
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
