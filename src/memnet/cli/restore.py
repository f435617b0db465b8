"""`memnet restore`: restore a file, a folder or a glob of images with a released model."""

from __future__ import annotations

import argparse
from dataclasses import fields

from memnet.cli.options import DEVICE, DTYPE, SELF_ENSEMBLE, TILE_PAD, UNSAFE_LOAD
from memnet.inference.folders import EXTENSIONS
from memnet.inference.pictures import COLOR_MODES
from memnet.scale.ray_job import FAILED_MANIFEST
from memnet.tasks import baseline_methods, baselines_in_words, task_classes, task_kinds
from memnet.video.encoder import DEFAULT_CRF

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
        choices=baseline_methods(),
        help=f"no network: {baselines_in_words()}",
    )
    model.add_argument("--unsafe-load", **UNSAFE_LOAD)

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
    engine.add_argument("--device", **DEVICE)
    engine.add_argument("--dtype", **DTYPE)
    engine.add_argument(
        "--tile",
        type=int,
        default=None,
        help="tile edge in output pixels, 0 = whole image (default: whole when it fits free "
        "memory; otherwise streamed over rows on a CPU, tiled on a GPU)",
    )
    engine.add_argument("--tile-pad", **TILE_PAD)
    engine.add_argument("--self-ensemble", **SELF_ENSEMBLE)
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="print only errors and warnings (no progress bars, output lines or summary)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from memnet.scale.restore_job import RestoreOptions, restore_files

    given = {f.name: getattr(args, f.name) for f in fields(RestoreOptions) if f.name != "levels"}
    levels = {cls.level_name: getattr(args, cls.level_name) for cls in task_classes()}
    return 0 if restore_files(RestoreOptions(**given, levels=levels)) else 1
