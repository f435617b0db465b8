"""`memnet convert`: the authors' trained Caffe models → memnet weights files."""

from __future__ import annotations

import argparse
from pathlib import Path

from memnet.errors import MemNetError

EPILOG = """\
examples:
  memnet convert MemNet_M6R6_80C64_SR.caffemodel --task sr -o memnet-m6r6-authors-sr.safetensors
  memnet convert MemNet_M10R10_212C64_SR.caffemodel --prototxt MemNet_M10R10_212C64_deploy.prototxt \\
      --task sr -o memnet-m10r10-authors-sr.safetensors
  memnet eval --task sr --weights memnet-m6r6-authors-sr.safetensors --authors-tiles

No Caffe is needed. The network is checked layer by layer against the authors' MemNet layout
(blocks and recursions are read off the layer names); the output records the source file's
name and SHA-256. memnet ships none of the authors' models: see docs/caffe.md for where they
are published.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert the authors' Caffe MemNet (.caffemodel) into memnet weights",
        description="Read a trained MemNet .caffemodel from the authors' Caffe code (and, "
        "optionally, its deploy .prototxt) and write a memnet .safetensors weights file.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("caffemodel", type=Path, help="the .caffemodel file")
    parser.add_argument(
        "--prototxt",
        type=Path,
        metavar="FILE",
        help="deploy .prototxt to follow (default: the network stored in the caffemodel)",
    )
    parser.add_argument(
        "--task",
        required=True,
        choices=("sr", "denoise", "jpeg"),
        help="what the model was trained for (recorded in the weights file)",
    )
    parser.add_argument(
        "-o", "--output", required=True, type=Path, metavar="FILE", help="the .safetensors to write"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from memnet.interop.caffe import convert_caffemodel

    source: Path = args.caffemodel
    output: Path = args.output
    if not source.is_file():
        raise MemNetError(f"{source}: file not found")
    if args.prototxt is not None and not args.prototxt.is_file():
        raise MemNetError(f"{args.prototxt}: file not found")
    if output.suffix != ".safetensors":
        raise MemNetError(f"-o {output}: the output must be a .safetensors file")
    if output.exists() and not args.overwrite:
        raise MemNetError(f"-o {output}: already exists (pass --overwrite to replace it)")
    if output.exists() and output.resolve() in {
        source.resolve(),
        (args.prototxt or source).resolve(),
    }:
        raise MemNetError(f"-o {output}: would overwrite an input file")
    if not output.parent.is_dir():
        raise MemNetError(f"-o {output}: folder {output.parent} does not exist")
    conversion = convert_caffemodel(source, output, task=args.task, prototxt=args.prototxt)
    config = conversion.model.config
    weights = ", ".join(f"{w:.4g}" for w in conversion.model.branch_weights.tolist())
    print(
        f"{source} -> {output}: MemNet M{config.blocks}R{config.recursions} C{config.channels}, "
        f"task {args.task}, branch weights [{weights}]"
    )
    return 0
