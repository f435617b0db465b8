"""Restore jobs: restore_job.py runs one on this machine or, with Ray Data (the `ray` extra), on a
cluster (ray_job.py): the same plan and the same per-file restore, run by actors that each hold
one model (worker.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memnet.scale.ray_job import RayOptions, RayReport, restore_on_ray

__all__ = ["RayOptions", "RayReport", "restore_on_ray"]


def __getattr__(name: str) -> Any:
    # Ray is imported only when a job is actually sent to it.
    if name in __all__:
        from memnet.scale import ray_job

        return getattr(ray_job, name)
    raise AttributeError(f"module 'memnet.scale' has no attribute {name!r}")
