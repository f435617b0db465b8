"""The one way a model is loaded: a name or a file in, a `LoadedModel` out.

`load_model` takes a released model's name (its file's SHA-256 is checked against the zoo), a
.safetensors file, a legacy PyTorch pickle (only with `unsafe_load`, read weights-only) or a
baseline method with no network ('bicubic', 'identity'). Whatever was given, what the model was
trained for is read from the weights file's own metadata (`memnet.weights.files.trained_for`),
so a released model and the same file given by path are described alike. `memnet.load`, every
command and the server load through here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from memnet.devices import DTYPES
from memnet.errors import MemNetError
from memnet.fsutil import sha256_of
from memnet.model import MemNet, exact_context
from memnet.tasks import Task, baseline_methods, check_kind, task_kinds
from memnet.weights import zoo
from memnet.weights.files import load_any_weights, trained_for

__all__ = [
    "LoadedModel",
    "load_model",
    "outside_training",
]


@dataclass(frozen=True)
class LoadedModel:
    """A loaded network (None for a baseline method) and everything known about it."""

    network: MemNet | None
    name: str
    task: str | None  # the task it was trained for, when known (or the one asked for)
    levels: tuple[float, ...] = ()  # the fixed levels it was trained on (from the file)
    level_range: tuple[float, float] | None = None  # [low, high] of a blind model (from the file)
    # Context in pixels per side that makes tiled output equal whole-image output.
    context: int = 0
    dtypes: tuple[str, ...] = tuple(DTYPES)  # precisions it runs in (half only on GPUs)
    source: str = "baseline"  # "zoo", "safetensors", "pickle" or "baseline"
    path: Path | None = None  # the weights file, for all but a baseline
    sha256: str | None = None  # of the weights file
    metadata: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    entry: zoo.ZooEntry | None = None  # the zoo's description of a released model

    @property
    def trained(self) -> str:
        """The trained levels or range in words ('2, 3, 4', '0-75'); '' when unknown."""
        return zoo.describe_levels(self.levels, self.level_range)

    def trained_span(self) -> tuple[float, float] | None:
        """(lowest, highest) level it was trained on, or None when the file does not say."""
        if self.level_range is not None:
            return self.level_range
        if self.levels:
            return min(self.levels), max(self.levels)
        return None

    def without_network(self) -> LoadedModel:
        """The same description with the network dropped (to keep only what it restores)."""
        return replace(self, network=None)


def load_model(
    name_or_path: str | os.PathLike[str],
    *,
    task: str | None = None,
    unsafe_load: bool = False,
    map_location: str = "cpu",
) -> LoadedModel:
    """A released model name, a weights file, or 'bicubic'/'identity' → a `LoadedModel`.

    With `task`, a model trained for another task is refused and a model (or file) that does
    not say its task is taken to be for `task`. A pickle file needs `unsafe_load=True`.
    """
    if task is not None:
        check_kind(task)
    text = os.fspath(name_or_path)
    if text in baseline_methods():
        return LoadedModel(None, text, task)
    if text in zoo.REGISTRY:
        loaded = _load_released(zoo.get(text), map_location)
    else:
        path = Path(text)
        if not (path.exists() or path.suffix):
            known = ", ".join([*zoo.REGISTRY, *baseline_methods()])
            raise MemNetError(
                f"{text!r} is neither a released model ({known}) nor an existing weights file"
            )
        network, metadata = load_any_weights(
            path, unsafe_load=unsafe_load, map_location=map_location
        )
        source = "pickle" if metadata.get("source") == "pickle" else "safetensors"
        loaded = _describe(network, path.name, path, source, metadata)
    return _for_task(loaded, task)


def _load_released(entry: zoo.ZooEntry, map_location: str) -> LoadedModel:
    path = zoo.verified_weights_path(entry)
    network, metadata = load_any_weights(path, map_location=map_location)
    if network.config != entry.config:
        raise MemNetError(
            f"weights for {entry.name!r} describe a {network.config} network, "
            f"the registry expects {entry.config} (reinstall memnet)"
        )
    return _describe(network, entry.name, path, "zoo", metadata, entry, entry.sha256)


def _describe(
    network: MemNet,
    name: str,
    path: Path,
    source: str,
    metadata: dict[str, str],
    entry: zoo.ZooEntry | None = None,
    sha256: str | None = None,
) -> LoadedModel:
    recorded = trained_for(metadata)
    return LoadedModel(
        network,
        name,
        recorded.task if recorded.task in task_kinds() else None,
        levels=recorded.levels,
        level_range=recorded.level_range,
        context=exact_context(network),
        source=source,
        path=path,
        sha256=sha256 or sha256_of(path),
        metadata=MappingProxyType(dict(metadata)),
        entry=entry,
    )


def _for_task(loaded: LoadedModel, task: str | None) -> LoadedModel:
    if task is None or loaded.task == task:
        return loaded
    if loaded.task is not None:
        raise MemNetError(f"model {loaded.name!r} was trained for {loaded.task!r}, not {task!r}")
    return replace(loaded, task=task)


def outside_training(loaded: LoadedModel, task: Task) -> str | None:
    """A warning when `task`'s level lies outside what the model was trained on, else None."""
    span = loaded.trained_span()
    if span is None or loaded.task != task.kind:
        return None
    level = float(task.level)
    if span[0] <= level <= span[1]:
        return None
    what = "range" if loaded.level_range is not None else "levels"
    return (
        f"warning: {loaded.name} was trained for {task.kind} {what} {loaded.trained}; "
        f"{task.label} is outside that range"
    )
