"""Training and validation data: degraded images made once, random aligned patches, prefetching.

Training flow (design.md, flow 3): clean one-channel images (the Y channel, or gray) are loaded
once; SR inputs (per scale) and JPEG inputs (per quality) are made once per whole image by the
exact test-protocol pipeline of `memnet.tasks` and cached in memory; Gaussian noise is drawn
fresh for every patch. A batch is a set of aligned random patches under one of the 8
flips/rotations; for JPEG the flip/rotation is applied to the clean image before it is
compressed (each of the 8 views compressed whole once), because the codec does not commute
with it. Batch `i` of process `rank` depends only on (seed, rank, i), so a run resumes
exactly from a batch counter, and background threads can prepare batches ahead of the step.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray

from memnet.catalog.locate import resolve_set
from memnet.errors import MemNetError
from memnet.imaging.files import read_luminance
from memnet.tasks import Deblock, SuperResolution, Task, make_task, task_class
from memnet.training.recipe import SYNTHETIC, DataSpec, SyntheticSpec, TaskSpec, ValidationSpec

__all__ = [
    "BatchStream",
    "CompressedViews",
    "DenoisePatches",
    "PairedPatches",
    "PatchSource",
    "ValidationItem",
    "batch_generator",
    "build_training_set",
    "build_validation",
    "load_clean_images",
    "noise_generator",
    "synthetic_images",
]

Uint8Image = NDArray[np.uint8]


# --------------------------------------------------------------------------------------------
# clean images
# --------------------------------------------------------------------------------------------


def _supersampled_picture(rng: np.random.Generator, size: int) -> NDArray[np.float64]:
    """A picture with flat regions, gradients, sharp edges, lines and fine gratings."""
    factor = 2  # draw at twice the size, then box-average: edges get natural anti-aliasing
    n = size * factor
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64) / n
    image = rng.uniform(60, 190) + rng.uniform(-60, 60) * xx + rng.uniform(-60, 60) * yy
    for _ in range(int(rng.integers(5, 12))):
        cy, cx = rng.uniform(0, 1, 2)
        ry, rx = rng.uniform(0.05, 0.35, 2)
        value = rng.uniform(0, 255)
        if rng.random() < 0.5:
            mask = (np.abs(yy - cy) < ry) & (np.abs(xx - cx) < rx)
        else:
            mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1
        image[mask] = value
    for _ in range(int(rng.integers(1, 4))):
        # a grating inside a disc: fine periodic detail that SR can learn to restore
        cy, cx, radius = *rng.uniform(0.2, 0.8, 2), rng.uniform(0.1, 0.3)
        period = rng.uniform(0.04, 0.12)
        angle = rng.uniform(0, math.pi)
        wave = np.sin(2 * math.pi * (xx * math.cos(angle) + yy * math.sin(angle)) / period)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
        image[disc] = 128 + rng.uniform(40, 110) * wave[disc]
    for _ in range(int(rng.integers(2, 6))):
        # thin straight lines
        angle = rng.uniform(0, math.pi)
        offset = rng.uniform(-0.5, 0.5)
        distance = np.abs((xx - 0.5) * math.sin(angle) - (yy - 0.5) * math.cos(angle) - offset)
        image[distance < rng.uniform(0.002, 0.01)] = rng.uniform(0, 255)
    return image.reshape(size, factor, size, factor).mean(axis=(1, 3))


def synthetic_images(spec: SyntheticSpec, *, count: int | None = None) -> list[Uint8Image]:
    """Gray pictures generated in code (deterministic in `spec.seed`): no files needed."""
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 7919]))
    images = []
    for _ in range(spec.images if count is None else count):
        picture = _supersampled_picture(rng, spec.size)
        images.append(np.clip(np.floor(picture + 0.5), 0, 255).astype(np.uint8))
    return images


def load_clean_images(
    sources: Sequence[str],
    *,
    data_root: str | os.PathLike[str] | None,
    synthetic: SyntheticSpec,
    max_images: int | None = None,
    kind: str = "sr",
) -> list[tuple[str, Uint8Image]]:
    """(name, 8-bit one-channel image) of every image of every source, in a fixed order.

    Colour files become one channel by task `kind`'s rule (`Task.one_channel`).
    """
    from_rgb = task_class(kind).one_channel
    images: list[tuple[str, Uint8Image]] = []
    for source in sources:
        if source == SYNTHETIC:
            images += [(f"synthetic/{i}", im) for i, im in enumerate(synthetic_images(synthetic))]
            continue
        name, paths = resolve_set(source, data_root)
        images += [
            (f"{name}/{path.name}", read_luminance(path, from_rgb=from_rgb)) for path in paths
        ]
    if max_images is not None:
        images = images[:max_images]
    return images


# --------------------------------------------------------------------------------------------
# patch sources
# --------------------------------------------------------------------------------------------


def _dihedral(patch: NDArray[np.generic], op: int) -> NDArray[np.generic]:
    """One of the 8 flips/rotations of a square patch (a view, no copy)."""
    if op & 4:
        patch = patch[:, ::-1]
    return np.rot90(patch, op & 3)


def _window_under(
    op: int, top: int, left: int, height: int, width: int, size: int
) -> tuple[int, int]:
    """Where a size² window of an (height, width) image lies in `_dihedral(image, op)`.

    So that `_dihedral(image, op)[t:t+size, l:l+size]` equals `_dihedral(window, op)`.
    """
    if op & 4:  # fliplr: column l .. l+size-1 goes to width-1-l .. width-size-l
        left = width - left - size
    for _ in range(op & 3):  # rot90 (counter-clockwise): out[i, j] = in[j, width-1-i]
        top, left = width - left - size, top
        height, width = width, height
    return top, left


class PatchSource(ABC):
    """Draws aligned (network input, ground truth) patch batches, float32 in [0, 1] units."""

    def __init__(self, truths: list[Uint8Image], patch_size: int) -> None:
        self.patch_size = patch_size
        self.truths = truths
        # Pick images in proportion to their patch positions, as a dense patch grid would.
        positions = np.array(
            [(t.shape[0] - patch_size + 1) * (t.shape[1] - patch_size + 1) for t in truths],
            dtype=np.float64,
        )
        self._cumulative = np.cumsum(positions / positions.sum())
        self._cumulative[-1] = 1.0
        self._heights = np.array([t.shape[0] - patch_size + 1 for t in truths], dtype=np.intp)
        self._widths = np.array([t.shape[1] - patch_size + 1 for t in truths], dtype=np.intp)

    def __len__(self) -> int:
        return len(self.truths)

    def _locate(
        self, rng: np.random.Generator, batch: int
    ) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp]]:
        which = np.searchsorted(self._cumulative, rng.random(batch), side="right")
        which = np.minimum(which, len(self.truths) - 1)
        tops = (rng.random(batch) * self._heights[which]).astype(np.intp)
        lefts = (rng.random(batch) * self._widths[which]).astype(np.intp)
        return which, tops, lefts

    def _draw(
        self, rng: np.random.Generator, batch: int, augment: bool
    ) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp], NDArray[np.int64]]:
        """A batch's images, windows and flips/rotations, drawn in this order from `rng`."""
        which, tops, lefts = self._locate(rng, batch)
        ops = rng.integers(0, 8, batch) if augment else np.zeros(batch, dtype=np.int64)
        return which, tops, lefts, ops

    @abstractmethod
    def sample(
        self, rng: np.random.Generator, batch: int, augment: bool
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """(inputs, targets), each (batch, P, P) float32."""


class PairedPatches(PatchSource):
    """Patches of precomputed degraded images (SR per scale) and their truth, flipped together.

    `inputs[k]` is float32 in [0, 1] or uint8 (exact for decoded JPEG, 4× less memory).
    """

    def __init__(
        self, inputs: list[NDArray[np.generic]], truths: list[Uint8Image], patch_size: int
    ) -> None:
        if not inputs:
            raise MemNetError(f"no training image is at least {patch_size}x{patch_size} px")
        super().__init__(truths, patch_size)
        self.inputs = inputs
        self._uint8_inputs = inputs[0].dtype == np.uint8

    def sample(
        self, rng: np.random.Generator, batch: int, augment: bool
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        p = self.patch_size
        which, tops, lefts, ops = self._draw(rng, batch, augment)
        x = np.empty((batch, p, p), dtype=np.float32)
        y = np.empty((batch, p, p), dtype=np.float32)
        for i, (k, top, left, op) in enumerate(zip(which, tops, lefts, ops, strict=True)):
            window = (slice(top, top + p), slice(left, left + p))
            x[i] = _dihedral(self.inputs[k][window], int(op))
            y[i] = _dihedral(self.truths[k][window], int(op))
        if self._uint8_inputs:
            x /= np.float32(255)
        y /= np.float32(255)
        return x, y


class CompressedViews(PatchSource):
    """JPEG patches cut from whole images compressed *after* their flip/rotation.

    JPEG does not commute with a transpose (its quantisation tables are not symmetric), so the
    8 flips/rotations are applied to the clean image and each view is compressed whole (the
    8×8 grid stays aligned with the image, as at test time): `views[k][op]` is the decoded
    JPEG of `_dihedral(truths[k], op)`, uint8. Patch positions and flips are drawn exactly as
    `PairedPatches` draws them; only the input a patch is cut from differs.
    """

    def __init__(
        self, views: list[list[Uint8Image]], truths: list[Uint8Image], patch_size: int
    ) -> None:
        if not views:
            raise MemNetError(f"no training image is at least {patch_size}x{patch_size} px")
        super().__init__(truths, patch_size)
        self.views = views

    def sample(
        self, rng: np.random.Generator, batch: int, augment: bool
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        p = self.patch_size
        which, tops, lefts, ops = self._draw(rng, batch, augment)
        x = np.empty((batch, p, p), dtype=np.float32)
        y = np.empty((batch, p, p), dtype=np.float32)
        for i, (k, top, left, op) in enumerate(zip(which, tops, lefts, ops, strict=True)):
            truth = self.truths[k]
            y[i] = _dihedral(truth[top : top + p, left : left + p], int(op))
            height, width = truth.shape
            row, col = _window_under(int(op), int(top), int(left), height, width, p)
            x[i] = self.views[k][int(op)][row : row + p, col : col + p]
        x /= np.float32(255)
        y /= np.float32(255)
        return x, y


def compressed_views(task: Deblock, truth: Uint8Image, *, augment: bool) -> list[Uint8Image]:
    """The task's JPEG of each flip/rotation of `truth` (only the upright one without augment)."""
    views = []
    for op in range(8) if augment else range(1):
        degraded = task.degrade(
            np.ascontiguousarray(_dihedral(truth, op)), np.random.default_rng(0)
        )
        views.append(np.rint(degraded * 255.0).astype(np.uint8))  # decoded JPEG is exactly k/255
    return views


class DenoisePatches(PatchSource):
    """Clean patches plus fresh Gaussian noise per patch, σ from a set of levels or a range."""

    def __init__(
        self,
        truths: list[Uint8Image],
        patch_size: int,
        *,
        sigmas: Sequence[float] = (),
        sigma_range: tuple[float, float] | None = None,
    ) -> None:
        if not truths:
            raise MemNetError(f"no training image is at least {patch_size}x{patch_size} px")
        super().__init__(truths, patch_size)
        self.sigmas = np.asarray(sigmas, dtype=np.float32)
        self.sigma_range = sigma_range

    def sample(
        self, rng: np.random.Generator, batch: int, augment: bool
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        p = self.patch_size
        which, tops, lefts, ops = self._draw(rng, batch, augment)
        y = np.empty((batch, p, p), dtype=np.float32)
        for i, (k, top, left, op) in enumerate(zip(which, tops, lefts, ops, strict=True)):
            y[i] = _dihedral(self.truths[k][top : top + p, left : left + p], int(op))
        y /= np.float32(255)
        if self.sigma_range is not None:
            low, high = self.sigma_range
            sigma = rng.uniform(low, high, batch).astype(np.float32)
        else:
            sigma = self.sigmas[rng.integers(0, len(self.sigmas), batch)]
        noise = rng.standard_normal((batch, p, p), dtype=np.float32)
        noise *= (sigma / np.float32(255))[:, None, None]
        return y + noise, y


def build_training_set(
    task: TaskSpec, data: DataSpec, *, data_root: str | os.PathLike[str] | None = None
) -> PatchSource:
    """Load the recipe's images and make its degraded copies once (SR per scale, JPEG per quality)."""
    root = data_root if data_root is not None else data.data_root
    clean = load_clean_images(
        data.sources,
        data_root=root,
        synthetic=data.synthetic,
        max_images=data.max_images,
        kind=task.kind,
    )
    p = data.patch_size
    if task.kind == "denoise":
        truths = [im for _, im in clean if min(im.shape) >= p]
        return DenoisePatches(truths, p, sigmas=task.levels, sigma_range=task.range)
    inputs: list[NDArray[np.generic]] = []
    paired_truths: list[Uint8Image] = []
    jobs: list[tuple[Deblock, Uint8Image]] = []
    for level in task.training_levels():
        level_task = make_task(task.kind, level)
        for _, image in clean:
            try:
                truth = level_task.ground_truth(image)
            except ValueError:
                continue  # too small for this scale
            if min(truth.shape) < p:
                continue
            if isinstance(level_task, Deblock):
                jobs.append((level_task, truth))  # compressed below, on several threads
            else:
                assert isinstance(level_task, SuperResolution)
                # MATLAB bicubic of a modcropped image commutes with flips and transposes (one
                # symmetric kernel on both axes, all in double, nothing quantised in between),
                # so SR patches are flipped after degradation
                degraded = level_task.degrade(truth, np.random.default_rng(0))
                inputs.append(degraded.astype(np.float32))
            paired_truths.append(truth)
    if task.kind == "jpeg":
        # The codec does not commute with flips/rotations: every view is compressed whole.
        # libjpeg runs outside the GIL, so threads share the (8 × levels × images) encodes.
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            views = list(pool.map(lambda job: compressed_views(*job, augment=data.augment), jobs))
        return CompressedViews(views, paired_truths, p)
    return PairedPatches(inputs, paired_truths, p)


def batch_generator(seed: int, rank: int, index: int) -> np.random.Generator:
    """The random stream of batch `index` of process `rank`: independent of every other batch."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, rank, index])))


# --------------------------------------------------------------------------------------------
# prefetching
# --------------------------------------------------------------------------------------------

_STOP_POLL_S = 0.1


class BatchStream:
    """Batches start, start+1, ... prepared by background threads, handed out in order.

    Each thread makes every `workers`-th batch; the work is patch copies out of in-memory
    images, so one thread keeps up with the step and leaves the cores to the network.
    """

    def __init__(
        self,
        source: PatchSource,
        *,
        batch_size: int,
        augment: bool,
        seed: int,
        rank: int,
        start: int,
        workers: int = 1,
        prefetch: int = 4,
        pin_memory: bool = False,
    ) -> None:
        self.source = source
        self.batch_size = batch_size
        self.augment = augment
        self.seed = seed
        self.rank = rank
        self.position = start  # index of the next batch handed out
        self.pin_memory = pin_memory
        self._made = 0
        self._making_seconds = 0.0
        self._start = start
        self._stop = threading.Event()
        per_worker = max(1, math.ceil(prefetch / workers))
        self._queues: list[queue.Queue[object]] = [
            queue.Queue(maxsize=per_worker) for _ in range(workers)
        ]
        self._threads = [
            threading.Thread(
                target=self._work, args=(k, workers), name=f"memnet-batches-{k}", daemon=True
            )
            for k in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def make(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch `index` as (inputs, targets) tensors of shape (B, 1, P, P)."""
        started = time.perf_counter()
        rng = batch_generator(self.seed, self.rank, index)
        x, y = self.source.sample(rng, self.batch_size, self.augment)
        inputs, targets = torch.from_numpy(x)[:, None], torch.from_numpy(y)[:, None]
        if self.pin_memory:
            inputs, targets = inputs.pin_memory(), targets.pin_memory()
        self._making_seconds += time.perf_counter() - started  # (a statistic: races are harmless)
        self._made += 1
        return inputs, targets

    @property
    def batch_ms(self) -> float:
        """Average time a background thread spends making one batch, in milliseconds."""
        return 1000 * self._making_seconds / max(1, self._made)

    def _work(self, k: int, workers: int) -> None:
        index = self._start + k
        out = self._queues[k]
        while not self._stop.is_set():
            try:
                item: object = self.make(index)
            except BaseException as error:  # handed to the consumer, which re-raises it
                item = error
            while not self._stop.is_set():
                try:
                    out.put(item, timeout=_STOP_POLL_S)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return
            index += workers

    def next(self) -> tuple[torch.Tensor, torch.Tensor, float]:
        """The next batch and the seconds spent waiting for it."""
        started = time.perf_counter()
        source = self._queues[(self.position - self._start) % len(self._queues)]
        item = source.get()
        waited = time.perf_counter() - started
        if isinstance(item, BaseException):
            self.close()
            raise item
        self.position += 1
        assert isinstance(item, tuple)
        return item[0], item[1], waited

    def close(self) -> None:
        """Stop the threads (they exit within a poll interval)."""
        self._stop.set()
        for q in self._queues:
            while True:
                try:
                    q.get_nowait()
                except queue.Empty:
                    break
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=5)

    def __enter__(self) -> BatchStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


def noise_generator(seed: int, image_name: str) -> np.random.Generator:
    """The noise stream of one validation image, seeded by (seed, file name).

    The same convention as `memnet eval`, so validation scores equal the evaluation's.
    """
    return np.random.default_rng([int(seed), zlib.crc32(image_name.encode("utf-8"))])


@dataclass
class ValidationItem:
    """One (set, level): the task and its (network input, ground truth) pairs."""

    set_name: str
    task: Task
    pairs: list[tuple[NDArray[np.float64], Uint8Image]]

    @property
    def label(self) -> str:
        return f"{self.set_name}/{self.task.label}"


def build_validation(
    spec: ValidationSpec,
    kind: str,
    *,
    data_root: str | os.PathLike[str] | None,
    synthetic: SyntheticSpec,
) -> list[ValidationItem]:
    """Degrade each validation set once with the exact test protocol (noise from `spec.seed`)."""
    items = []
    for entry in spec.sets:
        if entry.set == SYNTHETIC:
            # different content from the training pictures: another seed
            held_out = synthetic.model_copy(update={"seed": synthetic.seed + 1_000_003})
            count = entry.max_images or 4
            images = [
                (f"synthetic/{i}", im)
                for i, im in enumerate(synthetic_images(held_out, count=count))
            ]
            set_name = SYNTHETIC
        else:
            set_name, paths = resolve_set(entry.set, data_root)
            paths = paths[: entry.max_images] if entry.max_images else paths
            from_rgb = task_class(kind).one_channel
            images = [(p.name, read_luminance(p, from_rgb=from_rgb)) for p in paths]
        for level in entry.levels:
            task = make_task(kind, level)
            pairs = []
            for name, image in images:
                try:
                    truth = task.ground_truth(image)
                except ValueError as error:
                    raise MemNetError(f"validation image {set_name}/{name}: {error}") from None
                pairs.append((task.degrade(truth, noise_generator(spec.seed, name)), truth))
            items.append(ValidationItem(set_name, task, pairs))
    return items
