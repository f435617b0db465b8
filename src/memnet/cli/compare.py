"""`memnet compare`: a side-by-side picture of input, baseline, memnet and ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from memnet.cli.options import DEVICE
from memnet.errors import MemNetError
from memnet.tasks import task_class, task_classes, task_kinds

EPILOG = """\
examples:
  memnet compare -i examples/sample.png -o compare-sr.png --task sr --scale 3
  memnet compare -i clean.png -o compare-noise.png --task denoise --sigma 50 --crop 40,60,96
  memnet compare -i clean.png -o compare-jpeg.png --task jpeg --quality 10 --weights my.safetensors

The input is a CLEAN picture: memnet makes the degraded version (a 1/scale-size 8-bit picture,
Gaussian noise, or a JPEG file), restores it like `memnet restore` does, and shows a zoomed crop
of each with its PSNR on the luminance.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="make a side-by-side comparison picture from a clean image",
        description="Degrade a clean picture, restore it with the baseline and with a model, and "
        "write zoomed crops of input, baseline, memnet and ground truth side by side.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-i", "--input", required=True, help="a clean picture (the ground truth)")
    parser.add_argument("-o", "--output", required=True, help="where to write the comparison PNG")
    kinds = task_kinds()
    parser.add_argument("--task", choices=kinds, default=kinds[0], help=f"default: {kinds[0]}")
    for cls in task_classes():
        parser.add_argument(
            f"--{cls.level_name}",
            type=cls.level_type,
            help=f"{cls.level_help} (default {cls.compare_level:g})",
        )
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--model", help="released model name (default: the task's)")
    model.add_argument("--weights", help="a .safetensors weights file")
    parser.add_argument(
        "--crop",
        help="LEFT,TOP,SIZE of the crop in ground-truth pixels (default: the most detailed)",
    )
    parser.add_argument("--zoom", type=int, default=2, help="crop magnification (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    parser.add_argument("--device", **DEVICE)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output")
    parser.set_defaults(handler=run)


def _crop(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    try:
        left, top, size = (int(v) for v in text.split(","))
    except ValueError:
        raise MemNetError(f"--crop must be LEFT,TOP,SIZE in pixels, got {text!r}") from None
    return top, left, size


def run(args: argparse.Namespace) -> int:
    from memnet.evaluation.side_by_side import check_comparison_target, write_comparison
    from memnet.inference.api import load

    check_comparison_target(args.output, zoom=args.zoom, overwrite=args.overwrite)
    cls = task_class(args.task)
    level = getattr(args, cls.level_name)
    task = cls.from_level(level if level is not None else cls.compare_level)
    crop = _crop(args.crop)
    # Without --model or --weights, memnet.load takes the task's default released model.
    restorer = load(args.weights or args.model, device=args.device, task=args.task)
    panels = write_comparison(
        args.input,
        args.output,
        task,
        restorer,
        crop=crop,
        zoom=args.zoom,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    scores = ", ".join(f"{p.title} {p.psnr:.2f} dB" for p in panels if p.psnr is not None)
    print(f"{Path(args.output)}: {scores}")
    return 0
