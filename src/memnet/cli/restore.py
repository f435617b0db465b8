"""`memnet restore`: restore a file, a folder or a glob of images with a released model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from memnet.devices import DEVICE_HELP
from memnet.errors import MemNetError
from memnet.imaging.reading import read_image
from memnet.imaging.writing import write_image
from memnet.inference.api import BASELINE_METHODS, ImageRestorer, load
from memnet.inference.engine import DTYPES
from memnet.inference.folders import EXTENSIONS, Job, collect_inputs, plan_outputs, run_jobs
from memnet.inference.pictures import COLOR_MODES
from memnet.scale.ray_job import FAILED_MANIFEST
from memnet.tasks import (
    baselines_in_words,
    kinds_in_words,
    task_class,
    task_classes,
    task_kinds,
)
from memnet.video import EncodeOptions, is_video
from memnet.video.encoder import DEFAULT_CRF
from memnet.weights import zoo
from memnet.weights.loading import outside_training

# Images needing at least this many progress steps (tiles, or bands of streamed rows) get a
# progress bar of their own.
TILE_BAR_MIN_WINDOWS = 4

EPILOG = """\
examples:
  memnet restore -i photo.png -o photo-x2.png --task sr --scale 2
  memnet restore -i scans/ -o clean/ --recursive --task denoise --sigma 50
  memnet restore -i 'shots/*.jpg' -o fixed/ --task jpeg --quality 10 --ext png
  memnet restore -i clip.mp4 -o clean.mp4 --task denoise --sigma 25 --crf 16

videos (.mp4 .m4v .mov .mkv .webm .avi; needs memnet[video]): every frame is restored like an
image, encoded as a stream (no frame files), with its timestamps, frame rate, rotation and colour
range; audio and subtitles are copied untouched. Default encoding: the input's codec when it has
a quality setting (else libx264), its pixel format when the encoder takes it (else yuv420p), CRF 18.

colour (--color auto): SR sends the luminance Y through the network and upsamples Cb/Cr with
MATLAB bicubic, as the MemNet authors did; denoising restores each RGB channel; JPEG deblocking
restores Y, Cb and Cr. Gray images go through the network directly; alpha is kept (bicubic for
SR). 16-bit inputs give 16-bit outputs in PNG and TIFF.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "restore",
        help="restore images (super-resolution, denoising, JPEG deblocking)",
        description="Restore an image, a folder of images or a glob with MemNet. Outputs are "
        "written atomically; inputs are never overwritten, existing outputs only with "
        "--overwrite.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    io = parser.add_argument_group("input and output")
    io.add_argument("-i", "--input", required=True, help="an image file, a folder or a glob")
    io.add_argument(
        "-o", "--output", required=True, help="output file (for one input file) or folder"
    )
    io.add_argument(
        "--recursive", action="store_true", help="descend into sub-folders (mirrored in OUTPUT)"
    )
    io.add_argument(
        "--suffix",
        default=None,
        help="text added to every output name (default: none, or e.g. '_x2' when OUTPUT is the "
        "input's own folder)",
    )
    io.add_argument(
        "--ext",
        choices=EXTENSIONS,
        default="auto",
        help="output format (auto: the input's, but PNG for JPEG deblocking)",
    )
    io.add_argument(
        "--overwrite", action="store_true", help="replace existing outputs (never an input)"
    )

    task = parser.add_argument_group("task")
    task.add_argument(
        "--task", choices=task_kinds(), help="what to restore (default: the model's task)"
    )
    for cls in task_classes():
        task.add_argument(
            f"--{cls.level_name}",
            type=cls.level_type,
            help=f"{cls.level_help} "
            + ("(the network is blind)" if cls.blind else f"(default {cls.default_level:g})"),
        )
    task.add_argument(
        "--color",
        choices=COLOR_MODES,
        default="auto",
        help="colour handling: "
        + ", ".join(f"{cls.kind} → {cls.default_color}" for cls in task_classes())
        + " when auto",
    )

    model = parser.add_argument_group("model")
    chooser = model.add_mutually_exclusive_group()
    chooser.add_argument(
        "--model", help="released model name (see 'memnet info'; default: the task's)"
    )
    chooser.add_argument("--weights", help="a .safetensors weights file (config in its metadata)")
    chooser.add_argument(
        "--method",
        choices=BASELINE_METHODS,
        help=f"no network: {baselines_in_words()}",
    )
    model.add_argument(
        "--unsafe-load",
        action="store_true",
        help="allow --weights to be a pickle (.pt/.pth/.ckpt), read with "
        "torch.load(weights_only=True); only for files you trust",
    )

    video = parser.add_argument_group("video")
    video.add_argument(
        "--video-codec",
        help="encoder for restored videos, e.g. libx264, libx265, libvpx-vp9, ffv1 "
        "(default: the input's codec when it has a quality setting, else libx264)",
    )
    video.add_argument(
        "--crf", type=int, help=f"constant-quality level, lower is better (default {DEFAULT_CRF})"
    )
    video.add_argument(
        "--pix-fmt",
        help="pixel format, e.g. yuv420p (default: the input's, if the encoder takes it)",
    )

    scale = parser.add_argument_group("scale-out (Ray Data; needs memnet[ray])")
    scale.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run on a Ray cluster (ADDRESS: auto, or HEAD_IP:6379 from 'ray start --head'; "
        "without one: RAY_ADDRESS, else the cluster last started on this machine, else a new "
        "local one). Outputs already complete are skipped, "
        "so a rerun resumes a killed job",
    )
    scale.add_argument(
        "--workers", type=int, help="Ray actors, one model each (default: as many as fit)"
    )
    scale.add_argument(
        "--cpus-per-worker", type=float, default=1.0, help="CPUs per actor (default 1)"
    )
    scale.add_argument(
        "--gpus-per-worker", type=float, default=0.0, help="GPUs per actor (default 0)"
    )
    scale.add_argument(
        "--failed-list",
        help=f"JSON-lines list of failed files (default: OUTPUT/{FAILED_MANIFEST})",
    )

    engine = parser.add_argument_group("engine")
    engine.add_argument("--device", default="auto", help=DEVICE_HELP)
    engine.add_argument(
        "--dtype", choices=tuple(DTYPES), default="fp32", help="fp16/bf16 only on GPUs"
    )
    engine.add_argument(
        "--tile",
        type=int,
        default=None,
        help="tile edge in output pixels, 0 = whole image (default: whole when it fits free "
        "memory; otherwise streamed over rows on a CPU, tiled on a GPU)",
    )
    engine.add_argument(
        "--tile-pad",
        type=int,
        default=None,
        help="context around each tile in pixels (default: half the receptive field, which "
        "makes tiles identical to whole-image inference)",
    )
    engine.add_argument(
        "--self-ensemble",
        action="store_true",
        help="average the 8 flips/rotations (8x slower, slightly better)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print only errors and warnings (no progress bars, output lines or summary)",
    )
    parser.set_defaults(handler=run)


def _emit(text: str, stream: TextIO) -> None:
    """Write one whole line and flush it, after flushing the other stream.

    When stdout and stderr go to one pipe, stdout is block-buffered and stderr is not:
    without this, error lines come out before every output line and can land inside one.
    """
    other = sys.stderr if stream is sys.stdout else sys.stdout
    other.flush()
    tqdm.write(text, file=stream)
    stream.flush()


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        _emit(text, sys.stdout)


def _note(text: str) -> None:
    _emit(f"memnet restore: {text}", sys.stderr)


def _model_spec(args: argparse.Namespace) -> str:
    if args.method:
        return str(args.method)
    if args.weights:
        return str(args.weights)
    if args.model:
        return str(args.model)
    if args.task is None:
        raise MemNetError(
            f"give --task ({kinds_in_words()}), or a --model/--weights to take it from"
        )
    return zoo.default_model(args.task).name


def _build(args: argparse.Namespace) -> ImageRestorer:
    restorer = load(**_load_settings(args))
    cls = task_class(restorer.task)
    if not cls.blind and getattr(args, cls.level_name) is None:  # the task came from the model
        restorer.levels[cls.level_name] = cls.default_level
    _warn_outside_training(restorer)
    return restorer


def _load_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The arguments of memnet.load for this run (Ray workers load their model from them)."""
    if args.tile is not None and args.tile < 0:
        raise MemNetError("--tile must be 0 (whole image) or a positive tile edge")
    if args.tile_pad is not None and args.tile_pad < 0:
        raise MemNetError("--tile-pad must be non-negative")
    spec = _model_spec(args)
    if spec in BASELINE_METHODS and args.task is None:
        raise MemNetError(f"--method {spec} needs --task ({kinds_in_words()})")
    levels = {cls.level_name: getattr(args, cls.level_name) for cls in task_classes()}
    if args.task is not None:
        cls = task_class(args.task)
        if not cls.blind and levels[cls.level_name] is None:
            levels[cls.level_name] = cls.default_level
    return {
        "name_or_path": spec,
        "device": args.device,
        "task": args.task,
        **levels,
        "tile": args.tile,
        "tile_pad": args.tile_pad,
        "dtype": args.dtype,
        "self_ensemble": args.self_ensemble,
        "color": args.color,
        "unsafe_load": args.unsafe_load,
    }


def _warn_outside_training(restorer: ImageRestorer) -> None:
    warning = outside_training(restorer.loaded, restorer.make_task())
    if warning is not None:
        _note(warning)


def run(args: argparse.Namespace) -> int:
    sources, base = collect_inputs(args.input, recursive=args.recursive)
    restorer = _build(args)
    task = restorer.make_task()
    out = Path(args.output)
    suffix = args.suffix
    if suffix is None:
        same_folder = out.is_dir() and out.resolve() == base.resolve()
        suffix = f"_{task.label}" if same_folder and not Path(args.input).is_file() else ""
    jobs = plan_outputs(
        sources,
        base,
        args.output,
        suffix=suffix,
        ext=args.ext,
        default_ext=task.auto_format if args.ext == "auto" else None,
        # On Ray, outputs already complete are skipped (a resumed job), not refused.
        overwrite=args.overwrite or args.ray is not None,
        single_file_input=Path(args.input).is_file(),
    )
    if args.ray is not None:
        return _run_on_ray(args, jobs, restorer)
    show_bars = not args.quiet
    # disable=None: bars only on a terminal, never in logs or pipes.
    images = tqdm(total=len(jobs), unit="img", disable=None if show_bars else True, desc="restore")

    def restore_video_one(job: Job) -> float:
        from memnet.video import restore_video

        frames = tqdm(
            unit="frame", leave=False, desc=job.source.name, disable=None if show_bars else True
        )

        def progress(done: int, total: int | None) -> None:
            if total is not None and total >= done and frames.total != total:
                frames.total = total  # ETA from the container's frame count
            frames.update(done - frames.n)

        try:
            result = restore_video(
                restorer, job.source, job.target, options=_encode_options(args), progress=progress
            )
        finally:
            frames.close()
        written[job] = f" ({result.frames} frames, {result.encoder} {result.pix_fmt})"
        return result.megapixels

    written: dict[Job, str] = {}

    def restore_one(job: Job) -> float:
        if is_video(job.source):
            return restore_video_one(job)
        picture = read_image(job.source)
        tiles = None

        def progress(done: int, total: int) -> None:
            # `total` comes from the plan the restore runs, so the bar ends where the work does.
            nonlocal tiles
            if tiles is None and show_bars and total >= TILE_BAR_MIN_WINDOWS:
                tiles = tqdm(
                    total=total, unit="part", leave=False, desc=job.source.name, disable=None
                )
            if tiles is not None:
                tiles.n = done
                tiles.refresh()

        try:
            restored = restorer.restore_picture(picture, progress=progress)
        finally:
            if tiles is not None:
                tiles.close()
        del picture
        write_image(restored, job.target)
        return restored.height * restored.width / 1e6

    def done(job: Job) -> None:
        images.update(1)
        _say(args, f"{job.source} -> {job.target}{written.pop(job, '')}")

    def failed(source: Path, reason: str) -> None:
        images.update(1)
        _note(f"error: {reason}")

    try:
        report = run_jobs(jobs, restore_one, on_done=done, on_error=failed)
    finally:
        images.close()
    _say(args, f"memnet restore ({restorer.name}, {task.kind} {task.label}): {report.summary()}")
    if report.failed and args.quiet:
        _note(report.summary())
    return 0 if report.ok else 1


def _encode_options(args: argparse.Namespace) -> EncodeOptions:
    return EncodeOptions(codec=args.video_codec, crf=args.crf, pix_fmt=args.pix_fmt)


def _run_on_ray(args: argparse.Namespace, jobs: list[Job], restorer: ImageRestorer) -> int:
    """The same plan, restored by Ray actors (memnet.scale); failures also go to a list."""
    from memnet.scale.ray_job import RayOptions, restore_on_ray
    from memnet.scale.worker import WorkerSettings

    settings = _load_settings(args)
    # what the driver resolved (the task, a default level), so every actor does the same
    settings["task"] = restorer.task
    settings.update(restorer.levels)
    out = Path(args.output)
    folder = out.parent if len(jobs) == 1 and jobs[0].target == out else out
    report = restore_on_ray(
        jobs,
        WorkerSettings(settings, _encode_options(args), overwrite=args.overwrite),
        RayOptions(
            address=args.ray or None,
            workers=args.workers,
            cpus_per_worker=args.cpus_per_worker,
            gpus_per_worker=args.gpus_per_worker,
            progress=not args.quiet,
        ),
        failed_manifest=Path(args.failed_list) if args.failed_list else folder / FAILED_MANIFEST,
    )
    for _source, reason in report.batch.failed:
        _note(f"error: {reason}")
    task = restorer.make_task()
    _say(args, f"memnet restore ({restorer.name}, {task.kind} {task.label}): {report.summary()}")
    if report.batch.failed and args.quiet:
        _note(report.summary())
    return 0 if report.batch.ok else 1
