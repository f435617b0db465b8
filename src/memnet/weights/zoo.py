"""Released weights, described declaratively: name → file, SHA-256, config, task and metrics.

The files live in `memnet/weights/` inside the package; nothing is downloaded at run time.
Every load checks the file's SHA-256 against the registry. The default model of a task is the
entry marked `default=True`, else the first registered entry for that task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from memnet.errors import MemNetError
from memnet.fsutil import sha256_of
from memnet.model import MemNet, MemNetConfig

__all__ = [
    "REGISTRY",
    "ZooEntry",
    "default_for",
    "describe",
    "describe_all",
    "get",
    "load_model",
    "register",
    "verified_weights_path",
    "weights_dir",
    "weights_path",
]


@dataclass(frozen=True)
class ZooEntry:
    """One released model: where its weights are, what it restores and how well (measured)."""

    name: str
    file: str
    sha256: str
    config: MemNetConfig
    task: str  # "sr", "denoise" or "jpeg"
    levels: tuple[float, ...]  # scales, sigmas or qualities it was trained on
    description: str
    recipe: str = ""
    iterations: int = 0
    training_time: str = ""
    metrics: dict[str, str] = field(default_factory=dict)  # e.g. {"Set5 x2": "36.71 / 0.9530"}
    default: bool = False  # the model `memnet restore` uses for its task when none is named


REGISTRY: dict[str, ZooEntry] = {}


def register(entry: ZooEntry) -> ZooEntry:
    """Add a released model to the registry (names are unique)."""
    if entry.name in REGISTRY:
        raise ValueError(f"model {entry.name!r} is registered twice")
    REGISTRY[entry.name] = entry
    return entry


# The released models: trained on this project's 2-core CPU with the shipped recipes (their
# resume points are kept in training/NAME/). Metrics: `memnet eval --model NAME` on the full
# sets, PSNR (dB) / SSIM; docs/results.md has every level and the published numbers beside them.
_CPU_PRESET = MemNetConfig(blocks=4, recursions=4, channels=32)


def _cpu_release(
    name: str,
    task: str,
    levels: tuple[float, ...],
    description: str,
    *,
    sha256: str,
    iterations: int,
    training_time: str,
    metrics: dict[str, str],
) -> ZooEntry:
    """A default model of `task` in the CPU preset, its file named after it."""
    return register(
        ZooEntry(
            name=name,
            file=f"{name}.safetensors",
            config=_CPU_PRESET,
            task=task,
            levels=levels,
            description=f"MemNet M4R4C32, {description}",
            recipe=f"configs/{task}-cpu.yaml",
            sha256=sha256,
            iterations=iterations,
            training_time=training_time,
            metrics=metrics,
            default=True,
        )
    )


_cpu_release(
    "memnet-sr",
    "sr",
    (2.0, 3.0, 4.0),
    "super-resolution x2/x3/x4 in one model",
    sha256="d1453014aae29a9554c8825f434bb82dd490ebca85957bde0f84005e7e79d4ab",
    iterations=7427,
    training_time="118 min on 2 CPU cores",
    metrics={
        "Set5 x2": "36.63 / 0.9548",
        "Set5 x3": "32.83 / 0.9116",
        "Set5 x4": "30.53 / 0.8664",
        "Set14 x2": "32.41 / 0.9070",
        "BSD100 x2": "31.37 / 0.8882",
    },
)
_cpu_release(
    "memnet-denoise",
    "denoise",
    (0.0, 75.0),
    "blind Gaussian denoising (any sigma 0-75) in one model",
    sha256="9403ff14d160785c53f9b2c175ae322976782ff1064b5a4afe099c55b3b89e64",
    iterations=11500,
    training_time="209 min on 2 CPU cores",
    metrics={
        "BSD68 sigma15": "30.98 / 0.8715",
        "BSD68 sigma25": "28.64 / 0.8052",
        "BSD68 sigma50": "25.75 / 0.6865",
        "BSD68 sigma70": "24.43 / 0.6152",
        "Set12 sigma50": "26.40 / 0.7430",
    },
)
_cpu_release(
    "memnet-jpeg",
    "jpeg",
    (10.0, 20.0),
    "JPEG deblocking q10/q20 in one model",
    sha256="0b01940c2176a9c7b36396f67993f2e58b0ce4fe5483df4f5c88c0f484921c2e",
    iterations=7458,
    training_time="119 min on 2 CPU cores",
    metrics={
        "Classic5 q10": "29.17 / 0.7995",
        "Classic5 q20": "31.38 / 0.8556",
        "LIVE1 q10": "29.09 / 0.8126",
        "LIVE1 q20": "31.42 / 0.8759",
    },
)
# The paper's network size, trained on the same 2 cores for as long as the budget allowed: far
# from converged (docs/results.md), so not the default; `--model memnet-sr-m6r6` selects it.
register(
    ZooEntry(
        name="memnet-sr-m6r6",
        file="memnet-sr-m6r6.safetensors",
        sha256="c525148978fc491e82bb4a6b998d8ce876dc3832af2c6fe8fbb06720e00481bd",
        config=MemNetConfig(blocks=6, recursions=6, channels=64),
        task="sr",
        levels=(2.0, 3.0, 4.0),
        description="MemNet M6R6 (the paper's size), super-resolution x2/x3/x4, briefly trained",
        recipe="configs/sr-m6r6-cpu.yaml",
        iterations=1250,
        training_time="72 min on 2 CPU cores",
        metrics={
            "Set5 x2": "34.52 / 0.9417",
            "Set5 x3": "31.69 / 0.8955",
            "Set5 x4": "29.47 / 0.8404",
            "Set14 x2": "31.17 / 0.8907",
        },
    )
)


def get(name: str) -> ZooEntry:
    """The registered entry called `name` (clear error listing the known ones otherwise)."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(REGISTRY) or "none bundled"
        raise MemNetError(f"unknown model {name!r}; released models: {known}") from None


def default_for(task: str) -> ZooEntry | None:
    """The released model for `task` ('sr', 'denoise', 'jpeg'), or None while there is none."""
    candidates = [entry for entry in REGISTRY.values() if entry.task == task]
    marked = [entry for entry in candidates if entry.default]
    chosen = marked or candidates
    return chosen[0] if chosen else None


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


def load_model(name: str, map_location: str = "cpu") -> tuple[MemNet, ZooEntry]:
    """Build a released model by name from its hash-checked weights file."""
    from memnet.weights.files import load_weights

    entry = get(name)
    model, _metadata = load_weights(verified_weights_path(entry), map_location=map_location)
    if model.config != entry.config:
        raise MemNetError(
            f"weights for {entry.name!r} describe a {model.config} network, "
            f"the registry expects {entry.config} (reinstall memnet)"
        )
    return model, entry


def describe(name: str) -> str:
    """Several lines about one released model: task, shape, file, hash, recipe, metrics."""
    entry = get(name)
    c = entry.config
    lines = [
        f"{entry.name}: {entry.description}",
        f"  task {entry.task} {', '.join(f'{v:g}' for v in entry.levels)}; "
        f"MemNet M={c.blocks} R={c.recursions} C={c.channels}",
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
    return [
        f"{e.name:<20} {e.task:<8} {', '.join(f'{v:g}' for v in e.levels):<12} {e.description}"
        for e in REGISTRY.values()
    ]
