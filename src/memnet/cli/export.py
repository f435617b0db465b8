"""`memnet export`: write a model as ONNX or TorchScript with dynamic height and width."""

from __future__ import annotations

import argparse

from memnet.interop.export_formats import DEFAULT_OPSET, FORMATS
from memnet.network_config import PRESETS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a model to ONNX or TorchScript",
        description="Export a released model, a weights file or an untrained preset to ONNX or "
        "TorchScript. The graph takes (N, 1, H, W) float32 in [0, 1] (SR input already "
        "bicubic-upsampled) with dynamic N, H and W, and returns the restored image.",
    )
    parser.add_argument("--format", choices=FORMATS, required=True, help="output format")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="released model name (see 'memnet info')")
    source.add_argument("--weights", help="a .safetensors weights file")
    source.add_argument(
        "--preset", choices=tuple(PRESETS), help="an untrained preset (for benchmarking)"
    )
    parser.add_argument(
        "-o", "--output", help="output file (default: NAME.onnx or NAME.pt in the current folder)"
    )
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset version")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument(
        "--unsafe-load",
        action="store_true",
        help="allow a pickle --weights file (read with torch.load(weights_only=True))",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from memnet.interop.export import export_file

    export_file(
        args.format,
        preset=args.preset,
        name_or_path=args.model or args.weights,
        output=args.output,
        opset=args.opset,
        overwrite=args.overwrite,
        unsafe_load=args.unsafe_load,
    )
    return 0
