"""The step loop of a run: data, validation, checkpoints, stops, the metrics log.

A run resumes from its last state if asked, loads its data (a missing dataset stops it before
anything is written), then steps until `train.iterations` or a stop — Ctrl-C, SIGTERM, the time
limit, `stop_at` — and always ends with a checkpoint. Validation and checkpoint writes are not
counted as training time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from memnet.fsutil import atomic_write_text
from memnet.training.batches import BatchStream
from memnet.training.environment import StopSignals
from memnet.training.log import MetricsLog, Progress
from memnet.training.patches import build_training_set
from memnet.training.reports import (
    Window,
    data_line,
    interval_line,
    recipe_changes,
    run_line,
    train_record,
)
from memnet.training.step import DivergenceError
from memnet.training.validation import Validation, build_validation

if TYPE_CHECKING:
    from memnet.training.trainer import RunResult, Trainer

__all__ = ["run_training"]


def run_training(trainer: Trainer) -> RunResult:
    """Resume if asked, load the data, train to the end or a stop, checkpoint."""
    recipe, options, procs = trainer.recipe, trainer.options, trainer.procs
    main = procs.is_main
    started = time.monotonic()
    trainer.deadline = started + options.max_minutes * 60 if options.max_minutes else None
    resume_from = trainer.folder.resume_point(options.resume)
    if resume_from is not None:
        trainer.load(resume_from)
    total = recipe.train.iterations
    progress = Progress(main and not options.quiet, total, trainer.iteration)
    progress.line(
        run_line(recipe, device=trainer.device, procs=procs, amp_dtype=trainer.amp_dtype,
                 folder=trainer.folder.root)
    )  # fmt: skip
    if trainer.iteration >= total:
        progress.line(
            f"run already complete at iteration {trainer.iteration} "
            f"(train.iterations = {total}); raise it with --set train.iterations=N"
        )
        progress.close()
        return trainer.result("completed")
    # Data first: a missing dataset stops the run before anything is written.
    data_root = options.data_root if options.data_root is not None else recipe.data.data_root
    source = build_training_set(recipe.task, recipe.data, data_root=data_root)
    validation: Validation | None = None
    if main and recipe.validation.interval and recipe.validation.sets:
        validation = build_validation(
            recipe.validation,
            recipe.task.kind,
            data_root=data_root,
            synthetic=recipe.data.synthetic,
        )
    progress.line(data_line(source, validation, time.monotonic() - started))
    if main:
        trainer.folder.prepare()
        atomic_write_text(trainer.folder.recipe, trainer.recipe_yaml)
    log = MetricsLog(
        trainer.folder.metrics if main else None,
        trainer.folder.tensorboard if main and recipe.log.tensorboard else None,
        resume_at=trainer.iteration if resume_from is not None else None,
    )
    stream = BatchStream(
        source,
        batch_size=trainer.local_batch,
        augment=recipe.data.augment,
        seed=recipe.train.seed,
        rank=procs.rank,
        start=trainer.iteration,
        workers=recipe.data.workers,
        prefetch=recipe.data.prefetch,
        pin_memory=trainer.device.type == "cuda",
    )
    try:
        _log_start(trainer, resume_from, progress, log)
        if validation is not None and recipe.validation.at_start and resume_from is None:
            trainer.validate(validation, log, progress)
        with StopSignals() as signals:
            reason = _loop(trainer, stream, validation, log, progress, signals)
        return trainer.result(reason)
    except DivergenceError as error:
        log.write({"kind": "event", "event": "diverged", "iteration": trainer.iteration,
                   "message": str(error)})  # fmt: skip
        raise
    finally:
        stream.close()
        progress.close()
        log.close()


def _loop(
    trainer: Trainer,
    stream: BatchStream,
    validation: Validation | None,
    log: MetricsLog,
    progress: Progress,
    signals: StopSignals,
) -> str:
    recipe, options = trainer.recipe, trainer.options
    total = recipe.train.iterations
    deadline = trainer.deadline
    window = Window()
    reason = "completed"
    tick, cpu_tick = time.perf_counter(), time.process_time()
    while trainer.iteration < total:
        inputs, targets, waited = stream.next()
        # a stop asked for by a signal or the clock is agreed on by all processes in step()
        trainer.stop_reason = signals.reason or (
            "time_limit" if deadline is not None and time.monotonic() >= deadline else None
        )
        if options.stop_at is not None and trainer.iteration + 1 >= options.stop_at:
            trainer.stop_reason = trainer.stop_reason or "stop_at"
        loss, grad_norm, lr = trainer.step(inputs, targets)
        spent = time.perf_counter() - tick
        trainer.train_seconds += spent
        trainer.cpu_seconds += time.process_time() - cpu_tick
        window.add(loss, grad_norm, waited, spent)
        if trainer.threads is not None:
            trainer.threads.record(spent - waited)
        it = trainer.iteration
        patches_per_s = window.steps * recipe.train.batch_size / max(window.seconds, 1e-9)
        progress.step(
            {"loss": f"{loss:.4g}", "lr": f"{lr:.2g}", "patches/s": f"{patches_per_s:.1f}"}
        )
        if it % recipe.log.interval == 0 or it == total:
            record = train_record(
                window, iteration=it, lr=lr, batch_ms=stream.batch_ms,
                batch_size=recipe.train.batch_size, train_seconds=trainer.train_seconds,
                cpu_seconds=trainer.cpu_seconds,
            )  # fmt: skip
            log.write(record)
            progress.interval_line(interval_line(record, window, total))
            window = Window()
        if validation is not None and it % recipe.validation.interval == 0:
            trainer.validate(validation, log, progress)
        if trainer.procs.is_main:
            if it % recipe.checkpoint.interval == 0:
                trainer.save_last()
            snapshots = recipe.checkpoint.snapshot_interval
            if snapshots and it % snapshots == 0:
                trainer.save_snapshot()
        if trainer.stopping:
            reason = trainer.stop_reason or signals.reason or "interrupted"
            break
        # validation and checkpoint writes are not training time
        tick, cpu_tick = time.perf_counter(), time.process_time()
    trainer.share_buffers()
    finished = reason == "completed"
    if finished and validation is not None and trainer.iteration % recipe.validation.interval:
        trainer.validate(validation, log, progress)  # the final weights are scored too
    trainer.save_last()
    log.write({"kind": "event", "event": reason, "iteration": trainer.iteration,
               "elapsed_s": round(trainer.train_seconds, 1)})  # fmt: skip
    return reason


def _log_start(
    trainer: Trainer, resume_from: Path | None, progress: Progress, log: MetricsLog
) -> None:
    event: dict[str, Any] = {
        "kind": "event",
        "event": "resume" if resume_from is not None else "start",
        "iteration": trainer.iteration,
        "device": str(trainer.device),
        "processes": trainer.procs.world_size,
        "threads": torch.get_num_threads(),
    }
    if resume_from is not None:
        changed = recipe_changes(trainer.resumed_recipe, trainer.recipe)
        event["from"] = str(resume_from)
        event["recipe_changes"] = changed
        note = f" (recipe changes: {', '.join(changed)})" if changed else ""
        progress.line(f"resuming from {resume_from} at iteration {trainer.iteration}{note}")
    log.write(event)
    if trainer.procs.is_main and trainer.recipe.log.tensorboard and not log.tensorboard:
        progress.line("TensorBoard not installed: metrics go to metrics.jsonl only")
