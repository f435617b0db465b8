"""The Python API: `memnet.load(...)` returns a restorer that takes arrays, PIL images or paths.

    import memnet
    sr = memnet.load("bicubic", task="sr", scale=2)     # or a released model name, or a .safetensors file
    big = sr(array)                                     # numpy in → numpy out (same dtype)
    big = sr(pil_image, scale=3)                        # PIL in → PIL out; levels at load or call
    picture = sr("photo.jpg")                           # path in → memnet.imaging.picture.Picture out
    sr.restore_file("photo.jpg", "photo-x2.png")        # path in → file written atomically
    frames = sr.restore_batch([a, b, c])                # arrays of one size, batched on a GPU

Levels are keywords named by the task (`Task.level_name`: scale, sigma, quality), given at
load or call. SR needs a scale. The denoising and deblocking networks are blind to the noise
level / JPEG quality, so `sigma` and `quality` only describe the input; when omitted they are
the task's default level if the model was trained on it, else the model's first trained level.
Models are loaded by memnet.weights.loading.load_model, like every command loads them.
"""

from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from memnet import devices
from memnet.errors import MemNetError
from memnet.imaging.picture import Picture, picture_from_array, picture_to_array
from memnet.imaging.reading import picture_from_pil, read_image
from memnet.imaging.writing import picture_to_pil, sample_depth, write_image
from memnet.inference.engine import ProgressCallback, Restorer
from memnet.inference.memory import activation_budget, picture_plane_bytes
from memnet.inference.pictures import (
    check_color_mode,
    check_one_size,
    network_channels,
    resolve_color,
    restore_picture,
    restore_pictures,
)
from memnet.inference.planning import Plan
from memnet.tasks import Task, check_kind, level_names, task_class, task_kinds
from memnet.weights import zoo
from memnet.weights.loading import LoadedModel, load_model

__all__ = ["ImageRestorer", "LoadedModel", "load"]


@dataclass
class ImageRestorer:
    """Restores images for one task with one model; call it on an array, a PIL image or a path.

    Thread-safe: one instance may be called from several threads at once, and several
    processes may each load their own; every call keeps its own buffers and the network is
    only read (tests/test_concurrency.py). The automatic plan (whole, streamed or split) is
    chosen per call from the memory free at that moment, so under memory pressure a call may
    split an image that a lone call runs whole (equal within float rounding); pass `tile` for
    a plan that never changes.
    """

    loaded: LoadedModel
    task: str
    restorer: Restorer | None
    color: str = "auto"
    levels: dict[str, float] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.loaded.name

    def make_task(self, **levels: float | None) -> Task:
        """The task with its level from this call, else from load, else the model's default.

        `levels` are by name (scale=, sigma=, quality=); those of other tasks are ignored.
        """
        cls = task_class(self.task)
        key = cls.level_name
        level = _checked_levels(levels).get(key)
        if level is None:
            level = self.levels.get(key)
        span = self.loaded.trained_span()
        if level is None and span is not None and cls.blind:
            # The usual level when the model covers it (a blind model's range includes it),
            # else the first level it was trained on.
            usual = cls.default_level
            first = self.loaded.levels[0] if self.loaded.levels else span[0]
            level = usual if span[0] <= usual <= span[1] else first
        if level is None:
            if not cls.blind:
                raise MemNetError(f"{cls.title} needs a {key}, e.g. {key}={cls.default_level:g}")
            level = cls.default_level
        try:
            return cls.from_level(float(level))
        except ValueError as error:
            raise MemNetError(str(error)) from None

    def restore_picture(
        self,
        picture: Picture,
        *,
        progress: ProgressCallback | None = None,
        **levels: float | None,
    ) -> Picture:
        """Restore a `Picture` (see memnet.imaging.picture) and return a new one."""
        return self.restore_task(picture, self.make_task(**levels), progress)

    def restore_for_file(
        self,
        picture: Picture,
        target: str | os.PathLike[str],
        *,
        progress: ProgressCallback | None = None,
        levels: Mapping[str, float | None] | None = None,
    ) -> Picture:
        """`restore_picture` for writing to `target`: the result holds the integer samples
        `write_image` writes there (writing.sample_depth), rounded as it would round them, so
        no float copy of it is held; read the picture with `read_image(..., samples=True)`."""
        task = self.make_task(**dict(levels or {}))
        return self.restore_task(picture, task, progress, depth=sample_depth(picture, target))

    def restore_task(
        self,
        picture: Picture,
        task: Task,
        progress: ProgressCallback | None = None,
        *,
        depth: int | None = None,
    ) -> Picture:
        """Restore a `Picture` for `task` (a Task of this restorer's kind, level included);
        `depth`: integer samples out (pictures.restore_picture)."""
        if task.kind != self.task:
            raise MemNetError(f"this restorer restores {self.task!r}, not {task.kind!r}")
        resolve_color(self.color, task)  # a bad colour mode fails before any work
        network: Callable[[NDArray[np.floating]], NDArray[np.floating]] | None = None
        if self.restorer is not None:
            restorer = self.restorer
            # One plan for every channel: the memory budget is read once per picture.
            plan = self._plan(picture, task, depth)
            # Count forward windows over all channels that go through the network.
            total = self._passes(picture.is_gray, task) * plan.units
            finished = 0

            def network(channel: NDArray[np.floating]) -> NDArray[np.floating]:
                nonlocal finished
                offset = finished

                def report(done: int, _total: int) -> None:
                    nonlocal finished
                    finished = offset + done
                    if progress is not None:
                        progress(finished, total)

                return restorer(channel, progress=report, plan=plan)

        return restore_picture(picture, task, network, color=self.color, depth=depth)

    def batch_size(self, image: NDArray[Any] | Picture, **levels: float | None) -> int:
        """How many pictures of `image`'s size and kind `restore_batch` restores in one forward
        pass: as many as fit, all their network planes together, in the memory budget less
        their own planes where these share the device's memory (memory.activation_budget);
        1 on the CPU, for the baseline and whenever one picture alone does not run whole."""
        task = self.make_task(**levels)
        if not isinstance(image, Picture):
            shape = np.shape(image)
            if len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] not in (1, 2, 3, 4)):
                picture_from_array(image)  # not a picture: its one-line reason
        if self.restorer is None or not self.restorer.batch_images:
            return 1  # known without converting the array (video asks once per batch)
        picture = image if isinstance(image, Picture) else picture_from_array(image)
        return max(1, self._group(picture, task, sys.maxsize)[0])

    def restore_batch(
        self, images: Sequence[NDArray[Any]], **levels: float | None
    ) -> list[NDArray[Any]]:
        """Restore arrays of one size and kind, `batch_size` of them per forward pass; each
        result is what `self(image)` returns for it (see Restorer.restore_batch on rounding)."""
        task = self.make_task(**levels)
        pictures = [picture_from_array(image) for image in images]
        restored = self.restore_pictures(pictures, task)
        return [_as_array(out, image) for out, image in zip(restored, images, strict=True)]

    def restore_pictures(self, pictures: Sequence[Picture], task: Task) -> list[Picture]:
        """`restore_task` of each of `pictures` (one size), `batch_size` of them per pass."""
        if task.kind != self.task:
            raise MemNetError(f"this restorer restores {self.task!r}, not {task.kind!r}")
        if not pictures:
            return []
        check_one_size(pictures)
        first = pictures[0]
        restorer = self.restorer
        if restorer is None or not restorer.batch_images:
            return [self.restore_task(picture, task) for picture in pictures]
        size, plan = self._group(first, task, len(pictures))
        if size == 0:  # not even one picture's planes run in one pass: each on its own plan
            return [self.restore_task(picture, task) for picture in pictures]
        network = functools.partial(restorer.restore_batch, plan=plan)
        restored: list[Picture] = []
        for start in range(0, len(pictures), size):
            group = list(pictures[start : start + size])
            restored += restore_pictures(group, task, network, color=self.color)
        return restored

    def _group(self, first: Picture, task: Task, count: int) -> tuple[int, Plan]:
        """How many of `count` pictures like `first` run in one pass (0: not even one
        picture's planes together), and that pass's plan.

        One plan for the whole group: the budget is read once, not per picture or pass. Every
        picture of a group holds its planes while the pass runs, so where they share the
        device's memory the group's planes and the pass's activations share the budget. A
        group of n fits when n pictures' planes go through one pass in what their planes leave;
        if n fits so does n - 1, so the largest n is found by bisection.
        """
        restorer = self.restorer
        assert restorer is not None
        shape = task.output_shape(first.height, first.width)
        budget, planes = restorer.memory_budget(), self._plane_bytes(first, task, None)
        passes = self._passes(first.is_gray, task)

        def plan_for(n: int) -> Plan:
            return restorer.plan(*shape, activation_budget(budget, n * planes, restorer.device))

        def fits(n: int) -> bool:
            return n * passes <= restorer.images_per_pass(plan_for(n))

        if not fits(1):
            return 0, plan_for(1)
        # Above one picture's own limit no group fits (a larger group only leaves less).
        low, high = 1, max(1, min(count, restorer.images_per_pass(plan_for(1)) // passes))
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if fits(middle) else (low, middle - 1)
        return low, plan_for(low)

    def _passes(self, is_gray: bool, task: Task) -> int:
        """How many of a picture's planes go through the network (pictures.network_channels)."""
        return len(network_channels(is_gray, resolve_color(self.color, task)))

    def windows(self, picture: Picture, **levels: float | None) -> int:
        """Progress steps (tiles, or bands of streamed rows) for `picture`; 0 for the baseline."""
        if self.restorer is None:
            return 0
        task = self.make_task(**levels)
        return self._passes(picture.is_gray, task) * self._plan(picture, task, None).units

    def _plane_bytes(self, picture: Picture, task: Task, depth: int | None) -> int:
        """The bytes of `picture`'s own planes while it is restored (memory.picture_plane_bytes)."""
        mode = "gray" if picture.is_gray else resolve_color(self.color, task)
        return picture_plane_bytes(
            picture.pixels,
            picture.alpha,
            task.output_shape(picture.height, picture.width),
            mode,
            resamples=task.resamples,
            depth=depth,
        )

    def _plan(self, picture: Picture, task: Task, depth: int | None) -> Plan:
        """The network's plan for `picture`: the activations get the memory budget less the
        picture's own planes where they share the device's memory (memory.activation_budget)."""
        assert self.restorer is not None
        restorer = self.restorer
        planes = self._plane_bytes(picture, task, depth)
        budget = activation_budget(restorer.memory_budget(), planes, restorer.device)
        return restorer.plan(*task.output_shape(picture.height, picture.width), budget)

    @overload
    def __call__(self, image: NDArray[Any], **levels: float | None) -> NDArray[Any]: ...
    @overload
    def __call__(self, image: Image.Image, **levels: float | None) -> Image.Image: ...
    @overload
    def __call__(
        self, image: str | os.PathLike[str] | Picture, **levels: float | None
    ) -> Picture: ...

    def __call__(self, image: object, **levels: float | None) -> object:
        """Restore `image` and return the same kind: array → array (same dtype and layout),
        PIL image → PIL image, path or Picture → Picture. Levels by name: scale=2, sigma=25…"""
        if isinstance(image, np.ndarray):
            return _as_array(
                self.restore_task(picture_from_array(image), self.make_task(**levels)), image
            )
        if isinstance(image, Image.Image):
            return picture_to_pil(
                self.restore_task(picture_from_pil(image), self.make_task(**levels))
            )
        if isinstance(image, Picture):
            return self.restore_task(image, self.make_task(**levels))
        if isinstance(image, (str, os.PathLike)):
            return self.restore_task(read_image(image, samples=True), self.make_task(**levels))
        raise TypeError(
            f"cannot restore a {type(image).__name__}; give a numpy array, a PIL image or a path"
        )

    def restore_file(
        self,
        source: str | os.PathLike[str],
        target: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        **levels: float | None,
    ) -> Path:
        """Read `source`, restore it and write `target` atomically (never over the source)."""
        source, target = Path(source), Path(target)
        if target.exists() and target.resolve() == source.resolve():
            raise MemNetError(f"{target}: refusing to overwrite the input image")
        if target.exists() and not overwrite:
            raise MemNetError(f"{target}: already exists (pass overwrite=True to replace it)")
        picture = read_image(source, samples=True)
        restored = self.restore_for_file(picture, target, levels=levels)
        del picture
        write_image(restored, target)
        return target


def load(
    name_or_path: str | os.PathLike[str] | None = None,
    device: str = "auto",
    *,
    task: str | None = None,
    tile: int | None = None,
    tile_pad: int | None = None,
    dtype: str = "fp32",
    self_ensemble: bool = False,
    color: str = "auto",
    unsafe_load: bool = False,
    **levels: float | None,
) -> ImageRestorer:
    """Load a released model (by name), a weights file, or 'bicubic'/'identity' for `task`.

    Without `name_or_path` the task's default released model is used (memnet.weights.zoo.default_model). `levels` are the task's
    level by name (scale=, sigma=, quality=), used when a call gives none. `device` goes
    through memnet.devices.resolve_device (auto: CUDA, else MPS, else the CPU). `tile=None` runs an image
    whole when it fits free memory, otherwise streamed over rows (CPU) or tiled (GPU); `color` is auto, y, ycbcr or rgb (see memnet.inference.pictures).
    """
    if name_or_path is None:
        if task is None:
            raise MemNetError("give a model name, a weights file or a task")
        check_kind(task)
        name_or_path = zoo.default_model(task).name
    loaded = load_model(name_or_path, task=task, unsafe_load=unsafe_load)
    if loaded.task is None:
        named = ", ".join(repr(kind) for kind in task_kinds())
        raise MemNetError(f"the task of {loaded.name!r} is unknown; give task= one of {named}")
    chosen = loaded.task
    given = {
        key: float(value)
        for key, value in _checked_levels(levels).items()
        if value is not None and not (isinstance(value, float) and math.isnan(value))
    }
    check_color_mode(color)  # before a network is built for nothing
    restorer = None
    if loaded.network is None:
        # no network to run, but a device or dtype that cannot work is refused all the same
        devices.resolve_dtype(dtype, devices.resolve_device(device))
    else:
        restorer = Restorer(
            loaded.network,
            device=device,
            tile=tile,
            tile_pad=tile_pad,
            dtype=dtype,
            self_ensemble=self_ensemble,
        )
    result = ImageRestorer(loaded, chosen, restorer, color=color, levels=given)
    if given:
        result.make_task()  # a bad level fails here, not at the first image
    return result


def _as_array(restored: Picture, like: NDArray[Any]) -> NDArray[Any]:
    """A restored picture as an array of the input array's dtype (float64 for floats) and layout."""
    dtype = like.dtype if like.dtype in (np.uint8, np.uint16) else np.float64
    out = picture_to_array(restored, dtype)
    return out[..., None] if like.ndim == 3 and like.shape[2] == 1 else out


def _checked_levels(levels: dict[str, float | None]) -> dict[str, float | None]:
    """`levels` unchanged; TypeError for a keyword that is no task's level name."""
    known = level_names()
    for name in levels:
        if name not in known:
            raise TypeError(
                f"unexpected keyword argument {name!r}; a level is one of {', '.join(known)}"
            )
    return levels
