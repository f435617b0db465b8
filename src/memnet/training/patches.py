"""Training data: clean images loaded once, degraded copies made once, random aligned patches.

Training flow (design.md, flow 3): clean one-channel images (the Y channel, or gray) are loaded
once; SR inputs (per scale) and JPEG inputs (per quality) are made once per whole image by the
exact test-protocol pipeline of `memnet.tasks` and cached in memory; Gaussian noise is drawn
fresh for every patch. A batch is a set of aligned random patches under one of the 8
flips/rotations; for JPEG the flip/rotation is applied to the clean image before it is
compressed (each of the 8 views compressed whole once), because the codec does not commute
with it. Which patches a batch holds is drawn from the batch's own generator
(`memnet.training.batches`).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import NDArray

from memnet.catalog.locate import resolve_set
from memnet.errors import MemNetError
from memnet.imaging.reading import read_luminance
from memnet.tasks import Deblock, SuperResolution, make_task, task_class
from memnet.training.recipe import SYNTHETIC, DataSpec, SyntheticSpec, TaskSpec
from memnet.training.synthetic import synthetic_images

__all__ = [
    "CompressedViews",
    "DenoisePatches",
    "PairedPatches",
    "PatchSource",
    "build_training_set",
    "compressed_views",
    "load_clean_images",
]

Uint8Image = NDArray[np.uint8]


# --------------------------------------------------------------------------------------------
# clean images
# --------------------------------------------------------------------------------------------


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
        if not truths:
            raise MemNetError(f"no training image is at least {patch_size}x{patch_size} px")
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

    def _truth_patches(
        self,
        which: NDArray[np.intp],
        tops: NDArray[np.intp],
        lefts: NDArray[np.intp],
        ops: NDArray[np.int64],
    ) -> NDArray[np.float32]:
        """The drawn windows of the ground truth, flipped/rotated, float32 in [0, 1] units."""
        y = self._cut(self.truths, which, tops, lefts, ops)
        y /= np.float32(255)
        return y

    def _cut(
        self,
        images: Sequence[NDArray[np.generic]],
        which: NDArray[np.intp],
        tops: NDArray[np.intp],
        lefts: NDArray[np.intp],
        ops: NDArray[np.int64],
    ) -> NDArray[np.float32]:
        """The drawn windows of `images`, flipped/rotated, as float32 (values unscaled)."""
        p = self.patch_size
        out = np.empty((len(which), p, p), dtype=np.float32)
        for i, (k, top, left, op) in enumerate(zip(which, tops, lefts, ops, strict=True)):
            out[i] = _dihedral(images[k][top : top + p, left : left + p], int(op))
        return out

    @abstractmethod
    def sample(
        self, rng: np.random.Generator, batch: int, augment: bool
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        """(inputs, targets), each (batch, P, P) float32."""


class PairedPatches(PatchSource):
    """Patches of precomputed degraded images (SR per scale, float32 in [0, 1] units) and their
    truth, flipped together."""

    def __init__(
        self, inputs: list[NDArray[np.float32]], truths: list[Uint8Image], patch_size: int
    ) -> None:
        super().__init__(truths, patch_size)
        self.inputs = inputs

    def sample(
        self, rng: np.random.Generator, batch: int, augment: bool
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        drawn = self._draw(rng, batch, augment)
        return self._cut(self.inputs, *drawn), self._truth_patches(*drawn)


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
        super().__init__(truths, patch_size)
        self.views = views

    def sample(
        self, rng: np.random.Generator, batch: int, augment: bool
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        p = self.patch_size
        which, tops, lefts, ops = self._draw(rng, batch, augment)
        x = np.empty((batch, p, p), dtype=np.float32)
        for i, (k, top, left, op) in enumerate(zip(which, tops, lefts, ops, strict=True)):
            height, width = self.truths[k].shape
            row, col = _window_under(int(op), int(top), int(left), height, width, p)
            x[i] = self.views[k][int(op)][row : row + p, col : col + p]
        x /= np.float32(255)
        return x, self._truth_patches(which, tops, lefts, ops)


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
        super().__init__(truths, patch_size)
        self.sigmas = np.asarray(sigmas, dtype=np.float32)
        self.sigma_range = sigma_range

    def sample(
        self, rng: np.random.Generator, batch: int, augment: bool
    ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
        p = self.patch_size
        y = self._truth_patches(*self._draw(rng, batch, augment))
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
    inputs: list[NDArray[np.float32]] = []
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
