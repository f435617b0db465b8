"""The models a server offers, and turning a request's options into a task and an output type."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from memnet.errors import MemNetError
from memnet.inference.api import ImageRestorer
from memnet.inference.folders import EXTENSIONS, output_suffix
from memnet.inference.pictures import check_color_mode
from memnet.tasks import (
    SuperResolution,
    Task,
    baseline_methods,
    baselines_in_words,
    check_kind,
    kinds_in_words,
    task_class,
)
from memnet.weights import zoo
from memnet.weights.loading import LoadedModel, load_model

__all__ = ["Catalogue", "OfferedModel", "RestoreOptions"]

# Beyond this an SR result is mostly interpolation; it also keeps output sizes computable.
MAX_SCALE = 16.0


@dataclass(frozen=True)
class OfferedModel:
    """One model clients may choose: its name, what loads it, and what it restores."""

    name: str
    spec: str  # what memnet.load takes: a released name, a weights file or a baseline method
    loaded: LoadedModel  # without its network: only the name, task and trained levels

    @property
    def entry(self) -> zoo.ZooEntry | None:
        """The zoo's description of a released model, None for files and baselines."""
        return self.loaded.entry

    @property
    def task(self) -> str | None:
        return self.loaded.task

    def describe(self) -> dict[str, object]:
        """The JSON description /v1/models gives, with the measured metrics of released models."""
        entry = self.entry
        return {
            "name": self.name,
            "task": self.task,
            "levels": list(self.loaded.levels),
            "range": list(self.loaded.level_range) if self.loaded.level_range else None,
            "baseline": self.spec in baseline_methods(),
            "description": entry.description if entry else _baseline_text(self),
            "default": bool(entry and zoo.default_model(entry.task) is entry),
            "network": None
            if entry is None
            else {
                "blocks": entry.config.blocks,
                "recursions": entry.config.recursions,
                "channels": entry.config.channels,
            },
            "metrics": {key: str(score) for key, score in entry.metrics.items()} if entry else {},
            "training": None
            if entry is None
            else {
                "recipe": entry.recipe,
                "iterations": entry.iterations,
                "time": entry.training_time,
            },
        }


def _baseline_text(model: OfferedModel) -> str:
    if model.spec in baseline_methods():
        # every baseline name runs each task's own baseline
        return f"no network: {baselines_in_words()}"
    return f"weights file {model.spec}"


@dataclass(frozen=True)
class RestoreOptions:
    """What one request asks for, checked: model, task with its level, colour mode, output type."""

    model: OfferedModel
    task: Task
    color: str
    suffix: str  # the output file's extension, e.g. ".png"
    filename: str  # the name the client's download gets

    @property
    def level(self) -> dict[str, float]:
        """The task's level as the keyword memnet's restorers take (scale, sigma or quality)."""
        return {self.task.level_name: self.task.level}


class Catalogue:
    """The models of one server, by name; `options()` checks a request against them."""

    def __init__(self, specs: tuple[str, ...] = ()) -> None:
        self.models: dict[str, OfferedModel] = {}
        for spec in specs or (*zoo.REGISTRY, *baseline_methods()):
            model = self._offer(spec)
            if model.name in self.models:
                raise MemNetError(f"model {model.name!r} is given twice")
            self.models[model.name] = model

    @staticmethod
    def _offer(spec: str) -> OfferedModel:
        # Loaded once to learn what it restores (and to fail at start-up); the workers load
        # their own copy, so the network is not kept here.
        loaded = load_model(spec).without_network()
        if loaded.source in ("zoo", "baseline"):
            return OfferedModel(spec, spec, loaded)
        name = Path(spec).stem
        return OfferedModel(name, str(Path(spec).resolve()), replace(loaded, name=name))

    def default_for(self, task: str) -> OfferedModel | None:
        """The model a request for `task` gets when it names none.

        The task's default released model (memnet.weights.zoo.default_model) when this
        server offers it, else the first offered model for the task, else its baseline.
        """
        try:
            released: str | None = zoo.default_model(task).name
        except MemNetError:  # a task with no released model yet: the offered ones decide
            released = None
        if released in self.models:
            return self.models[released]
        fitting = [m for m in self.models.values() if m.task == task]
        if fitting:
            return fitting[0]
        return self.models.get(task_class(task).baseline)

    def options(
        self,
        *,
        filename: str,
        task: str | None,
        model: str | None,
        levels: Mapping[str, float | None],
        color: str,
        output_format: str,
    ) -> RestoreOptions:
        """Check a request's choices; a ServeError-worthy problem raises MemNetError (→ 400)."""
        if task is not None:
            check_kind(task)
        check_color_mode(color)
        if output_format not in EXTENSIONS:
            raise MemNetError(
                f"unknown output format {output_format!r}; use {', '.join(EXTENSIONS)}"
            )
        for name, value in levels.items():
            if value is not None and not math.isfinite(value):
                raise MemNetError(f"{name} must be a finite number")
        chosen = self._choose(task, model)
        kind = task or chosen.task
        if kind is None:
            raise MemNetError(
                f"model {chosen.name!r} restores any task; give task={kinds_in_words()}"
            )
        cls = task_class(kind)
        # other tasks' levels do not apply; a needed level not given is the default, as in the CLI
        levels = {cls.level_name: cls.level_or_default(levels.get(cls.level_name))}
        # memnet's own rule for a level that is not given (the model's usual or trained one).
        made = ImageRestorer(chosen.loaded, kind, None).make_task(**levels)
        if isinstance(made, SuperResolution) and made.scale > MAX_SCALE:
            raise MemNetError(f"scale must be at most {MAX_SCALE:g}, got {made.scale:g}")
        source = Path(Path(filename).name or "image")
        suffix = output_suffix(
            source, output_format, made.auto_format if output_format == "auto" else None
        )
        return RestoreOptions(chosen, made, color, suffix, f"{source.stem}_{made.label}{suffix}")

    def _choose(self, task: str | None, model: str | None) -> OfferedModel:
        if model is not None:
            if model not in self.models:
                known = ", ".join(self.models)
                raise MemNetError(f"unknown model {model!r}; this server offers {known}")
            chosen = self.models[model]
            if task is not None and chosen.task is not None and chosen.task != task:
                raise MemNetError(f"model {model!r} restores {chosen.task!r}, not {task!r}")
            return chosen
        if task is None:
            raise MemNetError(f"give a task ({kinds_in_words()}) or a model")
        default = self.default_for(task)
        if default is None:
            raise MemNetError(f"this server offers no model for task {task!r}")
        return default
