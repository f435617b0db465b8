"""`memnet info [PRESET]`: presets with their measured size and cost, the device, the zoo."""

from __future__ import annotations

import argparse

from memnet.network_config import PRESETS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info",
        help="show model presets, released weights and the compute device",
        description="Show a preset's parameters, MFLOP per output pixel and receptive field "
        "(measured from the built network), or, without a name, all presets, the released "
        "weights and the device.",
    )
    parser.add_argument(
        "name", nargs="?", help=f"a preset ({', '.join(PRESETS)}) or released model"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from memnet.inventory import describe, overview

    if args.name:
        print(describe(args.name))
        return 0
    from memnet.inference import winograd

    for line in overview():
        print(line)
    # Asking builds the kernel on a machine's first run (a couple of seconds).
    print(f"\nWinograd 3×3 conv kernel (CPU): {winograd.kernel_status()}")
    return 0
