"""What the API's forms offer, made from the task registry: the level fields and the tasks.

A task's level is a form field of /v1/restore (and of its schema), and /v1/models describes
each task for the page's menus, so a task added to memnet.tasks reaches the server and the
page without an edit here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Form

from memnet.tasks import Task, task_classes

__all__ = ["describe_task", "level_fields", "with_level_fields"]


def with_level_fields(route: Callable[..., Any]) -> Callable[..., Any]:
    """`route` with one optional form field per task level (scale, sigma, quality, ...).

    The fields come from the task classes (memnet.tasks), so a new task's level is a field of
    /v1/restore and of its schema without an edit here; `route` takes them as `**levels`.
    """
    signature = inspect.signature(route)
    fixed = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    fields = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[float | None, Form(description=help_text)],
        )
        for name, help_text in level_fields().items()
    ]
    route.__signature__ = signature.replace(parameters=[*fixed, *fields])  # type: ignore[attr-defined]
    return route


def level_fields() -> dict[str, str]:
    """Each task level's name and what it means (tasks sharing a name share the field)."""
    fields: dict[str, str] = {}
    for cls in task_classes():
        text = f"{cls.title}: {cls.level_help}"
        fields[cls.level_name] = (
            f"{fields[cls.level_name]}; {text}" if cls.level_name in fields else text
        )
    return fields


def describe_task(cls: type[Task]) -> dict[str, object]:
    """What the page needs to offer a task: its name, its level field and the usual levels."""
    return {
        "task": cls.kind,
        "title": cls.title,
        "level": {
            "field": cls.level_name,
            "title": cls.level_title,
            "help": cls.level_help,
            "default": cls.default_level,
            "choices": [
                {"value": level, "label": cls.column_title.format(level)}
                for level in cls.benchmark_levels
            ],
        },
    }
