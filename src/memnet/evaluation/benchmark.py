"""Benchmark runner: image sets × task levels → per-image scores and a summary table.

The protocol is the authors' MATLAB test scripts (see `memnet.tasks`): every clean image is read
as 8-bit luminance (MATLAB Y of a colour file, or the gray image), degraded exactly as they did,
handed to a *method* — any callable from the (H, W) float64 network input in [0, 1] units to the
restored (H, W) image — and scored with the task's rounding and shave. Scores are averaged over
the images of a set, as in the papers.

Before any image is restored, every image of every set is read and checked against every level,
so that a bad file or a too-small image stops the run at once with one line naming the file,
instead of after an hour of inference (a benchmark average over part of a set is not the
published number, so bad images are never skipped silently).

Denoising noise is reproducible: the generator of each image is seeded from the run's seed and
the image's file name, so a table is the same run to run and does not depend on which other
files a folder holds; every σ uses the same standard-normal field, scaled.

This module shows no progress bar (library code); the caller may pass `on_image`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from memnet.catalog.locate import resolve_set
from memnet.errors import MemNetError
from memnet.evaluation.report import EvalReport, ImageScore, SetScore
from memnet.fsutil import atomic_path
from memnet.imaging.color import round_to_uint8
from memnet.imaging.noise import noise_generator
from memnet.imaging.png import write_png
from memnet.imaging.reading import read_luminance
from memnet.imaging.writing import PNG_COMPRESS_LEVEL
from memnet.tasks import Task, baseline_methods, check_kind, make_task, task_class

__all__ = [
    "BenchmarkSet",
    "Method",
    "baseline",
    "check_sizes",
    "evaluate",
    "load_set",
    "make_tasks",
    "noise_generator",
]

Method = Callable[[NDArray[np.float64]], NDArray[np.floating]]


def baseline(name: str, kind: str) -> Method:
    """The no-network method `name` ('bicubic' for SR, 'identity' for denoise/JPEG).

    A baseline (`Task.baseline`) is the degraded network input itself. For SR that input is the
    bicubic-upsampled image, hence the name.
    """
    known = baseline_methods()
    if name not in known:
        raise MemNetError(f"unknown method {name!r}; baselines: {', '.join(known)}")
    right = task_class(kind).baseline
    if name != right:
        raise MemNetError(f"method {name!r} does not apply to task {kind!r}; use {right!r}")

    def degraded_input(image: NDArray[np.float64]) -> NDArray[np.float64]:
        return image

    return degraded_input


def make_tasks(kind: str, levels: Sequence[float]) -> list[Task]:
    """One task per level, in the given order, with duplicates removed."""
    check_kind(kind)
    if not levels:
        raise MemNetError("no levels given (scales, sigmas or qualities)")
    tasks: list[Task] = []
    for level in levels:
        try:
            task = make_task(kind, level)
        except ValueError as error:
            raise MemNetError(str(error)) from None
        if task not in tasks:
            tasks.append(task)
    return tasks


# --------------------------------------------------------------------------------------------
# sets
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # images are arrays: compare sets by identity
class BenchmarkSet:
    """A named set of clean images, read as 8-bit luminance (MATLAB Y or gray)."""

    name: str
    folder: Path
    names: tuple[str, ...]
    images: tuple[NDArray[np.uint8], ...] = field(repr=False)

    def __len__(self) -> int:
        return len(self.images)


def load_set(
    name_or_path: str,
    data_root: str | os.PathLike[str] | None = None,
    *,
    kind: str = "sr",
    max_images: int | None = None,
) -> BenchmarkSet:
    """Read every image of a set as task `kind` sees it; one error line lists unreadable files.

    Colour images become one channel by the task's rule (`Task.one_channel`): MATLAB's Y for
    SR and JPEG, MATLAB's rgb2gray for denoising. `max_images` reads only the first N images
    (in the set's sorted order).
    """
    from_rgb = task_class(kind).one_channel
    name, paths = resolve_set(name_or_path, data_root)
    if max_images is not None:
        paths = paths[:max_images]
    images: list[NDArray[np.uint8]] = []
    problems: list[str] = []
    for path in paths:
        try:
            images.append(read_luminance(path, from_rgb=from_rgb))
        except MemNetError as error:
            # read_luminance's messages start with the path; keep only the reason.
            reason = str(error).removeprefix(f"{path}: ")
            problems.append(f"{path.name} ({reason})")
    if problems:
        shown = "; ".join(problems[:3]) + (
            f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        )
        raise MemNetError(
            f"set {name!r} ({paths[0].parent}): {len(problems)} of {len(paths)} images cannot be "
            f"read: {shown}"
        )
    return BenchmarkSet(name, paths[0].parent, tuple(p.name for p in paths), tuple(images))


def check_sizes(sets: Sequence[BenchmarkSet], tasks: Sequence[Task]) -> None:
    """One error line naming the first image too small for a task (before any restoring)."""
    for bench in sets:
        for image_name, image in zip(bench.names, bench.images, strict=True):
            for task in tasks:
                try:
                    task.ground_truth(image)
                except ValueError as error:
                    raise MemNetError(f"{bench.folder / image_name}: {error}") from None


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------


def _save_restored(path: Path, restored: NDArray[np.float64]) -> None:
    pixels = round_to_uint8(restored * 255.0)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as out:
            write_png(out, pixels, level=PNG_COMPRESS_LEVEL)
    except OSError as error:
        raise MemNetError(f"{path}: cannot write image ({error.strerror or error})") from None


def evaluate(
    kind: str,
    levels: Sequence[float],
    sets: Sequence[BenchmarkSet],
    method: Method,
    *,
    method_name: str,
    seed: int = 0,
    save_dir: Path | None = None,
    on_image: Callable[[ImageScore], None] | None = None,
) -> EvalReport:
    """Score `method` on every image of `sets` at every level of task `kind`.

    `save_dir` receives the restored images as 8-bit PNG, SAVE_DIR/SET/LABEL/NAME.png;
    `on_image` is called after each image (for progress display).
    """
    tasks = make_tasks(kind, levels)
    names = [bench.name for bench in sets]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise MemNetError(f"two sets have the same name {duplicates[0]!r}; rename a folder")
    check_sizes(sets, tasks)

    started = time.perf_counter()
    images: list[ImageScore] = []
    summary: list[SetScore] = []
    for bench in sets:
        for task in tasks:
            rows: list[ImageScore] = []
            for index in range(len(bench)):
                row = _evaluate_image(task, bench, index, method, seed, save_dir)
                rows.append(row)
                if on_image is not None:
                    on_image(row)
            images.extend(rows)
            summary.append(
                SetScore(
                    set=bench.name,
                    level=task.level,
                    label=task.label,
                    images=len(rows),
                    psnr=float(np.mean([r.psnr for r in rows])),
                    ssim=float(np.mean([r.ssim for r in rows])),
                )
            )
    return EvalReport(
        task=kind,
        method=method_name,
        levels=[t.level for t in tasks],
        sets=list(sets),
        protocol=type(tasks[0]).protocol,
        scoring=type(tasks[0]).scoring,
        seed=seed,
        images=images,
        summary=summary,
        seconds=time.perf_counter() - started,
    )


def _evaluate_image(
    task: Task,
    bench: BenchmarkSet,
    index: int,
    method: Method,
    seed: int,
    save_dir: Path | None,
) -> ImageScore:
    name = bench.names[index]
    truth = task.ground_truth(bench.images[index])
    network_input = task.degrade(truth, noise_generator(seed, name))
    tick = time.perf_counter()
    restored = np.asarray(method(network_input), dtype=np.float64)
    seconds = time.perf_counter() - tick
    where = bench.folder / name
    if restored.shape != network_input.shape:
        raise MemNetError(
            f"{where}: the method returned a {_size(restored.shape)} image for a "
            f"{_size(network_input.shape)} input ({task.describe()})"
        )
    if not np.all(np.isfinite(restored)):
        raise MemNetError(
            f"{where}: the method returned NaN or infinite pixels ({task.describe()})"
        )
    score = task.measure(restored, truth)
    if save_dir is not None:
        _save_restored(save_dir / bench.name / task.label / f"{Path(name).stem}.png", restored)
    return ImageScore(
        set=bench.name,
        level=task.level,
        label=task.label,
        image=name,
        height=int(truth.shape[0]),
        width=int(truth.shape[1]),
        psnr=score.psnr,
        ssim=score.ssim,
        seconds=seconds,
    )


def _size(shape: tuple[int, ...]) -> str:
    return "x".join(str(v) for v in shape)
