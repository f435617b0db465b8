"""The package's layering rules (docs/architecture.md), enforced on the import graph.

Every module of `memnet` belongs to one unit: a top-level module (`model`, `tasks`, ...) or a
subpackage (`inference`, `training`, ...). Units are ordered in layers; a module may import
from its own unit and from units in lower layers, never from a higher or the same layer, so
each flow reads bottom-up and a change low in the stack cannot depend on the commands above it.
The few allowed exceptions are listed with their reason.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "memnet"
ARCHITECTURE = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"

LAYERS: dict[str, int] = {
    # 0: no memnet imports but these two
    "errors": 0,
    "fsutil": 0,
    "device_names": 0,
    "network_config": 0,
    "cpu_settings": 0,  # the machine's cores and heap: the image passes use them too
    # 1: pixels, the network, data sets, devices
    "imaging": 1,
    "model": 1,
    "catalog": 1,
    "devices": 1,
    # 2: what a task is
    "tasks": 2,
    # 3: weight files and released models
    "weights": 3,
    # 4: running a network on pictures; other frameworks
    "inference": 4,
    "interop": 4,
    "inventory": 4,
    # 5: scoring; video files
    "evaluation": 5,
    "video": 5,
    # 6: training, the cluster job, the HTTP server
    "training": 6,
    "scale": 6,
    "serving": 6,
    # 7: commands (and the package root, whose public names are imported lazily)
    "cli": 7,
    "__init__": 7,
    "__main__": 8,
}

# (importing module, imported module) pairs that cross the layers, each with its reason.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("memnet.inference.folders", "memnet.video.files"): (
        "a folder run plans image and video outputs together; video.files only names the video "
        "suffixes and imports nothing of memnet but errors"
    ),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> set[str]:
    """Every memnet module `path` imports, at the top or inside functions, TYPE_CHECKING included."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target == "memnet":
                # `from memnet import x`: x is a submodule, or one of the root's names
                for alias in node.names:
                    sub = PACKAGE / alias.name
                    if sub.is_dir() or sub.with_suffix(".py").exists():
                        found.add(f"memnet.{alias.name}")
                    elif alias.name != "__version__":  # the version is metadata, not code
                        found.add("memnet")
            else:
                found.add(target)
    return {name for name in found if name == "memnet" or name.startswith("memnet.")}


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_unit_has_a_layer() -> None:
    units = {_unit(_module_name(path)) for path in MODULES}
    assert units - set(LAYERS) == set(), "add the new unit to LAYERS and docs/architecture.md"


@pytest.mark.parametrize("path", MODULES, ids=lambda path: _module_name(path))
def test_imports_only_go_down_the_layers(path: Path) -> None:
    module = _module_name(path)
    unit = _unit(module)
    wrong = []
    for imported in sorted(_imports(path)):
        target = _unit(imported)
        if target == unit or (module, imported) in EXCEPTIONS:
            continue
        if LAYERS[target] >= LAYERS[unit]:
            wrong.append(f"{imported} (layer {LAYERS[target]} ≥ {LAYERS[unit]})")
    assert wrong == [], f"{module} (layer {LAYERS[unit]}) imports {', '.join(wrong)}"


def test_exceptions_are_still_needed() -> None:
    for importer, imported in EXCEPTIONS:
        path = PACKAGE.parent / (importer.replace(".", "/") + ".py")
        assert imported in _imports(path), (
            f"{importer} no longer imports {imported}: drop the exception"
        )


def test_the_module_map_names_every_module() -> None:
    text = ARCHITECTURE.read_text("utf-8")
    listed = set(re.findall(r"`((?:[a-z_]+/)*[a-z_]+\.py|[a-z_]+/)`", text))
    missing = []
    for path in MODULES:
        relative = path.relative_to(PACKAGE).as_posix()
        folder = relative.split("/")[0] + "/" if "/" in relative else None
        if relative not in listed and not (path.name == "__init__.py" and folder in listed):
            missing.append(relative)
    assert missing == [], f"docs/architecture.md's module map lacks {', '.join(missing)}"


LONG_MODULE = 400


@pytest.mark.parametrize("path", MODULES, ids=lambda path: _module_name(path))
def test_a_long_module_says_why(path: Path) -> None:
    text = path.read_text("utf-8")
    lines = text.count("\n")
    if lines <= LONG_MODULE:
        return
    docstring = ast.get_docstring(ast.parse(text)) or ""
    assert "Why one module:" in docstring, (
        f"{_module_name(path)} has {lines} lines: split it by job, or say at its top "
        "('Why one module: ...') why it is one"
    )
