"""Reading a recipe file: YAML with line positions, `--set` overrides, errors that point into it.

A problem is reported as `FILE:LINE: dotted.key: what is wrong (hint)`, the hint being the
description of the field in the recipe schema (`memnet.training.recipe`); a value given with
`--set` is reported as such. The schema is passed in, so this module knows YAML and pydantic's
errors, not the recipe's sections.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from memnet.errors import MemNetError

__all__ = ["RecipeError", "apply_overrides", "describe_error", "read_yaml"]


class RecipeError(MemNetError):
    """A recipe that cannot be used; the message names the file, line and key."""


_UNSET = object()


def read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """The mapping a recipe file holds and its YAML node tree (for line numbers)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"{path}: recipe file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RecipeError(f"{path}: cannot read recipe ({error})") from None
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise RecipeError(f"{where}: not valid YAML ({problem})") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping of sections (name, task, ...)")
    return data, node


def _parse_override(text: str) -> tuple[list[str], Any]:
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_]\w*)*", key):
        raise RecipeError(
            f"--set {text!r}: expected KEY=VALUE with a dotted key, e.g. optim.lr=1e-3"
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise RecipeError(f"--set {text!r}: the value is not valid YAML") from None
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> set[tuple[str, ...]]:
    """Apply `key.path=value` overrides in place; returns the overridden key paths."""
    touched: set[tuple[str, ...]] = set()
    for text in overrides:
        path, value = _parse_override(text)
        node: Any = data
        for i, part in enumerate(path[:-1]):
            child = node.get(part, _UNSET)
            if child is _UNSET or child is None:
                child = {}
                node[part] = child
            if not isinstance(child, dict):
                where = ".".join(path[: i + 1])
                raise RecipeError(f"--set {text!r}: {where} is a value, not a section")
            node = child
        node[path[-1]] = value
        touched.add(tuple(path))
    return touched


def _line_of(node: yaml.Node | None, loc: tuple[str | int, ...]) -> int | None:
    """1-based line of the deepest YAML node on the path `loc` (None when unknown)."""
    line = None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        nxt: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    line = key_node.start_mark.line + 1
                    nxt = value_node
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            nxt = node.value[part]
            line = nxt.start_mark.line + 1
        node = nxt
    return line


def _field_for(schema: type[BaseModel], loc: tuple[str | int, ...]) -> Any:
    """The pydantic FieldInfo at a location, for its description (the hint)."""
    model: Any = schema
    info = None
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return None
        info = fields[part]
        annotation = info.annotation
        model = _model_in(annotation)
    return info


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _known_keys(schema: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    model: Any = schema
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return []
        model = _model_in(fields[part].annotation)
    return list(getattr(model, "model_fields", {}) or {})


def describe_error(
    schema: type[BaseModel],
    error: Mapping[str, Any],
    source: str,
    node: yaml.Node | None,
    overridden: set[tuple[str, ...]],
) -> str:
    """One pydantic error of `schema` as `SOURCE:LINE: key: problem (hint)`."""
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    # pydantic appends the validator type to model-level errors; keep the key path only.
    key = ".".join(str(p) for p in loc) or "(top level)"
    strings = tuple(str(p) for p in loc)
    kind = error["type"]
    if any(strings[: len(o)] == o for o in overridden):
        where = f"--set {key}"
    else:
        # a missing key has no line of its own: point at the section that lacks it
        line = _line_of(node, loc[:-1] if kind == "missing" else loc)
        where = f"{source}:{line}: {key}" if line else f"{source}: {key}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        known = _known_keys(schema, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(known)}"
        return f"{where}: unknown key ({hint})"
    if kind == "missing":
        info = _field_for(schema, loc)
        hint = f" ({info.description})" if info is not None and info.description else ""
        return f"{where}: required key is missing{hint}"
    got = error.get("input")
    shown = "" if isinstance(got, dict) or got is None else f" (got {got!r})"
    info = _field_for(schema, loc)
    hint = f"; hint: {info.description}" if info is not None and info.description else ""
    return f"{where}: {message}{shown}{hint}"
