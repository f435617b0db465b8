"""A small reader of the protobuf wire format, decoding just the Caffe fields memnet needs.

Caffe's `.caffemodel` is a serialised `NetParameter` message. Compiling caffe.proto (or
describing it to the `protobuf` package at run time) would pull in a schema of hundreds of
messages for the dozen fields a MemNet uses, so the fields are listed here (numbers from
caffe.proto) and decoded into plain dicts: `{field name: [values]}`, every field a list, nested
messages as dicts. Fields not listed are skipped by their wire type. Packed float arrays become
numpy arrays without a Python loop, so a 30 MB model reads in a fraction of a second.
"""

from __future__ import annotations

import struct
from typing import Any, Union

import numpy as np

__all__ = ["NET_PARAMETER", "Message", "WireError", "decode"]

Message = dict[str, list[Any]]


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message (or end too early)."""


# A schema maps a field number to (name, kind); kind is a scalar type name, a nested schema
# or ("enum", {number: name}).
Kind = Union[str, "Schema", tuple[str, dict[int, str]]]
Schema = dict[int, tuple[str, Kind]]

PHASE = ("enum", {0: "TRAIN", 1: "TEST"})
ELTWISE_OP = ("enum", {0: "PROD", 1: "SUM", 2: "MAX"})
BLOB_SHAPE: Schema = {1: ("dim", "int")}
BLOB_PROTO: Schema = {
    1: ("num", "int"),
    2: ("channels", "int"),
    3: ("height", "int"),
    4: ("width", "int"),
    5: ("data", "float"),
    7: ("shape", BLOB_SHAPE),
    8: ("double_data", "double"),
}
PARAM_SPEC: Schema = {1: ("name", "string"), 3: ("lr_mult", "float")}
NET_STATE_RULE: Schema = {1: ("phase", PHASE)}
CONVOLUTION_PARAM: Schema = {
    1: ("num_output", "int"),
    2: ("bias_term", "bool"),
    3: ("pad", "int"),
    4: ("kernel_size", "int"),
    5: ("group", "int"),
    6: ("stride", "int"),
    9: ("pad_h", "int"),
    10: ("pad_w", "int"),
    11: ("kernel_h", "int"),
    12: ("kernel_w", "int"),
    13: ("stride_h", "int"),
    14: ("stride_w", "int"),
    16: ("axis", "int"),
    18: ("dilation", "int"),
}
BATCH_NORM_PARAM: Schema = {
    1: ("use_global_stats", "bool"),
    2: ("moving_average_fraction", "float"),
    3: ("eps", "float"),
}
SCALE_PARAM: Schema = {1: ("axis", "int"), 2: ("num_axes", "int"), 4: ("bias_term", "bool")}
RELU_PARAM: Schema = {1: ("negative_slope", "float")}
ELTWISE_PARAM: Schema = {1: ("operation", ELTWISE_OP), 2: ("coeff", "float")}
CONCAT_PARAM: Schema = {1: ("concat_dim", "int"), 2: ("axis", "int")}
LAYER_PARAMETER: Schema = {
    1: ("name", "string"),
    2: ("type", "string"),
    3: ("bottom", "string"),
    4: ("top", "string"),
    6: ("param", PARAM_SPEC),
    7: ("blobs", BLOB_PROTO),
    8: ("include", NET_STATE_RULE),
    9: ("exclude", NET_STATE_RULE),
    104: ("concat_param", CONCAT_PARAM),
    106: ("convolution_param", CONVOLUTION_PARAM),
    110: ("eltwise_param", ELTWISE_PARAM),
    123: ("relu_param", RELU_PARAM),
    139: ("batch_norm_param", BATCH_NORM_PARAM),
    142: ("scale_param", SCALE_PARAM),
}
# Only recognised, to refuse it clearly: the legacy V1 format has no BatchNorm or Scale layers.
V1_LAYER_PARAMETER: Schema = {4: ("name", "string")}
NET_PARAMETER: Schema = {
    1: ("name", "string"),
    2: ("layers", V1_LAYER_PARAMETER),
    3: ("input", "string"),
    4: ("input_dim", "int"),
    100: ("layer", LAYER_PARAMETER),
}

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise WireError("the data ends inside a number (truncated file?)")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError("a number is longer than 10 bytes (not protobuf data)")


def _signed(value: int) -> int:
    # int32/int64 fields store negative numbers as 64-bit two's complement.
    return value - (1 << 64) if value >= 1 << 63 else value


def _take(data: memoryview, pos: int, size: int) -> tuple[memoryview, int]:
    end = pos + size
    if end > len(data):
        raise WireError(
            f"a field of {size} bytes at byte {pos} runs past the end of the data "
            f"({len(data)} bytes; truncated file?)"
        )
    return data[pos:end], end


def _scalar(kind: str, wire: int, data: memoryview, pos: int) -> tuple[Any, int]:
    """One value of `kind`, packed arrays as numpy arrays or lists."""
    if kind in ("int", "bool"):
        if wire == _VARINT:
            value, pos = _varint(data, pos)
            return _signed(value), pos
        if wire == _LENGTH:  # packed repeated varints
            size, pos = _varint(data, pos)
            chunk, pos = _take(data, pos, size)
            values, at = [], 0
            while at < len(chunk):
                value, at = _varint(chunk, at)
                values.append(_signed(value))
            return values, pos
    elif kind == "float":
        if wire == _FIXED32:
            chunk, pos = _take(data, pos, 4)
            return struct.unpack("<f", chunk)[0], pos
        if wire == _LENGTH:
            size, pos = _varint(data, pos)
            if size % 4:
                raise WireError(f"a packed float array of {size} bytes is not a multiple of 4")
            chunk, pos = _take(data, pos, size)
            return np.frombuffer(chunk, dtype="<f4"), pos
    elif kind == "double":
        if wire == _FIXED64:
            chunk, pos = _take(data, pos, 8)
            return struct.unpack("<d", chunk)[0], pos
        if wire == _LENGTH:
            size, pos = _varint(data, pos)
            if size % 8:
                raise WireError(f"a packed double array of {size} bytes is not a multiple of 8")
            chunk, pos = _take(data, pos, size)
            return np.frombuffer(chunk, dtype="<f8"), pos
    elif kind == "string" and wire == _LENGTH:
        size, pos = _varint(data, pos)
        chunk, pos = _take(data, pos, size)
        try:
            return bytes(chunk).decode("utf-8"), pos
        except UnicodeDecodeError:
            raise WireError("a text field is not valid UTF-8 (not a Caffe model?)") from None
    raise WireError(f"a {kind} field has wire type {wire} (not a Caffe model?)")


def _skip(wire: int, data: memoryview, pos: int) -> int:
    if wire == _VARINT:
        return _varint(data, pos)[1]
    if wire == _FIXED64:
        return _take(data, pos, 8)[1]
    if wire == _FIXED32:
        return _take(data, pos, 4)[1]
    if wire == _LENGTH:
        size, pos = _varint(data, pos)
        return _take(data, pos, size)[1]
    raise WireError(f"wire type {wire} at byte {pos} is not used by Caffe (not a Caffe model?)")


def decode(data: bytes | memoryview, schema: Schema) -> Message:
    """Decode one message: the listed fields into `{name: [values]}`, the others skipped."""
    view = memoryview(data)
    message: Message = {}
    pos = 0
    while pos < len(view):
        key, pos = _varint(view, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError(f"field number 0 at byte {pos} (not protobuf data)")
        field = schema.get(number)
        if field is None:
            pos = _skip(wire, view, pos)
            continue
        name, kind = field
        values = message.setdefault(name, [])
        if isinstance(kind, dict):
            if wire != _LENGTH:
                raise WireError(f"message field {name!r} has wire type {wire} (not a Caffe model?)")
            size, pos = _varint(view, pos)
            chunk, pos = _take(view, pos, size)
            values.append(decode(chunk, kind))
            continue
        value, pos = _scalar(kind if isinstance(kind, str) else "int", wire, view, pos)
        if isinstance(kind, tuple):  # enum numbers → names, as the text format writes them
            names = kind[1]
            items = value if isinstance(value, list) else [value]
            values.extend(names.get(item, str(item)) for item in items)
        elif kind == "bool":
            items = value if isinstance(value, list) else [value]
            values.extend(bool(item) for item in items)
        elif isinstance(value, list):
            values.extend(value)
        else:
            values.append(value)
    return message
