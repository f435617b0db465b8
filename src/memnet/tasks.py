"""A task is a degradation plus its test protocol: SR(scale), Denoise(sigma), Deblock(quality).

Everything memnet knows about a task lives in its class and is found through one registry,
`TASKS` (`task_class(kind)`): the CLI, the Python API, the benchmark runner, the comparison
pictures and the server read the class attributes (level name, default and benchmark levels,
baseline, colour mode, table titles), so a new task is one new class registered here.

Why one module: each task's facts and protocol sit side by side with the other tasks',
and splitting them would scatter what a task is again.

Each task knows
- how to turn a clean one-channel image into the network's input (`degrade`), exactly as the
  authors' MATLAB test scripts did;
- how a user's degraded image becomes the network's input (`prepare_input`: bicubic for SR);
- how restored images are scored (`measure`: rounding, border shave, PSNR/SSIM on 0..255).

Images are (H, W) arrays. Ground truth is uint8 (Y of YCbCr, or gray); network inputs and
outputs are float64 in [0, 1] units.
"""

from __future__ import annotations

import io
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import numpy as np
from numpy.typing import NDArray

from memnet.errors import MemNetError
from memnet.imaging.color import rgb2gray, rgb2ycbcr, round_to_uint8
from memnet.imaging.noise import add_gaussian_noise
from memnet.imaging.resize import imresize, imresize_rows, modcrop

__all__ = [
    "TASKS",
    "Deblock",
    "Denoise",
    "Score",
    "SuperResolution",
    "Task",
    "baseline_methods",
    "baselines_in_words",
    "check_kind",
    "kinds_in_words",
    "level_names",
    "make_task",
    "register_task",
    "task_class",
    "task_classes",
    "task_kinds",
]


@dataclass(frozen=True)
class Score:
    """A measured result: PSNR (dB) and SSIM, of one image or the mean over a set."""

    psnr: float
    ssim: float

    def __str__(self) -> str:
        return f"{self.psnr:.2f} / {self.ssim:.4f}"


def _as_uint8_image(image: NDArray[np.generic]) -> NDArray[np.uint8]:
    if image.ndim != 2:
        raise ValueError(f"tasks work on one channel (H, W), got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"ground truth must be uint8, got {image.dtype}")
    return image.astype(np.uint8, copy=False)


def _score(output: NDArray[np.float64], reference: NDArray[np.float64], border: int) -> Score:
    """PSNR and SSIM on 0..255 after shaving `border` pixels from every side."""
    from memnet.imaging.metrics import psnr, shave, ssim  # SciPy, only when scoring

    output, reference = shave(output, border), shave(reference, border)
    return Score(psnr(output, reference), ssim(output, reference))


def _check_scorable(
    scored: tuple[int, ...], border: int, setting: str, original: tuple[int, ...]
) -> None:
    from memnet.imaging.metrics import SSIM_WINDOW

    # The scored region (after the shave) must hold at least one SSIM window.
    needed = SSIM_WINDOW + 2 * border
    if min(scored[0], scored[1]) < needed:
        raise ValueError(
            f"image of size {original[0]}x{original[1]} is too small for {setting}: "
            f"the protocol needs at least {needed}x{needed} px"
        )


class Task(ABC):
    """A degradation and the protocol by which restorations of it are measured.

    A subclass is a frozen dataclass with one field, its level, named `level_name`, and sets
    every class attribute below that has no default here (`register_task` checks).
    """

    #: The name users give: --task, memnet.load(task=...), weights metadata.
    kind: ClassVar[str]
    #: The task in words, e.g. 'super-resolution'.
    title: ClassVar[str]
    #: What is scored and how, in words (for reports), in full and in short.
    protocol: ClassVar[str]
    scoring: ClassVar[str]
    #: The level's name: the dataclass field, the keyword of memnet.load and the CLI option.
    level_name: ClassVar[str]
    #: Its plural: `memnet eval`'s option for a list of levels.
    level_option: ClassVar[str]
    #: The level in words, for --help texts.
    level_help: ClassVar[str]
    #: The level's short title, for forms and menus (e.g. 'Scale').
    level_title: ClassVar[str]
    #: How the CLI reads a level.
    level_type: ClassVar[Callable[[str], float]] = float
    #: Whether the network works without the level (it only describes the input, as the
    #: denoising and deblocking networks are blind to σ and quality). When it is not, the
    #: Python API needs the level; the CLI and the server then use `default_level`.
    blind: ClassVar[bool] = True
    #: The level used when neither the caller nor the model's trained levels decide it.
    default_level: ClassVar[float]
    #: The level `memnet compare` shows when none is given.
    compare_level: ClassVar[float]
    #: The no-network method: the network input itself (for SR that is bicubic upsampling,
    #: hence its name), and what it does, in words.
    baseline: ClassVar[str] = "identity"
    baseline_effect: ClassVar[str] = "the input unchanged"
    #: How `--color auto` sends a colour picture through the network (memnet.inference.pictures).
    default_color: ClassVar[str]
    #: Whether `prepare_input` resamples (SR's bicubic): a band of its rows needs rows around
    #: it, so the whole plane is kept while preparing; otherwise a band of rows is prepared
    #: from the same rows alone (`prepare_rows(rows, 0, len(rows))`).
    resamples: ClassVar[bool] = False
    #: Title of a level's column in result tables, a format string, e.g. '×{:g}'.
    column_title: ClassVar[str]
    #: What `memnet eval` scores when not told: the sets and levels the literature reports.
    benchmark_sets: ClassVar[tuple[str, ...]]
    benchmark_levels: ClassVar[tuple[float, ...]]
    #: The output format of `--ext auto` when the input's own would undo the restoration.
    auto_format: ClassVar[str | None] = None
    #: Whether the degradation draws random numbers (results then depend on a seed).
    seeded: ClassVar[bool] = False
    #: What the degraded picture is called in comparison pictures, e.g. 'noisy input'.
    input_name: ClassVar[str]

    @classmethod
    def level_or_default(cls, level: float | None) -> float | None:
        """`level`, or `default_level` when none is given and the network needs one: the rule
        of the commands and the server (the Python API asks for the level instead)."""
        return cls.default_level if level is None and not cls.blind else level

    @classmethod
    def from_level(cls, level: float) -> Task:
        """The task at `level`; ValueError unless it is a valid setting."""
        cls.check_level(float(level))
        return cls(float(level))  # type: ignore[call-arg]

    @property
    def level(self) -> float:
        """The task's level (its scale, σ or quality) as a number."""
        return float(getattr(self, self.level_name))

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

    @abstractmethod
    def degrade_picture(
        self, clean: NDArray[np.float64], rng: np.random.Generator
    ) -> NDArray[np.float64]:
        """The degraded picture a user would have, from a clean (H, W) or (H, W, 3) one in [0, 1]."""

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
        return _score(output, reference, self.border)


# the registry

#: Every task memnet knows, by kind, in the order --help and error messages list them.
TASKS: dict[str, type[Task]] = {}
TaskClass = TypeVar("TaskClass", bound=type[Task])


def _required_attributes() -> list[str]:
    """The class attributes every task sets: those Task declares (ClassVar) without a value."""
    return [
        name
        for name, hint in Task.__annotations__.items()
        if str(hint).startswith("ClassVar") and not hasattr(Task, name)
    ]


def register_task(cls: TaskClass) -> TaskClass:
    """Add a Task class to the registry (a class decorator); TypeError if it lacks attributes."""
    missing = [name for name in _required_attributes() if not hasattr(cls, name)]
    if missing:
        raise TypeError(f"task class {cls.__name__} does not set {', '.join(missing)}")
    if cls.level_name not in getattr(cls, "__dataclass_fields__", {}):
        raise TypeError(f"task class {cls.__name__} has no dataclass field {cls.level_name!r}")
    taken = TASKS.get(cls.kind)
    if taken is not None and taken is not cls:
        raise TypeError(f"task kind {cls.kind!r} is taken by {taken.__name__}")
    TASKS[cls.kind] = cls
    return cls


@register_task
@dataclass(frozen=True)
class SuperResolution(Task):
    """×scale super-resolution: MATLAB bicubic down then up, never quantised in between."""

    scale: float
    kind: ClassVar[str] = "sr"
    title: ClassVar[str] = "super-resolution"
    protocol: ClassVar[str] = (
        "Y channel (MATLAB rgb2ycbcr); ground truth cropped to a multiple of the scale; input = "
        "MATLAB bicubic down then up in double; output rounded to 8 bits; shave = scale px"
    )
    scoring: ClassVar[str] = "Y channel, output rounded to 8 bits, shave = scale"
    level_name: ClassVar[str] = "scale"
    level_option: ClassVar[str] = "scales"
    level_help: ClassVar[str] = "SR factor, e.g. 2, 3 or 4"
    level_title: ClassVar[str] = "Scale"
    blind: ClassVar[bool] = False
    default_level: ClassVar[float] = 2.0
    # differences are easier to see at ×3 than at ×2
    compare_level: ClassVar[float] = 3.0
    baseline: ClassVar[str] = "bicubic"
    baseline_effect: ClassVar[str] = "bicubic upsampling"
    # the authors' choice: only the luminance through the network, Cb/Cr bicubic
    default_color: ClassVar[str] = "y"
    resamples: ClassVar[bool] = True
    column_title: ClassVar[str] = "×{:g}"
    benchmark_sets: ClassVar[tuple[str, ...]] = ("Set5", "Set14", "BSD100")
    benchmark_levels: ClassVar[tuple[float, ...]] = (2, 3, 4)
    input_name: ClassVar[str] = "input"

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

    def degrade_picture(
        self, clean: NDArray[np.float64], rng: np.random.Generator
    ) -> NDArray[np.float64]:
        # a smaller 8-bit picture
        small = imresize(clean, 1.0 / self.scale)
        return np.asarray(round_to_uint8(small * 255.0), dtype=np.float64) / 255.0

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
        return _score(output, reference, self.border)


@register_task
@dataclass(frozen=True)
class Denoise(Task):
    """Additive white Gaussian noise of standard deviation `sigma` (on 0..255), unclipped."""

    sigma: float
    kind: ClassVar[str] = "denoise"
    title: ClassVar[str] = "denoising"
    protocol: ClassVar[str] = (
        "gray (MATLAB rgb2gray of a colour image); noisy = clean + sigma/255 * N(0,1), "
        "neither clipped nor quantised; output unrounded; no shave"
    )
    scoring: ClassVar[str] = "gray, unclipped noise, output unrounded, no shave"
    level_name: ClassVar[str] = "sigma"
    level_option: ClassVar[str] = "sigmas"
    level_help: ClassVar[str] = "noise level of the input on 0..255"
    level_title: ClassVar[str] = "Noise σ"
    default_level: ClassVar[float] = 50.0
    compare_level: ClassVar[float] = 50.0
    # a photo's noise sits in every channel: a luminance-only denoiser leaves the colour noise
    default_color: ClassVar[str] = "rgb"
    column_title: ClassVar[str] = "σ={:g}"
    benchmark_sets: ClassVar[tuple[str, ...]] = ("BSD68", "Set12")
    benchmark_levels: ClassVar[tuple[float, ...]] = (15, 25, 30, 50, 70)
    seeded: ClassVar[bool] = True
    input_name: ClassVar[str] = "noisy input"

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

    def degrade_picture(
        self, clean: NDArray[np.float64], rng: np.random.Generator
    ) -> NDArray[np.float64]:
        return add_gaussian_noise(clean, self.sigma, rng)


@register_task
@dataclass(frozen=True)
class Deblock(Task):
    """JPEG compression at IJG quality `quality`, decoded back (deblocking / artifact removal)."""

    quality: int
    kind: ClassVar[str] = "jpeg"
    title: ClassVar[str] = "JPEG deblocking"
    protocol: ClassVar[str] = (
        "Y channel (MATLAB rgb2ycbcr); JPEG (libjpeg, IJG tables) at quality q of the 8-bit Y, "
        "decoded; output unrounded; no shave"
    )
    scoring: ClassVar[str] = "Y channel, output unrounded, no shave"
    level_name: ClassVar[str] = "quality"
    level_option: ClassVar[str] = "qualities"
    level_help: ClassVar[str] = "JPEG quality of the input, 1..100"
    level_title: ClassVar[str] = "JPEG quality"
    level_type: ClassVar[Callable[[str], float]] = int
    default_level: ClassVar[float] = 10.0
    compare_level: ClassVar[float] = 10.0
    # JPEG codes (and blocks) the chroma too, usually more coarsely than the luminance
    default_color: ClassVar[str] = "ycbcr"
    column_title: ClassVar[str] = "q={:g}"
    benchmark_sets: ClassVar[tuple[str, ...]] = ("Classic5", "LIVE1")
    benchmark_levels: ClassVar[tuple[float, ...]] = (10, 20, 30, 40)
    # written as JPEG again, the output would be blocked again
    auto_format: ClassVar[str | None] = "png"
    input_name: ClassVar[str] = "JPEG input"

    def __post_init__(self) -> None:
        self.check_level(self.quality)

    @classmethod
    def from_level(cls, level: float) -> Deblock:
        cls.check_level(float(level))
        return cls(int(level))

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
        from memnet.imaging.jpeg import jpeg_roundtrip

        compressed = jpeg_roundtrip(self.ground_truth(clean), int(self.quality))
        return compressed.astype(np.float64) / 255.0

    def degrade_picture(
        self, clean: NDArray[np.float64], rng: np.random.Generator
    ) -> NDArray[np.float64]:
        from PIL import Image

        # a JPEG file as a camera or a website writes it: colour pictures with chroma
        buffer = io.BytesIO()
        Image.fromarray(round_to_uint8(clean * 255.0)).save(
            buffer, format="JPEG", quality=int(self.quality)
        )
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            mode = "L" if clean.ndim == 2 else "RGB"
            return np.asarray(decoded.convert(mode), dtype=np.float64) / 255.0


def _check_order(low: float, high: float) -> None:
    if low >= high:
        raise ValueError(f"range must be [low, high] with low < high, got [{low:g}, {high:g}]")


def task_kinds() -> tuple[str, ...]:
    """The kinds of every registered task, e.g. ('sr', 'denoise', 'jpeg')."""
    return tuple(TASKS)


def task_classes() -> tuple[type[Task], ...]:
    """Every registered Task class, in registration order."""
    return tuple(TASKS.values())


def _listed(words: list[str] | tuple[str, ...], last: str) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


def kinds_in_words() -> str:
    """The registered kinds for messages and --help, e.g. 'sr, denoise or jpeg'."""
    return _listed(task_kinds(), "or")


def baselines_in_words() -> str:
    """What the no-network method does per task, e.g. 'bicubic upsampling for sr, ...'."""
    kinds: dict[str, list[str]] = {}
    for cls in task_classes():
        kinds.setdefault(cls.baseline_effect, []).append(cls.kind)
    return ", ".join(f"{effect} for {_listed(named, 'and')}" for effect, named in kinds.items())


def task_class(kind: str) -> type[Task]:
    """The Task class of a kind ('sr', 'denoise', 'jpeg'); ValueError for an unknown one."""
    try:
        return TASKS[kind]
    except KeyError:
        raise ValueError(_unknown_kind(kind)) from None


def check_kind(kind: str) -> None:
    """A one-line MemNetError unless `kind` is a registered task."""
    if kind not in TASKS:
        raise MemNetError(_unknown_kind(kind))


def _unknown_kind(kind: str) -> str:
    return f"unknown task {kind!r}; choose one of {', '.join(task_kinds())}"


def baseline_methods() -> tuple[str, ...]:
    """The no-network methods of the registered tasks ('bicubic', 'identity'), once each."""
    return tuple(dict.fromkeys(cls.baseline for cls in task_classes()))


def level_names() -> tuple[str, ...]:
    """The level keywords of the registered tasks ('scale', 'sigma', 'quality'), once each."""
    return tuple(dict.fromkeys(cls.level_name for cls in task_classes()))


def make_task(kind: str, level: float) -> Task:
    """Build a task from its kind ('sr', 'denoise', 'jpeg') and its level (scale/sigma/quality)."""
    return task_class(kind).from_level(level)
