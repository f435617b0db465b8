"""`memnet convert`: the authors' trained Caffe models → memnet weights files."""

from __future__ import annotations

import argparse
from pathlib import Path

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
    from memnet.interop.caffe import check_conversion_paths, convert_caffemodel

    source: Path = args.caffemodel
    output: Path = args.output
    check_conversion_paths(source, output, prototxt=args.prototxt, overwrite=args.overwrite)
    conversion = convert_caffemodel(source, output, task=args.task, prototxt=args.prototxt)
    config = conversion.model.config
    weights = ", ".join(f"{w:.4g}" for w in conversion.model.branch_weights.tolist())
    print(
        f"{source} -> {output}: MemNet M{config.blocks}R{config.recursions} C{config.channels}, "
        f"task {args.task}, branch weights [{weights}]"
    )
    return 0
