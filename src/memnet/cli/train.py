"""`memnet train RECIPE.yaml`: train (or resume) a MemNet from a YAML recipe."""

from __future__ import annotations

import argparse
import os
import sys

# Exit codes: 0 finished or stopped at --max-minutes (resume later), 130 Ctrl-C, 143 SIGTERM.
EXIT_CODES = {"completed": 0, "time_limit": 0, "stop_at": 0, "interrupted": 130, "terminated": 143}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a MemNet from a YAML recipe (configs/*.yaml)",
        description="Train a MemNet as a YAML recipe describes (see configs/ and docs/training.md). "
        "Checkpoints, metrics.jsonl and the resolved recipe go to the run folder (default "
        "runs/NAME). A stopped run (Ctrl-C, SIGTERM, --max-minutes, a crash) continues with "
        "--resume auto. Several processes/GPUs: launch with torchrun.",
    )
    parser.add_argument("recipe", help="the recipe YAML file, e.g. configs/sr-cpu.yaml")
    parser.add_argument(
        "--resume",
        metavar="auto|PATH",
        help="continue a run: 'auto' resumes the run folder's last checkpoint if there is one "
        "(else starts fresh); PATH is a .state.pt file or a run folder",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value, e.g. --set optim.lr=1e-3 --set task.levels=[2,3] "
        "(repeatable; VALUE is YAML)",
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        metavar="N",
        help="stop after N minutes of wall time, writing the last checkpoint (resume later)",
    )
    parser.add_argument("--out", metavar="DIR", help="run folder (default: runs/NAME)")
    parser.add_argument(
        "--data-root",
        metavar="DIR",
        help="datasets folder (default: $MEMNET_DATA_ROOT, else ../shared/datasets and the "
        "'memnet data fetch' folder)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="validate the recipe, print it fully resolved and exit",
    )
    parser.add_argument(
        "--benchmark",
        type=int,
        metavar="N",
        help="measure training speed instead: N steps (after 3 warm-up steps) in a temporary "
        "folder, no validation; prints median patches/s, step time and data-wait",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.max_minutes is not None and not args.max_minutes > 0:
        raise ValueError(f"--max-minutes must be positive, got {args.max_minutes:g}")
    from memnet.training.recipe import dump_recipe, load_recipe  # pydantic, and PyTorch

    recipe = load_recipe(args.recipe, args.overrides)
    if args.check:
        sys.stdout.write(dump_recipe(recipe))
        return 0
    # imported here so that `memnet --help` and --check stay fast
    from memnet.training.throughput import measure_throughput
    from memnet.training.trainer import RunOptions, train

    if args.benchmark is not None:
        if args.benchmark < 1:
            raise ValueError(f"--benchmark needs a positive number of steps, got {args.benchmark}")
        speed = measure_throughput(recipe, args.benchmark, data_root=args.data_root)
        print(speed.summary(recipe))
        return 0

    result = train(
        recipe,
        RunOptions(
            out=args.out,
            resume=args.resume,
            max_minutes=args.max_minutes,
            quiet=args.quiet,
            data_root=args.data_root,
        ),
    )
    if not args.quiet and int(os.environ.get("RANK", "0")) == 0:  # one summary under torchrun
        print(result.summary(), file=sys.stderr)
    return EXIT_CODES[result.reason]
