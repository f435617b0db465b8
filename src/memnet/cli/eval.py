"""`memnet eval`: score a method on benchmark sets with the authors' exact test protocol."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from memnet.cli.options import DEVICE, DTYPE, SELF_ENSEMBLE, TILE_PAD, UNSAFE_LOAD
from memnet.evaluation.eval_job import default_levels
from memnet.tasks import baseline_methods, task_classes, task_kinds

EPILOG = """\
examples:
  memnet eval --task sr --scales 2,3,4 --sets Set5,Set14,BSD100 --method bicubic
  memnet eval --task denoise --sigmas 15,25,50 --sets BSD68 --method identity
  memnet eval --task jpeg --qualities 10,20 --sets Classic5,LIVE1 --weights my.safetensors
  memnet eval --task sr --scales 2 --sets Set5 --device cuda --dtype fp16 --self-ensemble
  memnet eval --task sr --sets path/to/folder --scales 4 --method bicubic --out results

Sets are names (see 'memnet data list'; 'memnet data fetch NAME' downloads one) looked up in
--data-root, else $MEMNET_DATA_ROOT, else ../shared/datasets and the fetch folder
($XDG_DATA_HOME/memnet/datasets), or folders of clean images. The table goes to stdout; with --out the per-image CSV, a JSON summary
and the table are written there as TASK-METHOD.{csv,json,md}. Denoising noise is seeded per
image from --seed and the file name, so tables are reproducible. Every image is read and
checked before any is restored: an unreadable or too-small image stops the run with its name.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="benchmark a model or baseline with the paper's exact test protocol",
        description="Score a MemNet model or a baseline on benchmark sets, exactly as the "
        "authors' MATLAB test scripts did: PSNR/SSIM on Y (SR, JPEG) or gray (denoising), "
        "averaged per set. Prints a markdown table (sets × levels).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--task", required=True, choices=task_kinds(), help="what to restore")
    for cls in task_classes():
        parser.add_argument(
            f"--{cls.level_option}",
            metavar="LIST",
            help=f"{cls.kind}: {cls.level_help} (default {default_levels(cls)})",
        )
    parser.add_argument(
        "--sets",
        metavar="LIST",
        help="comma-separated set names or folders (default: "
        + "; ".join(f"{cls.kind} {','.join(cls.benchmark_sets)}" for cls in task_classes())
        + ")",
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--method",
        choices=baseline_methods(),
        help="a baseline with no network, the degraded input itself: "
        + ", ".join(
            f"{name} ({', '.join(c.kind for c in task_classes() if c.baseline == name)})"
            for name in baseline_methods()
        ),
    )
    what.add_argument(
        "--model",
        metavar="NAME",
        help="a released model (see 'memnet info'); the default, without --method or "
        "--weights, is the released model for the task",
    )
    what.add_argument(
        "--weights", metavar="FILE", type=Path, help="a memnet .safetensors weights file"
    )
    parser.add_argument("--unsafe-load", **UNSAFE_LOAD)
    parser.add_argument(
        "--data-root",
        type=Path,
        metavar="DIR",
        help="folder holding the named sets (default: $MEMNET_DATA_ROOT, else ../shared/datasets "
        "and the 'memnet data fetch' folder)",
    )
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="write per-image CSV, JSON summary and table here"
    )
    parser.add_argument(
        "--save-images",
        action="store_true",
        help="also write the restored Y/gray images as 8-bit PNG under --out",
    )
    parser.add_argument(
        "--seed", type=int, default=0, metavar="N", help="seed of the denoising noise (default 0)"
    )
    parser.add_argument(
        "--tile",
        type=int,
        metavar="N",
        help="network tile size in px (0 = whole image; default: the inference engine's)",
    )
    parser.add_argument("--tile-pad", metavar="N", **TILE_PAD)
    parser.add_argument(
        "--authors-tiles",
        action="store_true",
        help="run the network on the authors' test-script tiles (150 px, 120 for denoise, with "
        "16 px of context) to reproduce their published numbers; see docs/caffe.md",
    )
    parser.add_argument("--device", metavar="DEVICE", **DEVICE)
    parser.add_argument("--dtype", **DTYPE)
    parser.add_argument("--self-ensemble", **SELF_ENSEMBLE)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from memnet.evaluation.eval_job import EvalOptions, run_eval

    given = {f.name: getattr(args, f.name) for f in fields(EvalOptions) if f.name != "levels"}
    levels = {cls.level_option: getattr(args, cls.level_option) for cls in task_classes()}
    run_eval(EvalOptions(**given, levels=levels))
    return 0
