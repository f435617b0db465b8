"""A `memnet restore` job: files, folders, globs and videos restored with one model.

From the options of one run this decides the model to load, the output of every input (see
folders.plan_outputs) and whether the work runs here or on Ray actors (ray_job.py), then
restores and reports each file as it is done. The command line only fills `RestoreOptions`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memnet.errors import MemNetError
from memnet.inference.api import ImageRestorer, load
from memnet.inference.console import Console
from memnet.inference.folders import Job, collect_inputs, plan_outputs, run_jobs
from memnet.scale.ray_job import FAILED_MANIFEST
from memnet.tasks import baseline_methods, kinds_in_words, task_class, task_classes
from memnet.video import EncodeOptions, is_video
from memnet.weights import zoo
from memnet.weights.loading import outside_training

__all__ = ["RestoreOptions", "load_settings", "restore_files"]

# Images needing at least this many progress steps (tiles, or bands of streamed rows) get a
# progress bar of their own.
TILE_BAR_MIN_WINDOWS = 4


@dataclass(frozen=True)
class RestoreOptions:
    """What one restore job asks for; the names are `memnet restore`'s options."""

    input: str
    output: str
    recursive: bool = False
    suffix: str | None = None
    ext: str = "auto"
    overwrite: bool = False
    task: str | None = None
    levels: Mapping[str, float | None] = field(default_factory=dict)  # level name → value given
    color: str = "auto"
    model: str | None = None
    weights: str | None = None
    method: str | None = None
    unsafe_load: bool = False
    video_codec: str | None = None
    crf: int | None = None
    pix_fmt: str | None = None
    ray: str | None = None  # None: here; "": a Ray cluster found as ray.init finds one
    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    failed_list: str | None = None
    device: str = "auto"
    dtype: str = "fp32"
    tile: int | None = None
    tile_pad: int | None = None
    self_ensemble: bool = False
    quiet: bool = False

    def encode_options(self) -> EncodeOptions:
        """How restored videos are encoded."""
        return EncodeOptions(codec=self.video_codec, crf=self.crf, pix_fmt=self.pix_fmt)


def _model_spec(options: RestoreOptions) -> str:
    if options.method:
        return options.method
    if options.weights:
        return options.weights
    if options.model:
        return options.model
    if options.task is None:
        raise MemNetError(
            f"give --task ({kinds_in_words()}), or a --model/--weights to take it from"
        )
    return zoo.default_model(options.task).name


def load_settings(options: RestoreOptions) -> dict[str, Any]:
    """The arguments of memnet.load for this job (Ray workers load their model from them)."""
    if options.tile is not None and options.tile < 0:
        raise MemNetError("--tile must be 0 (whole image) or a positive tile edge")
    if options.tile_pad is not None and options.tile_pad < 0:
        raise MemNetError("--tile-pad must be non-negative")
    spec = _model_spec(options)
    if spec in baseline_methods() and options.task is None:
        raise MemNetError(f"--method {spec} needs --task ({kinds_in_words()})")
    levels = {cls.level_name: options.levels.get(cls.level_name) for cls in task_classes()}
    if options.task is not None:
        cls = task_class(options.task)
        levels[cls.level_name] = cls.level_or_default(levels[cls.level_name])
    return {
        "name_or_path": spec,
        "device": options.device,
        "task": options.task,
        **levels,
        "tile": options.tile,
        "tile_pad": options.tile_pad,
        "dtype": options.dtype,
        "self_ensemble": options.self_ensemble,
        "color": options.color,
        "unsafe_load": options.unsafe_load,
    }


def _build(options: RestoreOptions, console: Console) -> ImageRestorer:
    restorer = load(**load_settings(options))
    cls = task_class(restorer.task)  # the model's task, when --task did not say
    level = cls.level_or_default(options.levels.get(cls.level_name))
    if level is not None:
        restorer.levels[cls.level_name] = level
    warning = outside_training(restorer.loaded, restorer.make_task())
    if warning is not None:
        console.note(warning)
    return restorer


def _plan(
    options: RestoreOptions, restorer: ImageRestorer, sources: list[Path], base: Path
) -> list[Job]:
    task = restorer.make_task()
    out = Path(options.output)
    single_file = Path(options.input).is_file()
    suffix = options.suffix
    if suffix is None:
        same_folder = out.is_dir() and out.resolve() == base.resolve()
        suffix = f"_{task.label}" if same_folder and not single_file else ""
    return plan_outputs(
        sources,
        base,
        options.output,
        suffix=suffix,
        ext=options.ext,
        default_ext=task.auto_format if options.ext == "auto" else None,
        # On Ray, outputs already complete are skipped (a resumed job), not refused.
        overwrite=options.overwrite or options.ray is not None,
        single_file_input=single_file,
    )


def restore_files(options: RestoreOptions) -> bool:
    """Run the job, printing a line per output and a summary; True when every input worked."""
    console = Console("memnet restore", quiet=options.quiet)
    # the inputs are found (or refused) before a model is loaded
    sources, base = collect_inputs(options.input, recursive=options.recursive)
    restorer = _build(options, console)
    jobs = _plan(options, restorer, sources, base)
    if options.ray is not None:
        return _restore_on_ray(options, jobs, restorer, console)
    return _restore_here(options, jobs, restorer, console)


def _summary(restorer: ImageRestorer, report_summary: str) -> str:
    task = restorer.make_task()
    return f"memnet restore ({restorer.name}, {task.kind} {task.label}): {report_summary}"


def _restore_here(
    options: RestoreOptions, jobs: list[Job], restorer: ImageRestorer, console: Console
) -> bool:
    from memnet.imaging.reading import read_image
    from memnet.imaging.writing import alpha_dropped, write_image

    images = console.bar(total=len(jobs), unit="img", desc="restore")
    written: dict[Job, str] = {}

    def restore_video_one(job: Job) -> float:
        from memnet.video import restore_video

        frames = console.bar(unit="frame", leave=False, desc=job.source.name)

        def progress(done: int, total: int | None) -> None:
            if total is not None and total >= done and frames.total != total:
                frames.total = total  # ETA from the container's frame count
            frames.update(done - frames.n)

        try:
            result = restore_video(
                restorer,
                job.source,
                job.target,
                options=options.encode_options(),
                progress=progress,
            )
        finally:
            frames.close()
        written[job] = f" ({result.frames} frames, {result.encoder} {result.pix_fmt})"
        return result.megapixels

    def restore_one(job: Job) -> float:
        if is_video(job.source):
            return restore_video_one(job)
        picture = read_image(job.source, samples=True)
        if (warning := alpha_dropped(job.source, picture, job.target)) is not None:
            console.note(warning)
        tiles = None

        def progress(done: int, total: int) -> None:
            # `total` comes from the plan the restore runs, so the bar ends where the work does.
            nonlocal tiles
            if tiles is None and not options.quiet and total >= TILE_BAR_MIN_WINDOWS:
                tiles = console.bar(total=total, unit="part", leave=False, desc=job.source.name)
            if tiles is not None:
                tiles.n = done
                tiles.refresh()

        try:
            restored = restorer.restore_for_file(picture, job.target, progress=progress)
        finally:
            if tiles is not None:
                tiles.close()
        del picture
        write_image(restored, job.target)
        return restored.height * restored.width / 1e6

    def done(job: Job) -> None:
        images.update(1)
        console.say(f"{job.source} -> {job.target}{written.pop(job, '')}")

    def failed(source: Path, reason: str) -> None:
        images.update(1)
        console.note(f"error: {reason}")

    try:
        report = run_jobs(jobs, restore_one, on_done=done, on_error=failed)
    finally:
        images.close()
    console.say(_summary(restorer, report.summary()))
    if report.failed and options.quiet:
        console.note(report.summary())
    return report.ok


def _restore_on_ray(
    options: RestoreOptions, jobs: list[Job], restorer: ImageRestorer, console: Console
) -> bool:
    """The same plan, restored by Ray actors (memnet.scale); failures also go to a list."""
    from memnet.scale.ray_job import RayOptions, restore_on_ray
    from memnet.scale.worker import WorkerSettings

    settings = load_settings(options)
    # what the driver resolved (the task, a default level), so every actor does the same
    settings["task"] = restorer.task
    settings.update(restorer.levels)
    out = Path(options.output)
    folder = out.parent if len(jobs) == 1 and jobs[0].target == out else out
    failed_list = Path(options.failed_list) if options.failed_list else folder / FAILED_MANIFEST
    report = restore_on_ray(
        jobs,
        WorkerSettings(settings, options.encode_options(), overwrite=options.overwrite),
        RayOptions(
            address=options.ray or None,
            workers=options.workers,
            cpus_per_worker=options.cpus_per_worker,
            gpus_per_worker=options.gpus_per_worker,
            progress=not options.quiet,
        ),
        failed_manifest=failed_list,
    )
    for warning in report.batch.warnings:
        console.note(warning)
    for _source, reason in report.batch.failed:
        console.note(f"error: {reason}")
    console.say(_summary(restorer, report.summary()))
    if report.batch.failed and options.quiet:
        console.note(report.summary())
    return report.batch.ok
