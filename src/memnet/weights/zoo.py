"""Released weights, described declaratively: name → file, SHA-256, preset, task and metrics.

The files live in `memnet/weights/` inside the package; nothing is downloaded at run time.
Every load (memnet.weights.loading) checks the file's SHA-256 against the registry. The
default model of a task is its entry marked `default=True` (`default_model`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from memnet.errors import MemNetError
from memnet.fsutil import sha256_of
from memnet.network_config import PRESETS, MemNetConfig
from memnet.tasks import Score

__all__ = [
    "REGISTRY",
    "Score",
    "ZooEntry",
    "default_model",
    "describe",
    "describe_all",
    "describe_levels",
    "get",
    "register",
    "verified_weights_path",
    "weights_dir",
    "weights_path",
]


@dataclass(frozen=True)
class ZooEntry:
    """One released model: where its weights are, what it restores and how well (measured).

    `task`, `levels`, `level_range` and `parameters` repeat what the weights file itself
    records (its metadata, the network built from it); tests/test_zoo.py checks that every
    entry agrees with its file, and loading takes them from the file.
    """

    name: str
    file: str
    sha256: str
    preset: str  # a key of memnet.model.PRESETS: the network's shape
    task: str  # "sr", "denoise" or "jpeg"
    levels: tuple[float, ...]  # the fixed scales / qualities it was trained on
    description: str
    level_range: tuple[float, float] | None = None  # [low, high] of a blind model, else None
    parameters: int = 0  # trainable parameters (memnet.model.summarize)
    recipe: str = ""
    iterations: int = 0
    training_time: str = ""
    # Measured with `memnet eval --model NAME` on the full sets, keyed "SET/LABEL" (task labels:
    # x2, sigma50, q10), the same keys as the validation results in a run's weights file.
    metrics: dict[str, Score] = field(default_factory=dict)
    default: bool = False  # the model a task gets when none is named (see `default_model`)

    @property
    def config(self) -> MemNetConfig:
        """The network shape of the entry's preset."""
        return PRESETS[self.preset]

    @property
    def trained(self) -> str:
        """The trained levels or range in words, e.g. '2, 3, 4' or '0-75'."""
        return describe_levels(self.levels, self.level_range)


def describe_levels(levels: tuple[float, ...], level_range: tuple[float, float] | None) -> str:
    """Trained levels as '2, 3, 4', a blind model's range as '0-75'."""
    if level_range is not None:
        return f"{level_range[0]:g}-{level_range[1]:g}"
    return ", ".join(f"{v:g}" for v in levels)


REGISTRY: dict[str, ZooEntry] = {}


def register(entry: ZooEntry) -> ZooEntry:
    """Add a released model to the registry (names are unique)."""
    if entry.name in REGISTRY:
        raise ValueError(f"model {entry.name!r} is registered twice")
    REGISTRY[entry.name] = entry
    return entry


def _scores(values: dict[str, tuple[float, float]]) -> dict[str, Score]:
    return {key: Score(psnr, ssim) for key, (psnr, ssim) in values.items()}


# The released models: trained on this project's 2-core CPU with the shipped recipes (their
# resume points are kept in training/NAME/). Metrics: `memnet eval --model NAME` on the full
# sets (docs/results.md, "How the tables are made", has the commands and the published
# numbers beside them).
register(
    ZooEntry(
        name="memnet-sr",
        file="memnet-sr.safetensors",
        sha256="d1453014aae29a9554c8825f434bb82dd490ebca85957bde0f84005e7e79d4ab",
        preset="m4r4c32",
        task="sr",
        levels=(2.0, 3.0, 4.0),
        description="MemNet M4R4C32, super-resolution x2/x3/x4 in one model",
        parameters=105_319,
        recipe="configs/sr-cpu.yaml",
        iterations=7427,
        training_time="118 min on 2 CPU cores",
        metrics=_scores(
            {
                "Set5/x2": (36.63, 0.9548),
                "Set5/x3": (32.83, 0.9116),
                "Set5/x4": (30.53, 0.8664),
                "Set14/x2": (32.41, 0.9070),
                "Set14/x3": (29.36, 0.8221),
                "Set14/x4": (27.53, 0.7538),
                "BSD100/x2": (31.37, 0.8882),
                "BSD100/x3": (28.45, 0.7867),
                "BSD100/x4": (26.97, 0.7136),
            }
        ),
        default=True,
    )
)
register(
    ZooEntry(
        name="memnet-denoise",
        file="memnet-denoise.safetensors",
        sha256="9403ff14d160785c53f9b2c175ae322976782ff1064b5a4afe099c55b3b89e64",
        preset="m4r4c32",
        task="denoise",
        levels=(),
        level_range=(0.0, 75.0),
        description="MemNet M4R4C32, blind Gaussian denoising (any sigma 0-75) in one model",
        parameters=105_319,
        recipe="configs/denoise-cpu.yaml",
        iterations=11500,
        training_time="209 min on 2 CPU cores",
        metrics=_scores(
            {
                "BSD68/sigma15": (30.98, 0.8715),
                "BSD68/sigma25": (28.64, 0.8052),
                "BSD68/sigma30": (27.84, 0.7767),
                "BSD68/sigma50": (25.75, 0.6865),
                "BSD68/sigma70": (24.43, 0.6152),
                "Set12/sigma15": (31.76, 0.8828),
                "Set12/sigma25": (29.53, 0.8360),
                "Set12/sigma30": (28.70, 0.8141),
                "Set12/sigma50": (26.40, 0.7430),
                "Set12/sigma70": (24.84, 0.6809),
            }
        ),
        default=True,
    )
)
register(
    ZooEntry(
        name="memnet-jpeg",
        file="memnet-jpeg.safetensors",
        sha256="530fe27e45d0432b10019f36f3655a3b64f6ef1ab362d2ac67a624d8c29c6bde",
        preset="m4r4c32",
        task="jpeg",
        levels=(10.0, 20.0),
        description="MemNet M4R4C32, JPEG deblocking q10/q20 in one model",
        parameters=105_319,
        recipe="configs/jpeg-cpu.yaml",
        iterations=7452,
        training_time="125 min on 1 CPU thread",
        metrics=_scores(
            {
                "Classic5/q10": (29.21, 0.8000),
                "Classic5/q20": (31.39, 0.8559),
                "Classic5/q30": (32.48, 0.8783),
                "Classic5/q40": (33.09, 0.8902),
                "LIVE1/q10": (29.10, 0.8128),
                "LIVE1/q20": (31.43, 0.8761),
                "LIVE1/q30": (32.59, 0.9007),
                "LIVE1/q40": (33.30, 0.9135),
            }
        ),
        default=True,
    )
)
# The paper's network size, trained on the same 2 cores in a relay of sittings, then 400 steps
# at a tenth of the learning rate (training/memnet-sr-m6r6-decay-8000): 0.1-0.5 dB above
# memnet-sr on every set and scale (docs/results.md), at 9x its work per pixel, so not the
# default; `--model memnet-sr-m6r6` selects it.
register(
    ZooEntry(
        name="memnet-sr-m6r6",
        file="memnet-sr-m6r6.safetensors",
        sha256="c0c8d2fa1e9961ea176cf894367996c13a8a73c52015b5dc7df957dd9593375e",
        preset="m6r6",
        task="sr",
        levels=(2.0, 3.0, 4.0),
        description="MemNet M6R6 (the paper's size), super-resolution x2/x3/x4 in one model",
        parameters=695_497,
        recipe="configs/sr-m6r6-relay.yaml",
        iterations=8400,
        training_time=(
            "1,344 min on 2 CPU cores (relay sittings, 14.2 CPU hours; batch 16 until step 4,899;"
            " lr 1e-4 from step 8,000)"
        ),
        metrics=_scores(
            {
                "Set5/x2": (37.15, 0.9570),
                "Set5/x3": (33.18, 0.9166),
                "Set5/x4": (30.93, 0.8762),
                "Set14/x2": (32.69, 0.9100),
                "Set14/x3": (29.54, 0.8272),
                "Set14/x4": (27.78, 0.7610),
                "BSD100/x2": (31.63, 0.8925),
                "BSD100/x3": (28.64, 0.7931),
                "BSD100/x4": (27.12, 0.7198),
            }
        ),
    )
)


def get(name: str) -> ZooEntry:
    """The registered entry called `name` (clear error listing the known ones otherwise)."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(REGISTRY)
        raise MemNetError(f"unknown model {name!r}; released models: {known}") from None


def default_model(task: str) -> ZooEntry:
    """The released model a task gets when none is named: its entry marked `default=True`.

    Every task has one (tests/test_released_weights.py); `memnet.load`, every command and the
    server use this, so there is no fallback to a baseline. An unknown task, or a registry
    without a default for the task, is a one-line MemNetError.
    """
    marked = [entry for entry in REGISTRY.values() if entry.task == task and entry.default]
    if not marked:
        raise MemNetError(
            f"no released model is the default for task {task!r}; name a model, a weights "
            "file or a baseline method"
        )
    return marked[0]


def weights_dir() -> Path:
    """The package folder that holds the released .safetensors files."""
    return Path(str(resources.files("memnet") / "weights"))


def weights_path(entry: ZooEntry) -> Path:
    """Where the entry's file is installed."""
    return weights_dir() / entry.file


def verified_weights_path(entry: ZooEntry) -> Path:
    """The entry's file, after checking it exists and has the registered SHA-256."""
    path = weights_path(entry)
    if not path.is_file():
        raise MemNetError(f"weights for {entry.name!r} are missing: {path} (reinstall memnet)")
    actual = sha256_of(path)
    if actual != entry.sha256:
        raise MemNetError(
            f"weights for {entry.name!r} are corrupt: {path} has SHA-256 {actual[:12]}…, "
            f"expected {entry.sha256[:12]}… (reinstall memnet)"
        )
    return path


def describe(name: str) -> str:
    """Several lines about one released model: task, shape, file, hash, recipe, metrics."""
    entry = get(name)
    c = entry.config
    lines = [
        f"{entry.name}: {entry.description}",
        f"  task {entry.task}, {'range' if entry.level_range else 'levels'} {entry.trained}; "
        f"MemNet M={c.blocks} R={c.recursions} C={c.channels} "
        f"(preset {entry.preset}, {entry.parameters:,} parameters)",
        f"  file {entry.file}  sha256 {entry.sha256}",
    ]
    if entry.recipe:
        lines.append(
            f"  recipe {entry.recipe}, {entry.iterations:,} iterations, {entry.training_time}"
        )
    for key, value in entry.metrics.items():
        lines.append(f"  {key}: {value}")
    return "\n".join(lines)


def describe_all() -> list[str]:
    """One line per released model."""
    return [f"{e.name:<20} {e.task:<8} {e.trained:<12} {e.description}" for e in REGISTRY.values()]
