"""Released weights, described declaratively: name → file, SHA-256, config, task and metrics.

The files live in `memnet/weights/` inside the package; nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from memnet.errors import MemNetError
from memnet.model import MemNetConfig

__all__ = ["REGISTRY", "ZooEntry", "describe", "describe_all", "get", "weights_path"]


@dataclass(frozen=True)
class ZooEntry:
    """One released model: where its weights are, what it restores and how well (measured)."""

    name: str
    file: str
    sha256: str
    config: MemNetConfig
    task: str  # "sr", "denoise" or "jpeg"
    levels: tuple[float, ...]  # scales, sigmas or qualities it was trained on
    description: str
    recipe: str = ""
    iterations: int = 0
    training_time: str = ""
    metrics: dict[str, str] = field(default_factory=dict)  # e.g. {"Set5 x2": "36.71 / 0.9530"}


REGISTRY: dict[str, ZooEntry] = {}


def get(name: str) -> ZooEntry:
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(REGISTRY) or "none bundled"
        raise MemNetError(f"unknown model {name!r}; released models: {known}") from None


def weights_path(entry: ZooEntry) -> Path:
    return Path(str(resources.files("memnet") / "weights" / entry.file))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verified_weights_path(entry: ZooEntry) -> Path:
    """The entry's file, after checking it exists and has the registered SHA-256."""
    path = weights_path(entry)
    if not path.is_file():
        raise MemNetError(f"weights for {entry.name!r} are missing: {path} (reinstall memnet)")
    actual = sha256_of(path)
    if actual != entry.sha256:
        raise MemNetError(
            f"weights for {entry.name!r} are corrupt: {path} has SHA-256 {actual[:12]}…, "
            f"expected {entry.sha256[:12]}… (reinstall memnet)"
        )
    return path


def describe(name: str) -> str:
    entry = get(name)
    c = entry.config
    lines = [
        f"{entry.name}: {entry.description}",
        f"  task {entry.task} {', '.join(f'{v:g}' for v in entry.levels)}; "
        f"MemNet M={c.blocks} R={c.recursions} C={c.channels}",
        f"  file {entry.file}  sha256 {entry.sha256}",
    ]
    if entry.recipe:
        lines.append(
            f"  recipe {entry.recipe}, {entry.iterations:,} iterations, {entry.training_time}"
        )
    for key, value in entry.metrics.items():
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)


def describe_all() -> list[str]:
    return [
        f"{e.name:<20} {e.task:<8} {', '.join(f'{v:g}' for v in e.levels):<12} {e.description}"
        for e in REGISTRY.values()
    ]
