"""`memnet eval`: score a method on benchmark sets with the authors' exact test protocol."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memnet.device_names import DEVICE_HELP, DTYPE_NAMES
from memnet.errors import MemNetError
from memnet.tasks import Task, baseline_methods, task_class, task_classes, task_kinds

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
            help=f"{cls.kind}: {cls.level_help} (default {_default_levels(cls)})",
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
    parser.add_argument(
        "--unsafe-load",
        action="store_true",
        help="allow --weights to be a pickle (.pt/.pth/.ckpt), read with "
        "torch.load(weights_only=True); only for files you trust",
    )
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
    parser.add_argument(
        "--tile-pad",
        type=int,
        metavar="N",
        help="context around each tile in pixels (default: half the receptive field, which "
        "makes tiles identical to whole-image inference)",
    )
    parser.add_argument(
        "--authors-tiles",
        action="store_true",
        help="run the network on the authors' test-script tiles (150 px, 120 for denoise, with "
        "16 px of context) to reproduce their published numbers; see docs/caffe.md",
    )
    parser.add_argument(
        "--device",
        default="auto",
        metavar="DEVICE",
        help=DEVICE_HELP,
    )
    parser.add_argument(
        "--dtype", choices=DTYPE_NAMES, default="fp32", help="fp16/bf16 only on GPUs"
    )
    parser.add_argument(
        "--self-ensemble",
        action="store_true",
        help="average the 8 flips/rotations (8x slower, slightly better)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def _default_levels(cls: type[Task]) -> str:
    return ",".join(f"{level:g}" for level in cls.benchmark_levels)


def parse_levels(text: str, option: str) -> list[float]:
    """'2,3,4' → [2.0, 3.0, 4.0], with a one-line error naming the option."""
    levels: list[float] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            levels.append(float(item))
        except ValueError:
            raise MemNetError(f"--{option}: {item!r} is not a number") from None
    if not levels:
        raise MemNetError(f"--{option}: no values given")
    return levels


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "method"


NETWORK_OPTIONS = (
    ("tile", "--tile"),
    ("tile_pad", "--tile-pad"),
    ("authors_tiles", "--authors-tiles"),
    ("self_ensemble", "--self-ensemble"),
)


def _check_network_options(args: argparse.Namespace, has_network: bool) -> None:
    """Refuse engine options that cannot apply, before any image is read."""
    given = [option for key, option in NETWORK_OPTIONS if getattr(args, key) not in (None, False)]
    if not has_network:
        if given or args.dtype != "fp32":
            option = given[0] if given else "--dtype"
            raise MemNetError(f"{option} applies to a network (--model or --weights), not --method")
        return
    if args.authors_tiles and (args.tile is not None or args.tile_pad is not None):
        other = "--tile" if args.tile is not None else "--tile-pad"
        raise MemNetError(f"{other} and --authors-tiles cannot be combined")
    if args.tile is not None and args.tile < 0:
        raise MemNetError("--tile must be 0 (whole image) or a positive size")
    if args.tile_pad is not None and args.tile_pad < 0:
        raise MemNetError("--tile-pad must be non-negative")


def build_method(
    args: argparse.Namespace,
) -> tuple[Callable[..., Any], str, dict[str, Any]]:
    """(method callable, its name, details for the JSON summary) from the CLI options."""
    from memnet import devices
    from memnet.evaluation.benchmark import baseline
    from memnet.inference.engine import Restorer
    from memnet.weights import zoo
    from memnet.weights.loading import load_model

    # a device that cannot work is refused even where no network runs, as memnet.load does
    device = devices.resolve_device(args.device)

    if args.model is not None:
        spec = zoo.get(args.model).name  # a released model, not a path
    else:
        spec = args.method or args.weights or zoo.default_model(args.task).name
    _check_network_options(args, has_network=args.method is None)
    loaded = load_model(spec, unsafe_load=args.unsafe_load)
    if loaded.network is None:
        return baseline(loaded.name, args.task), loaded.name, {}
    assert loaded.path is not None  # every network is read from a file
    if loaded.network.config.in_channels != 1:
        raise MemNetError(
            f"{loaded.path}: a model with {loaded.network.config.in_channels} input channels "
            "cannot be evaluated by the one-channel protocol"
        )
    if loaded.task is not None and loaded.task != args.task and not args.quiet:
        print(
            f"memnet eval: note: {loaded.path.name} was trained for task {loaded.task!r}, "
            f"evaluating it on {args.task!r}",
            file=sys.stderr,
        )
    details: dict[str, Any] = (
        {"weights": str(args.weights)} if args.weights is not None else {"model": loaded.name}
    )
    tile, tile_pad = args.tile, args.tile_pad
    if args.authors_tiles:
        from memnet.evaluation.authors_tiles import authors_tiling

        tile, tile_pad = authors_tiling(args.task)
        details["tiling"] = "authors"
    restorer = Restorer(
        loaded.network,
        device=device,
        tile=tile,
        tile_pad=tile_pad,
        dtype=args.dtype,
        self_ensemble=args.self_ensemble,
    )
    details.update(
        sha256=loaded.sha256,
        config=loaded.network.config.to_dict(),
        device=str(device),
        tile=restorer.tile,
        tile_pad=restorer.tile_pad,
        dtype=args.dtype,
        self_ensemble=args.self_ensemble,
    )
    name = loaded.name if args.weights is None else Path(args.weights).stem
    return restorer, name, details


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from memnet.evaluation.benchmark import evaluate, load_set, make_tasks

    task: str = args.task
    chosen = task_class(task)
    option = chosen.level_option
    for cls in task_classes():
        if cls is not chosen and getattr(args, cls.level_option) is not None:
            raise MemNetError(
                f"--{cls.level_option} applies to --task {cls.kind}; for --task {task} use --{option}"
            )
    levels = parse_levels(getattr(args, option) or _default_levels(chosen), option)
    make_tasks(task, levels)  # reject bad levels before any image is read
    set_names = _split(args.sets or ",".join(chosen.benchmark_sets))
    if not set_names:
        raise MemNetError("--sets: no set given")
    if args.save_images and args.out is None:
        raise MemNetError("--save-images needs --out DIR to write the images to")

    if args.out is not None:
        # Fail before the work, not after it, when the results cannot be written.
        try:
            args.out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise MemNetError(
                f"--out {args.out}: cannot create folder ({error.strerror or error})"
            ) from None

    method, method_name, details = build_method(args)
    sets = [load_set(name, args.data_root, kind=task) for name in set_names]
    stem = f"{task}-{_slug(method_name)}"
    save_dir = args.out / stem if args.save_images else None

    total = sum(len(s) for s in sets) * len(make_tasks(task, levels))
    with tqdm(
        total=total,
        unit="img",
        desc=f"eval {task} {method_name}",
        file=sys.stderr,
        disable=args.quiet,
        dynamic_ncols=True,
    ) as bar:

        def advance(row: Any) -> None:
            bar.set_postfix_str(f"{row.set} {row.label}", refresh=False)
            bar.update(1)

        report = evaluate(
            task,
            levels,
            sets,
            method,
            method_name=method_name,
            seed=args.seed,
            save_dir=save_dir,
            on_image=advance,
        )
    report.details.update(details)
    print(report.markdown(), end="")
    if args.out is not None:
        files = report.write(args.out, stem)
        if not args.quiet:
            written = ", ".join(str(f) for f in files)
            extra = f" and images under {save_dir}" if save_dir is not None else ""
            print(f"memnet eval: wrote {written}{extra}", file=sys.stderr)
    return 0
