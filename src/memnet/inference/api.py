"""The Python API: `memnet.load(...)` returns a restorer that takes arrays, PIL images or paths.

    import memnet
    sr = memnet.load("bicubic", task="sr", scale=2)     # or a released model name, or a .safetensors file
    big = sr(array)                                     # numpy in → numpy out (same dtype)
    big = sr(pil_image, scale=3)                        # PIL in → PIL out; levels at load or call
    picture = sr("photo.jpg")                           # path in → memnet.imaging.files.Picture out
    sr.restore_file("photo.jpg", "photo-x2.png")        # path in → file written atomically

`levels`: SR needs a scale (given at load or call). The denoising and deblocking networks are
blind to the noise level / JPEG quality, so `sigma` and `quality` only describe the input; when
omitted they default to the model's first trained level.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from memnet.errors import MemNetError
from memnet.imaging.files import (
    Picture,
    picture_from_array,
    picture_from_pil,
    picture_to_array,
    picture_to_pil,
    read_image,
    write_image,
)
from memnet.inference.engine import ProgressCallback, Restorer, resolve_device, resolve_dtype
from memnet.inference.pictures import resolve_color, restore_picture
from memnet.model import MemNet
from memnet.tasks import TASK_KINDS, Task, make_task
from memnet.training.checkpoint import META_LEVELS
from memnet.weights import zoo

__all__ = ["BASELINE_METHODS", "ImageRestorer", "LoadedModel", "load", "resolve_model"]

# Names that select the no-network baseline: bicubic upsampling for SR, the input itself otherwise.
BASELINE_METHODS = ("bicubic", "identity")
LEVEL_NAMES = {"sr": "scale", "denoise": "sigma", "jpeg": "quality"}
# Used only when neither the caller nor the model names a level for the blind tasks.
FALLBACK_LEVELS = {"denoise": 50.0, "jpeg": 10.0}


@dataclass(frozen=True)
class LoadedModel:
    """A network (or None for the baseline) with what is known about it."""

    model: MemNet | None
    name: str
    task: str | None  # the task it was trained for, when known
    levels: tuple[float, ...] = ()

    @property
    def is_baseline(self) -> bool:
        return self.model is None


def resolve_model(
    name_or_path: str | os.PathLike[str], *, unsafe_load: bool = False
) -> LoadedModel:
    """A released model name, a weights file, or 'bicubic'/'identity' → a LoadedModel."""
    text = os.fspath(name_or_path)
    if text in BASELINE_METHODS:
        return LoadedModel(None, text, None)
    if text in zoo.REGISTRY:
        model, entry = zoo.load_model(text)
        return LoadedModel(model, entry.name, entry.task, tuple(entry.levels))
    path = Path(text)
    if path.exists() or path.suffix:
        from memnet.weights.files import load_any_weights

        model, metadata = load_any_weights(path, unsafe_load=unsafe_load)
        task = metadata.get("memnet.task", metadata.get("task"))
        return LoadedModel(
            model, path.name, task if task in TASK_KINDS else None, _trained_levels(metadata)
        )
    known = ", ".join([*zoo.REGISTRY, *BASELINE_METHODS])
    raise MemNetError(
        f"{text!r} is neither a released model ({known}) nor an existing weights file"
    )


def _trained_levels(metadata: dict[str, str]) -> tuple[float, ...]:
    """The levels a run's weights file says it was trained on (`memnet.levels`), if any."""
    try:
        levels = json.loads(metadata.get(META_LEVELS, "[]"))
    except json.JSONDecodeError:
        return ()
    if not isinstance(levels, list):
        return ()
    return tuple(
        float(v) for v in levels if isinstance(v, (int, float)) and not isinstance(v, bool)
    )


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

    def make_task(
        self,
        *,
        scale: float | None = None,
        sigma: float | None = None,
        quality: float | None = None,
    ) -> Task:
        """The task with its level from this call, else from load, else the model's default."""
        key = LEVEL_NAMES[self.task]
        level = {"scale": scale, "sigma": sigma, "quality": quality}[key]
        if level is None:
            level = self.levels.get(key)
        if level is None and self.loaded.levels and self.task != "sr":
            # The usual level when the model covers it (a blind model's range includes it),
            # else the first level it was trained on.
            trained = self.loaded.levels
            usual = FALLBACK_LEVELS[self.task]
            level = usual if min(trained) <= usual <= max(trained) else trained[0]
        if level is None:
            if self.task == "sr":
                raise MemNetError("super-resolution needs a scale, e.g. scale=2")
            level = FALLBACK_LEVELS[self.task]
        try:
            return make_task(self.task, float(level))
        except ValueError as error:
            raise MemNetError(str(error)) from None

    def restore_picture(
        self,
        picture: Picture,
        *,
        scale: float | None = None,
        sigma: float | None = None,
        quality: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> Picture:
        """Restore a `Picture` (see memnet.imaging.files) and return a new one."""
        task = self.make_task(scale=scale, sigma=sigma, quality=quality)
        mode = resolve_color(self.color, task)
        network: Callable[[NDArray[np.floating]], NDArray[np.floating]] | None = None
        if self.restorer is not None:
            restorer = self.restorer
            # One plan for every channel: the memory budget is read once per picture.
            plan = restorer.plan(*task.output_shape(picture.height, picture.width))
            # Count forward windows over all channels that go through the network.
            passes = 1 if picture.is_gray or mode == "y" else 3
            total = passes * plan.units
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

        return restore_picture(picture, task, network, color=self.color)

    def windows(
        self,
        picture: Picture,
        *,
        scale: float | None = None,
        sigma: float | None = None,
        quality: float | None = None,
    ) -> int:
        """Progress steps (tiles, or bands of streamed rows) for `picture`; 0 for the baseline."""
        if self.restorer is None:
            return 0
        task = self.make_task(scale=scale, sigma=sigma, quality=quality)
        passes = 1 if picture.is_gray or resolve_color(self.color, task) == "y" else 3
        plan = self.restorer.plan(*task.output_shape(picture.height, picture.width))
        return passes * plan.units

    @overload
    def __call__(
        self,
        image: NDArray[Any],
        *,
        scale: float | None = None,
        sigma: float | None = None,
        quality: float | None = None,
    ) -> NDArray[Any]: ...
    @overload
    def __call__(
        self,
        image: Image.Image,
        *,
        scale: float | None = None,
        sigma: float | None = None,
        quality: float | None = None,
    ) -> Image.Image: ...
    @overload
    def __call__(
        self,
        image: str | os.PathLike[str] | Picture,
        *,
        scale: float | None = None,
        sigma: float | None = None,
        quality: float | None = None,
    ) -> Picture: ...

    def __call__(
        self,
        image: object,
        *,
        scale: float | None = None,
        sigma: float | None = None,
        quality: float | None = None,
    ) -> object:
        """Restore `image` and return the same kind: array → array (same dtype and layout),
        PIL image → PIL image, path or Picture → Picture."""
        levels: dict[str, Any] = {"scale": scale, "sigma": sigma, "quality": quality}
        if isinstance(image, np.ndarray):
            restored = self.restore_picture(picture_from_array(image), **levels)
            dtype = image.dtype if image.dtype in (np.uint8, np.uint16) else np.float64
            out = picture_to_array(restored, dtype)
            return out[..., None] if image.ndim == 3 and image.shape[2] == 1 else out
        if isinstance(image, Image.Image):
            return picture_to_pil(self.restore_picture(picture_from_pil(image), **levels))
        if isinstance(image, Picture):
            return self.restore_picture(image, **levels)
        if isinstance(image, (str, os.PathLike)):
            return self.restore_picture(read_image(image), **levels)
        raise TypeError(
            f"cannot restore a {type(image).__name__}; give a numpy array, a PIL image or a path"
        )

    def restore_file(
        self,
        source: str | os.PathLike[str],
        target: str | os.PathLike[str],
        *,
        overwrite: bool = False,
        scale: float | None = None,
        sigma: float | None = None,
        quality: float | None = None,
    ) -> Path:
        """Read `source`, restore it and write `target` atomically (never over the source)."""
        levels: dict[str, Any] = {"scale": scale, "sigma": sigma, "quality": quality}
        source, target = Path(source), Path(target)
        if target.exists() and target.resolve() == source.resolve():
            raise MemNetError(f"{target}: refusing to overwrite the input image")
        if target.exists() and not overwrite:
            raise MemNetError(f"{target}: already exists (pass overwrite=True to replace it)")
        write_image(self.restore_picture(read_image(source), **levels), target)
        return target


def load(
    name_or_path: str | os.PathLike[str] | None = None,
    device: str = "auto",
    *,
    task: str | None = None,
    scale: float | None = None,
    sigma: float | None = None,
    quality: float | None = None,
    tile: int | None = None,
    tile_pad: int | None = None,
    dtype: str = "fp32",
    self_ensemble: bool = False,
    color: str = "auto",
    unsafe_load: bool = False,
) -> ImageRestorer:
    """Load a released model (by name), a weights file, or 'bicubic'/'identity' for `task`.

    Without `name_or_path` the released model for `task` is used. `tile=None` runs an image
    whole when it fits free memory, otherwise streamed over rows (CPU) or tiled (GPU); `color` is auto, y, ycbcr or rgb (see memnet.inference.pictures).
    """
    if name_or_path is None:
        if task is None:
            raise MemNetError("give a model name, a weights file or a task")
        entry = zoo.default_for(task)
        if entry is None:
            raise MemNetError(
                f"no released model for task {task!r} yet; use memnet.load('bicubic', task={task!r})"
            )
        name_or_path = entry.name
    loaded = resolve_model(name_or_path, unsafe_load=unsafe_load)
    chosen = _choose_task(task, loaded)
    levels = {
        key: float(value)
        for key, value in (("scale", scale), ("sigma", sigma), ("quality", quality))
        if value is not None and not (isinstance(value, float) and math.isnan(value))
    }
    restorer = None
    if loaded.model is None:
        # no network to run, but a device or dtype that cannot work is refused all the same
        resolve_dtype(dtype, resolve_device(device))
    else:
        restorer = Restorer(
            loaded.model,
            device=device,
            tile=tile,
            tile_pad=tile_pad,
            dtype=dtype,
            self_ensemble=self_ensemble,
        )
    if color not in ("auto", "y", "ycbcr", "rgb"):
        raise MemNetError(f"unknown colour mode {color!r}; use auto, y, ycbcr or rgb")
    result = ImageRestorer(loaded, chosen, restorer, color=color, levels=levels)
    if levels:
        result.make_task()  # a bad level fails here, not at the first image
    return result


def _choose_task(requested: str | None, loaded: LoadedModel) -> str:
    if requested is not None and requested not in TASK_KINDS:
        raise MemNetError(f"unknown task {requested!r}; choose one of {', '.join(TASK_KINDS)}")
    if requested is not None and loaded.task is not None and requested != loaded.task:
        raise MemNetError(
            f"model {loaded.name!r} was trained for {loaded.task!r}, not {requested!r}"
        )
    chosen = requested or loaded.task
    if chosen is None:
        raise MemNetError(
            f"the task of {loaded.name!r} is unknown; give task='sr', 'denoise' or 'jpeg'"
        )
    return chosen
