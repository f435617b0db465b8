"""`memnet info [PRESET]`: presets with their measured size and cost, the device, the zoo."""

from __future__ import annotations

import argparse
import platform

import torch

from memnet import __version__, devices
from memnet.model import PRESETS, create_model, summarize
from memnet.weights import zoo


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


def describe_preset(name: str) -> str:
    summary = summarize(create_model(name))
    c = summary.config
    return (
        f"{name}: M={c.blocks} R={c.recursions} C={c.channels}  "
        f"parameters {summary.parameters:,}  conv weights {summary.conv_weights:,}  "
        f"{summary.mflop_per_pixel:.2f} MFLOP/pixel  receptive field {summary.receptive_field} px"
    )


def run(args: argparse.Namespace) -> int:
    if args.name:
        zoo_text = _describe_zoo_entry(args.name)
        if zoo_text is not None:
            print(zoo_text)
            return 0
        print(describe_preset(args.name))  # raises a clear error for unknown names
        return 0
    print(f"memnet {__version__}  torch {torch.__version__}  python {platform.python_version()}")
    print(f"device: {_device_line()}")
    print("\npresets:")
    for name in PRESETS:
        print("  " + describe_preset(name))
    print("\nreleased models:")
    for line in zoo.describe_all():
        print(f"  {line}")
    return 0


def _device_line() -> str:
    parts = [f"cpu ({torch.get_num_threads()} threads)"]
    if torch.cuda.is_available():
        parts += [
            f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())
        ]
    if devices.mps_available():
        parts.append("mps")
    return ", ".join(parts)


def _describe_zoo_entry(name: str) -> str | None:
    return zoo.describe(name) if name in zoo.REGISTRY else None
