"""A parser of protobuf's text format, enough for Caffe's `.prototxt` network descriptions.

The result has the same shape as `memnet.interop.caffe.wire.decode`: `{field name: [values]}` with
nested messages as dicts, so a network read from a prototxt and one read from a caffemodel are
checked by the same code. Values are str (strings and enum names), int, float or bool.
"""

from __future__ import annotations

import re
from typing import Any

from memnet.interop.caffe.wire import Message

__all__ = ["TextFormatError", "parse"]


class TextFormatError(ValueError):
    """The text is not well-formed protobuf text format."""


_TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)[fF]?)
  | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<symbol>[{}:\[\],;<>])
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "'": "'", "\\": "\\"}


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


class _Tokens:
    def __init__(self, text: str) -> None:
        self.items: list[tuple[str, str, int]] = []
        pos, line = 0, 1
        while pos < len(text):
            match = _TOKEN.match(text, pos)
            if match is None:
                raise TextFormatError(f"line {line}: unexpected character {text[pos]!r}")
            kind = match.lastgroup or ""
            if kind != "space":
                self.items.append((kind, match.group(), line))
            line += match.group().count("\n")
            pos = match.end()
        self.index = 0

    def peek(self) -> tuple[str, str, int] | None:
        return self.items[self.index] if self.index < len(self.items) else None

    def next(self, what: str) -> tuple[str, str, int]:
        token = self.peek()
        if token is None:
            last = self.items[-1][2] if self.items else 1
            raise TextFormatError(f"line {last}: the text ends where {what} was expected")
        self.index += 1
        return token


def _value(kind: str, text: str, line: int) -> Any:
    if kind == "string":
        return _unquote(text)
    if kind == "number":
        body = text.rstrip("fF")
        try:
            return int(body)
        except ValueError:
            return float(body)
    if kind == "word":
        lowered = text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        if lowered in ("inf", "infinity", "nan"):
            return float(lowered)
        return text  # an enum name
    raise TextFormatError(f"line {line}: expected a value, found {text!r}")


def _message(tokens: _Tokens, closing: str | None) -> Message:
    message: Message = {}
    while True:
        token = tokens.peek()
        if token is None:
            if closing is not None:
                raise TextFormatError("the text ends inside a message (a '}' is missing)")
            return message
        kind, text, line = token
        if kind == "symbol" and text == closing:
            tokens.index += 1
            return message
        if kind != "word":
            raise TextFormatError(f"line {line}: expected a field name, found {text!r}")
        tokens.index += 1
        values = message.setdefault(text, [])
        kind2, text2, line2 = tokens.next(f"':' or '{{' after {text!r}")
        if kind2 == "symbol" and text2 == ":":
            kind2, text2, line2 = tokens.next(f"a value for {text!r}")
        if kind2 == "symbol" and text2 in "{<":
            values.append(_message(tokens, "}" if text2 == "{" else ">"))
        elif kind2 == "symbol" and text2 == "[":  # list syntax: field: [1, 2, 3]
            while True:
                kind3, text3, line3 = tokens.next(f"a value or ']' in {text!r}")
                if kind3 == "symbol" and text3 == "]":
                    break
                if kind3 == "symbol" and text3 == ",":
                    continue
                values.append(_value(kind3, text3, line3))
        else:
            values.append(_value(kind2, text2, line2))
        separator = tokens.peek()
        if separator is not None and separator[0] == "symbol" and separator[1] in ",;":
            tokens.index += 1


def parse(text: str) -> Message:
    """Parse a whole text-format message (e.g. a Caffe prototxt)."""
    return _message(_Tokens(text), None)
