"""What `memnet export` can write, as plain names: the command line offers them without PyTorch."""

from __future__ import annotations

__all__ = ["DEFAULT_OPSET", "FORMATS"]

FORMATS = ("onnx", "torchscript")
DEFAULT_OPSET = 17
