"""`memnet restore`: restore a file, a folder or a glob of images with a released model."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from memnet import zoo
from memnet.api import BASELINE_METHODS, ImageRestorer, load
from memnet.batch import EXTENSIONS, Job, collect_inputs, plan_outputs, run_jobs
from memnet.errors import MemNetError
from memnet.io import read_image, write_image
from memnet.pipeline import COLOR_MODES, DEFAULT_COLOR
from memnet.restore import DTYPES
from memnet.tasks import TASK_KINDS

# Images needing at least this many progress steps (tiles, or bands of streamed rows) get a
# progress bar of their own.
TILE_BAR_MIN_WINDOWS = 4

EPILOG = """\
examples:
  memnet restore -i photo.png -o photo-x2.png --task sr --scale 2
  memnet restore -i scans/ -o clean/ --recursive --task denoise --sigma 50
  memnet restore -i 'shots/*.jpg' -o fixed/ --task jpeg --quality 10 --ext png

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
        "--task", choices=TASK_KINDS, help="what to restore (default: the model's task)"
    )
    task.add_argument("--scale", type=float, help="SR factor, e.g. 2, 3 or 4 (default 2)")
    task.add_argument(
        "--sigma", type=float, help="noise level of the input on 0..255 (the network is blind)"
    )
    task.add_argument(
        "--quality", type=int, help="JPEG quality of the input, 1..100 (the network is blind)"
    )
    task.add_argument(
        "--color",
        choices=COLOR_MODES,
        default="auto",
        help="colour handling: "
        + ", ".join(f"{k} → {v}" for k, v in DEFAULT_COLOR.items())
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
        help="no network: bicubic upsampling for SR, the input unchanged otherwise",
    )
    model.add_argument(
        "--unsafe-load",
        action="store_true",
        help="allow --weights to be a pickle (.pt/.pth/.ckpt), read with "
        "torch.load(weights_only=True); only for files you trust",
    )

    engine = parser.add_argument_group("engine")
    engine.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
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
            "give --task (sr, denoise or jpeg), or a --model/--weights to take it from"
        )
    entry = zoo.default_for(args.task)
    if entry is None:
        method = "bicubic" if args.task == "sr" else "identity"
        _note(
            f"note: no released model for --task {args.task} is bundled yet, so this runs the "
            f"{method} method (no network: "
            f"{'bicubic upsampling' if args.task == 'sr' else 'the input is returned unchanged'}"
            "). Use --model or --weights to restore with a network."
        )
        return method
    return entry.name


def _build(args: argparse.Namespace) -> ImageRestorer:
    if args.tile is not None and args.tile < 0:
        raise MemNetError("--tile must be 0 (whole image) or a positive tile edge")
    if args.tile_pad is not None and args.tile_pad < 0:
        raise MemNetError("--tile-pad must be non-negative")
    spec = _model_spec(args)
    if spec in BASELINE_METHODS and args.task is None:
        raise MemNetError(f"--method {spec} needs --task (sr, denoise or jpeg)")
    scale = args.scale
    if scale is None and (args.task == "sr"):
        scale = 2.0
    restorer = load(
        spec,
        args.device,
        task=args.task,
        scale=scale,
        sigma=args.sigma,
        quality=args.quality,
        tile=args.tile,
        tile_pad=args.tile_pad,
        dtype=args.dtype,
        self_ensemble=args.self_ensemble,
        color=args.color,
        unsafe_load=args.unsafe_load,
    )
    if restorer.task == "sr" and scale is None:  # the task came from the model
        restorer.levels["scale"] = 2.0
    _warn_outside_training(restorer)
    return restorer


def _warn_outside_training(restorer: ImageRestorer) -> None:
    trained = restorer.loaded.levels
    task = restorer.make_task()
    level = float(getattr(task, {"sr": "scale", "denoise": "sigma", "jpeg": "quality"}[task.kind]))
    if trained and not min(trained) <= level <= max(trained):
        _note(
            f"warning: {restorer.name} was trained for {task.kind} levels "
            f"{', '.join(f'{v:g}' for v in trained)}; {task.label} is outside that range"
        )


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
        default_ext="png" if task.kind == "jpeg" and args.ext == "auto" else None,
        overwrite=args.overwrite,
        single_file_input=Path(args.input).is_file(),
    )
    show_bars = not args.quiet
    # disable=None: bars only on a terminal, never in logs or pipes.
    images = tqdm(total=len(jobs), unit="img", disable=None if show_bars else True, desc="restore")

    def restore_one(job: Job) -> float:
        picture = read_image(job.source)
        windows = restorer.windows(picture)
        tiles = None
        if show_bars and windows >= TILE_BAR_MIN_WINDOWS:
            tiles = tqdm(
                total=windows, unit="part", leave=False, desc=job.source.name, disable=None
            )

        def progress(done: int, total: int) -> None:
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
        _say(args, f"{job.source} -> {job.target}")

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
