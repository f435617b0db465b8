"""A task is a degradation plus its test protocol: SR(scale), Denoise(sigma), Deblock(quality).

Each task knows
- how to turn a clean one-channel image into the network's input (`degrade`), exactly as the
  authors' MATLAB test scripts did;
- how a user's degraded image becomes the network's input (`prepare_input`: bicubic for SR);
- how restored images are scored (`measure`: rounding, border shave, PSNR/SSIM on 0..255).

Images are (H, W) arrays. Ground truth is uint8 (Y of YCbCr, or gray); network inputs and
outputs are float64 in [0, 1] units.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
from numpy.typing import NDArray

from memnet.imaging.color import rgb2gray, rgb2ycbcr, round_to_uint8
from memnet.imaging.jpeg import jpeg_roundtrip
from memnet.imaging.metrics import SSIM_WINDOW, psnr, shave, ssim
from memnet.imaging.noise import add_gaussian_noise
from memnet.imaging.resize import imresize, imresize_rows, modcrop

__all__ = [
    "TASK_CLASSES",
    "TASK_KINDS",
    "Deblock",
    "Denoise",
    "Score",
    "SuperResolution",
    "Task",
    "make_task",
    "task_class",
]

TaskKind = Literal["sr", "denoise", "jpeg"]
TASK_KINDS: tuple[TaskKind, ...] = ("sr", "denoise", "jpeg")


@dataclass(frozen=True)
class Score:
    psnr: float
    ssim: float


def _as_uint8_image(image: NDArray[np.generic]) -> NDArray[np.uint8]:
    if image.ndim != 2:
        raise ValueError(f"tasks work on one channel (H, W), got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"ground truth must be uint8, got {image.dtype}")
    return image.astype(np.uint8, copy=False)


def _check_scorable(
    scored: tuple[int, ...], border: int, setting: str, original: tuple[int, ...]
) -> None:
    # The scored region (after the shave) must hold at least one SSIM window.
    needed = SSIM_WINDOW + 2 * border
    if min(scored[0], scored[1]) < needed:
        raise ValueError(
            f"image of size {original[0]}x{original[1]} is too small for {setting}: "
            f"the protocol needs at least {needed}x{needed} px"
        )


class Task(ABC):
    """A degradation and the protocol by which restorations of it are measured."""

    kind: ClassVar[TaskKind]
    #: What is scored and how, in words (for reports), in full and in short.
    protocol: ClassVar[str]
    scoring: ClassVar[str]

    @classmethod
    @abstractmethod
    def check_level(cls, level: float) -> None:
        """ValueError unless `level` is a valid setting (scale, σ or quality) of this task."""

    @classmethod
    def check_range(cls, low: float, high: float) -> None:
        """ValueError unless [low, high] is a valid blind range of this task."""
        raise ValueError(f"{cls.kind} has no blind range: give fixed 'levels'")

    @staticmethod
    def one_channel(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """The 8-bit image the protocol works on, from an 8-bit RGB one: MATLAB's Y of YCbCr."""
        return np.ascontiguousarray(rgb2ycbcr(rgb)[..., 0])

    @property
    @abstractmethod
    def label(self) -> str:
        """Short name of the setting, e.g. 'x2', 'sigma50', 'q10'."""

    @property
    def border(self) -> int:
        """Pixels shaved from every side before scoring."""
        return 0

    def ground_truth(self, clean: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """The part of a clean image the protocol scores against (SR crops to the scale)."""
        image = _as_uint8_image(clean)
        _check_scorable(image.shape, self.border, self.describe(), image.shape)
        return image

    def describe(self) -> str:
        """The setting in words, e.g. '×2 SR', 'σ=50 denoising', 'q=10 JPEG'."""
        return self.label

    @abstractmethod
    def degrade(self, clean: NDArray[np.uint8], rng: np.random.Generator) -> NDArray[np.float64]:
        """Network input made from ground truth (as returned by `ground_truth`)."""

    def prepare_input(self, degraded: NDArray[np.floating]) -> NDArray[np.float64]:
        """Network input made from a user's degraded image (identity but for SR)."""
        return np.asarray(degraded, dtype=np.float64)

    def prepare_rows(
        self, degraded: NDArray[np.floating], start: int, stop: int
    ) -> NDArray[np.float64]:
        """Rows start .. stop of `prepare_input(degraded)` for an (H, W) image, bit for bit."""
        return np.asarray(degraded[start:stop], dtype=np.float64)

    def output_shape(self, height: int, width: int) -> tuple[int, int]:
        """Size of the restored image for a degraded input of this size."""
        return height, width

    def measure(self, restored: NDArray[np.floating], truth: NDArray[np.uint8]) -> Score:
        """PSNR/SSIM of a restoration against ground truth on 0..255, unrounded, no shave."""
        output = np.asarray(restored, dtype=np.float64) * 255.0
        reference = _as_uint8_image(truth).astype(np.float64)
        output, reference = shave(output, self.border), shave(reference, self.border)
        return Score(psnr(output, reference), ssim(output, reference))


@dataclass(frozen=True)
class SuperResolution(Task):
    """×scale super-resolution: MATLAB bicubic down then up, never quantised in between."""

    scale: float
    kind: ClassVar[TaskKind] = "sr"
    protocol: ClassVar[str] = (
        "Y channel (MATLAB rgb2ycbcr); ground truth cropped to a multiple of the scale; input = "
        "MATLAB bicubic down then up in double; output rounded to 8 bits; shave = scale px"
    )
    scoring: ClassVar[str] = "Y channel, output rounded to 8 bits, shave = scale"

    def __post_init__(self) -> None:
        self.check_level(self.scale)

    @classmethod
    def check_level(cls, level: float) -> None:
        if not math.isfinite(level) or level <= 1:
            raise ValueError(f"SR scale must be a number greater than 1, got {level:g}")

    @classmethod
    def check_range(cls, low: float, high: float) -> None:
        raise ValueError("sr trains on fixed scales: use 'levels', e.g. [2, 3, 4]")

    @property
    def label(self) -> str:
        return f"x{self.scale:g}"

    def describe(self) -> str:
        return f"×{self.scale:g} SR"

    @property
    def border(self) -> int:
        return math.ceil(self.scale)

    def ground_truth(self, clean: NDArray[np.uint8]) -> NDArray[np.uint8]:
        image = _as_uint8_image(clean)
        modulus = int(self.scale) if float(self.scale).is_integer() else 1
        cropped = modcrop(image, modulus)
        _check_scorable(cropped.shape, self.border, self.describe(), image.shape)
        return cropped

    def downscale(self, clean: NDArray[np.generic]) -> NDArray[np.float64]:
        """The low-resolution image, float64, in the units of its input."""
        return imresize(clean, 1.0 / self.scale)

    def degrade(self, clean: NDArray[np.uint8], rng: np.random.Generator) -> NDArray[np.float64]:
        truth = self.ground_truth(clean).astype(np.float64) / 255.0
        low = self.downscale(truth)
        # Back up by the scale itself, then crop to the ground truth's size. For integer scales
        # the crop removes nothing (the truth is cropped to a multiple of the scale). For other
        # scales ceil(ceil(h / s) · s) may exceed h; resizing to exactly h instead would use the
        # ratio h / ceil(h / s) ≠ s and shift the grid by up to half a pixel at the far edge.
        height, width = truth.shape
        return imresize(low, self.scale)[:height, :width]

    def prepare_input(self, degraded: NDArray[np.floating]) -> NDArray[np.float64]:
        return imresize(degraded, self.scale)

    def prepare_rows(
        self, degraded: NDArray[np.floating], start: int, stop: int
    ) -> NDArray[np.float64]:
        return imresize_rows(degraded, self.scale, start, stop)

    def output_shape(self, height: int, width: int) -> tuple[int, int]:
        return math.ceil(height * self.scale), math.ceil(width * self.scale)

    def measure(self, restored: NDArray[np.floating], truth: NDArray[np.uint8]) -> Score:
        # The SR scripts score uint8 images: round the output first, then shave.
        output = round_to_uint8(np.asarray(restored, dtype=np.float64) * 255.0).astype(np.float64)
        reference = _as_uint8_image(truth).astype(np.float64)
        output, reference = shave(output, self.border), shave(reference, self.border)
        return Score(psnr(output, reference), ssim(output, reference))


@dataclass(frozen=True)
class Denoise(Task):
    """Additive white Gaussian noise of standard deviation `sigma` (on 0..255), unclipped."""

    sigma: float
    kind: ClassVar[TaskKind] = "denoise"
    protocol: ClassVar[str] = (
        "gray (MATLAB rgb2gray of a colour image); noisy = clean + sigma/255 * N(0,1), "
        "neither clipped nor quantised; output unrounded; no shave"
    )
    scoring: ClassVar[str] = "gray, unclipped noise, output unrounded, no shave"

    def __post_init__(self) -> None:
        self.check_level(self.sigma)

    @classmethod
    def check_level(cls, level: float) -> None:
        if not math.isfinite(level) or level <= 0:
            raise ValueError(f"noise sigma must be a positive number (of 255), got {level:g}")

    @classmethod
    def check_range(cls, low: float, high: float) -> None:
        # a blind range may start at 0 (some patches then stay clean); a fixed level may not
        if not (math.isfinite(low) and math.isfinite(high)) or low < 0:
            raise ValueError(f"a noise sigma range must lie in [0, inf), got [{low:g}, {high:g}]")
        _check_order(low, high)

    @staticmethod
    def one_channel(rgb: NDArray[np.uint8]) -> NDArray[np.uint8]:
        """The authors' denoising script makes a colour image gray by MATLAB's rgb2gray."""
        return np.asarray(rgb2gray(rgb), dtype=np.uint8)

    @property
    def label(self) -> str:
        return f"sigma{self.sigma:g}"

    def describe(self) -> str:
        return f"σ={self.sigma:g} denoising"

    def degrade(self, clean: NDArray[np.uint8], rng: np.random.Generator) -> NDArray[np.float64]:
        truth = self.ground_truth(clean).astype(np.float64) / 255.0
        return add_gaussian_noise(truth, self.sigma, rng)


@dataclass(frozen=True)
class Deblock(Task):
    """JPEG compression at IJG quality `quality`, decoded back (deblocking / artifact removal)."""

    quality: int
    kind: ClassVar[TaskKind] = "jpeg"
    protocol: ClassVar[str] = (
        "Y channel (MATLAB rgb2ycbcr); JPEG (libjpeg, IJG tables) at quality q of the 8-bit Y, "
        "decoded; output unrounded; no shave"
    )
    scoring: ClassVar[str] = "Y channel, output unrounded, no shave"

    def __post_init__(self) -> None:
        self.check_level(self.quality)

    @classmethod
    def check_level(cls, level: float) -> None:
        if (
            isinstance(level, bool)
            or not math.isfinite(level)
            or level != int(level)
            or not 1 <= level <= 100
        ):
            raise ValueError(f"JPEG quality must be an integer in 1..100, got {level:g}")

    @classmethod
    def check_range(cls, low: float, high: float) -> None:
        cls.check_level(low)
        cls.check_level(high)
        _check_order(low, high)

    @property
    def label(self) -> str:
        return f"q{int(self.quality)}"

    def describe(self) -> str:
        return f"q={int(self.quality)} JPEG"

    def degrade(self, clean: NDArray[np.uint8], rng: np.random.Generator) -> NDArray[np.float64]:
        compressed = jpeg_roundtrip(self.ground_truth(clean), int(self.quality))
        return compressed.astype(np.float64) / 255.0


def _check_order(low: float, high: float) -> None:
    if low >= high:
        raise ValueError(f"range must be [low, high] with low < high, got [{low:g}, {high:g}]")


TASK_CLASSES: dict[str, type[Task]] = {
    "sr": SuperResolution,
    "denoise": Denoise,
    "jpeg": Deblock,
}


def task_class(kind: str) -> type[Task]:
    """The Task class of a kind ('sr', 'denoise', 'jpeg'): its level checks and colour rule."""
    try:
        return TASK_CLASSES[kind]
    except KeyError:
        raise ValueError(f"unknown task {kind!r}; choose one of {', '.join(TASK_KINDS)}") from None


def make_task(kind: str, level: float) -> Task:
    """Build a task from its kind ('sr', 'denoise', 'jpeg') and its level (scale/sigma/quality)."""
    cls = task_class(kind)
    cls.check_level(float(level))
    if cls is Deblock:
        return Deblock(int(level))
    return cls(float(level))  # type: ignore[call-arg]
