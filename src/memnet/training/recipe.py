"""Training recipes: a typed schema, loaded from YAML, with errors that point into the file.

A recipe says everything a run needs — task and levels, network, data, optimiser, schedule,
validation, checkpoints — so that a run folder's saved `recipe.yaml` reproduces it. Every
problem (an unknown key, a wrong type, a value out of range) is reported before any work starts
as `FILE:LINE: dotted.key: what is wrong (hint)`; values given with `--set` are reported as such
(`memnet.training.recipe_files` reads the YAML and words the errors).

Why one module: the schema is one document whose sections are checked against each other
(levels against the task, validation against training); split, each part would need the rest.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from memnet.model import PRESETS, BranchWeightInit, MemNetConfig
from memnet.tasks import task_class, task_classes
from memnet.training.losses import LossScaling
from memnet.training.recipe_files import RecipeError, apply_overrides, describe_error, read_yaml

__all__ = [
    "CheckpointSpec",
    "ClipSpec",
    "DataSpec",
    "LogSpec",
    "ModelSpec",
    "OptimSpec",
    "Recipe",
    "RecipeError",
    "ScheduleSpec",
    "SyntheticSpec",
    "TaskSpec",
    "TrainSpec",
    "ValidationSet",
    "ValidationSpec",
    "dump_recipe",
    "load_recipe",
    "parse_recipe",
]

SYNTHETIC = "synthetic"  # data source name for images generated in code (no files needed)

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class Spec(BaseModel):
    """Base of every recipe section: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# --------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------


class TaskSpec(Spec):
    kind: str = Field(description=", ".join(f"{cls.kind} ({cls.title})" for cls in task_classes()))
    levels: list[float] = Field(
        default_factory=list,
        description="scales (sr), noise sigmas of 255 (denoise) or JPEG qualities (jpeg) "
        "trained together in one model, e.g. [2, 3, 4]",
    )
    range: tuple[float, float] | None = Field(
        default=None,
        description="blind model: [low, high] sigma (denoise) or quality (jpeg) drawn per "
        "patch/image instead of fixed levels",
    )

    @field_validator("kind")
    @classmethod
    def _check_kind(cls, kind: str) -> str:
        task_class(kind)  # ValueError naming the registered tasks
        return kind

    # The bounds of a level (scale > 1, σ > 0, quality 1..100) are the task's own
    # (`memnet.tasks`): the recipe, `memnet eval` and the training data check the same rule.
    @field_validator("levels")
    @classmethod
    def _check_level_values(cls, levels: list[float], info: ValidationInfo) -> list[float]:
        kind = info.data.get("kind")
        if kind is not None:
            for level in levels:
                task_class(kind).check_level(level)
        if len(set(levels)) != len(levels):
            raise ValueError(f"levels repeat a value: {levels}")
        return levels

    @field_validator("range")
    @classmethod
    def _check_range_values(
        cls, bounds: tuple[float, float] | None, info: ValidationInfo
    ) -> tuple[float, float] | None:
        kind = info.data.get("kind")
        if bounds is not None and kind is not None:
            task_class(kind).check_range(*bounds)
        return bounds

    @model_validator(mode="after")
    def _check_levels(self) -> TaskSpec:
        if (not self.levels) == (self.range is None):
            raise ValueError("give exactly one of 'levels' (a list) or 'range' ([low, high])")
        return self

    def training_levels(self) -> list[float]:
        """The fixed levels; for a blind JPEG range, every integer quality in it."""
        if self.levels:
            return list(self.levels)
        assert self.range is not None
        if self.kind == "jpeg":
            return [float(q) for q in range(int(self.range[0]), int(self.range[1]) + 1)]
        return []


class ModelSpec(Spec):
    preset: str | None = Field(
        default="m6r6",
        description=f"a preset name ({', '.join(PRESETS)}), optionally refined by "
        "blocks/recursions/channels; null to give all three",
    )
    blocks: PositiveInt | None = Field(default=None, description="M, memory blocks")
    recursions: PositiveInt | None = Field(default=None, description="R, recursions per block")
    channels: PositiveInt | None = Field(default=None, description="C, feature channels")
    identity_init: bool = Field(
        default=False,
        description="zero the reconstruction conv so the network starts as the identity on "
        "its (upsampled/degraded) input",
    )
    bn_momentum: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="BatchNorm running-average momentum (the released Caffe model: 0.001)",
    )
    branch_weight_init: BranchWeightInit = Field(
        default="mean",
        description="start of the branch weights w_m: mean (1/M) or caffe (1, as the released "
        "Caffe model)",
    )

    @model_validator(mode="after")
    def _check_shape(self) -> ModelSpec:
        if self.preset is not None and self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; known presets: {', '.join(PRESETS)}")
        if self.preset is None and None in (self.blocks, self.recursions, self.channels):
            raise ValueError("without a preset give all of blocks, recursions and channels")
        return self

    def network_config(self) -> MemNetConfig:
        """M/R/C of the network: the preset's, with any explicit field overriding it."""
        base = PRESETS[self.preset] if self.preset is not None else MemNetConfig()
        return MemNetConfig(
            blocks=self.blocks or base.blocks,
            recursions=self.recursions or base.recursions,
            channels=self.channels or base.channels,
        )


class SyntheticSpec(Spec):
    images: PositiveInt = Field(default=24, description="number of generated images")
    size: int = Field(default=96, ge=32, le=4096, description="side of each generated image")
    seed: int = Field(default=0, description="seed of the generated picture content")


class DataSpec(Spec):
    sources: list[str] = Field(
        min_length=1,
        description="training images: set names (T91, BSD200, Train400, ...), folders of "
        "images (DIV2K, your own photos), or 'synthetic' (pictures generated in code)",
    )
    data_root: str | None = Field(
        default=None,
        description="datasets folder (default: --data-root, $MEMNET_DATA_ROOT, else "
        "../shared/datasets and the 'memnet data fetch' folder)",
    )
    max_images: PositiveInt | None = Field(
        default=None, description="use only the first N images (quick runs)"
    )
    patch_size: int = Field(default=31, ge=8, le=1024, description="side of training patches")
    augment: bool = Field(default=True, description="the 8 flips/rotations of each patch")
    workers: int = Field(default=1, ge=1, le=64, description="threads that assemble batches")
    prefetch: int = Field(default=4, ge=1, le=256, description="batches prepared ahead")
    synthetic: SyntheticSpec = Field(default_factory=SyntheticSpec)


class OptimSpec(Spec):
    name: Literal["sgd", "adam", "adamw"] = Field(default="sgd", description="sgd, adam or adamw")
    lr: PositiveFloat = Field(default=0.1, description="base learning rate")
    momentum: float = Field(default=0.9, ge=0, lt=1, description="SGD momentum")
    betas: tuple[float, float] = Field(default=(0.9, 0.999), description="Adam betas")
    eps: PositiveFloat = Field(default=1e-8, description="Adam epsilon")
    weight_decay: NonNegativeFloat = Field(default=1e-4, description="L2 / decoupled decay")
    bias_lr_factor: PositiveFloat = Field(
        default=0.1, description="learning-rate factor for conv biases (paper: 0.1)"
    )


class ScheduleSpec(Spec):
    kind: Literal["constant", "step", "cosine"] = Field(
        default="constant", description="constant, step (× gamma every step_size) or cosine"
    )
    step_size: PositiveInt | None = Field(
        default=None, description="step: iterations between lr drops"
    )
    gamma: float = Field(default=0.1, gt=0, le=1, description="step: factor per drop")
    warmup: NonNegativeInt = Field(default=0, description="iterations of linear warm-up")
    final_lr_factor: float = Field(
        default=0.0, ge=0, le=1, description="cosine: lr at the end, as a factor of the base"
    )

    @model_validator(mode="after")
    def _check_step(self) -> ScheduleSpec:
        if self.kind == "step" and self.step_size is None:
            raise ValueError("a step schedule needs step_size (iterations between drops)")
        return self


class ClipSpec(Spec):
    mode: Literal["none", "norm", "adjustable"] = Field(
        default="adjustable",
        description="adjustable: global grad norm <= value / current lr (the paper's); "
        "norm: global grad norm <= value; none",
    )
    value: PositiveFloat = Field(default=0.01, description="the clipping constant")


class TrainSpec(Spec):
    iterations: PositiveInt = Field(description="optimiser steps in the whole run")
    batch_size: PositiveInt = Field(
        default=32, description="patches per step, over all processes together"
    )
    loss: LossScaling = Field(
        default="caffe",
        description="caffe: M+1 pixel sums / 2N (paper solver); mean: α-weighted MSE; "
        "l1: α-weighted mean absolute error",
    )
    clip: ClipSpec = Field(default_factory=ClipSpec)
    seed: int = Field(default=0, description="seed of initial weights and data sampling")
    deterministic: bool = Field(
        default=False, description="deterministic kernels (bit-exact reruns; slower on GPU)"
    )
    threads: PositiveInt | Literal["auto"] | None = Field(
        default=None,
        description="compute threads per process: a number, null (cores / processes) or "
        "'auto' (now and then measure 1 thread against all, keep the faster: for busy machines)",
    )
    device: str = Field(
        default="auto",
        description="auto, cpu, cuda or cuda:N (auto: this process's CUDA GPU, else the CPU)",
    )
    amp: Literal["auto", "off", "bf16", "fp16"] = Field(
        default="auto", description="mixed precision on CUDA (auto = bf16); CPU runs fp32"
    )
    channels_last: bool = Field(default=True, description="NHWC memory layout (fast path)")
    sync_batchnorm: bool = Field(
        default=False,
        description="under DDP, BatchNorm statistics over the whole batch of all processes "
        "(as one process would compute them) instead of each process's share",
    )

    @field_validator("amp", mode="before")
    @classmethod
    def _unquoted_off(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `off` as false: `amp: off` means fp32, as written
        return "off" if value is False else value

    @model_validator(mode="after")
    def _check_threads(self) -> TrainSpec:
        if self.deterministic and self.threads == "auto":
            raise ValueError(
                "threads 'auto' changes the thread count during the run; deterministic runs "
                "need a fixed number (or null)"
            )
        return self


class ValidationSet(Spec):
    set: str = Field(description="a set name (Set5, Set12, Classic5, ...), folder or 'synthetic'")
    levels: list[float] = Field(min_length=1, description="scales, sigmas or qualities")
    max_images: PositiveInt | None = Field(
        default=None, description="use only the first N images of the set"
    )


class ValidationSpec(Spec):
    interval: NonNegativeInt = Field(
        default=1000, description="validate every N iterations (0: never)"
    )
    at_start: bool = Field(default=False, description="also validate before the first step")
    sets: list[ValidationSet] = Field(default_factory=list)
    seed: int = Field(default=0, description="seed of the validation degradation (noise)")
    tile: NonNegativeInt | None = Field(
        default=None, description="inference tile size (0: whole image; default: Restorer's)"
    )


class CheckpointSpec(Spec):
    interval: PositiveInt = Field(
        default=500, description="write the 'last' checkpoint every N iterations"
    )
    snapshot_interval: NonNegativeInt = Field(
        default=0, description="keep a numbered snapshot every N iterations (0: none)"
    )


class LogSpec(Spec):
    interval: PositiveInt = Field(default=50, description="write a metrics line every N iterations")
    tensorboard: bool = Field(
        default=True, description="also log to TensorBoard when it is installed"
    )


class Recipe(Spec):
    """A whole training run."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
        description="run name (letters, digits, _ . -); the default run folder is runs/NAME",
    )
    description: str = ""
    task: TaskSpec
    model: ModelSpec = Field(default_factory=ModelSpec)
    data: DataSpec
    optim: OptimSpec = Field(default_factory=OptimSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    train: TrainSpec
    validation: ValidationSpec = Field(default_factory=ValidationSpec)
    checkpoint: CheckpointSpec = Field(default_factory=CheckpointSpec)
    log: LogSpec = Field(default_factory=LogSpec)


# --------------------------------------------------------------------------------------------
# validation, loading and writing
# --------------------------------------------------------------------------------------------


def parse_recipe(
    data: dict[str, Any],
    *,
    source: str = "recipe",
    node: yaml.Node | None = None,
    overridden: set[tuple[str, ...]] | None = None,
) -> Recipe:
    """Validate a recipe mapping; raises RecipeError naming every problem on one line."""
    try:
        recipe = Recipe.model_validate(data)
        errors = _cross_section_errors(recipe)
    except ValidationError as error:
        errors = [dict(e) for e in error.errors(include_url=False)]
    if not errors:
        return recipe
    problems = [describe_error(Recipe, e, source, node, overridden or set()) for e in errors]
    head = problems[0] if len(problems) == 1 else f"{len(problems)} problems: "
    text = head if len(problems) == 1 else head + "; ".join(problems)
    raise RecipeError(text)


def _cross_section_errors(recipe: Recipe) -> list[dict[str, Any]]:
    """Problems between sections, in pydantic's error form: validation levels the task refuses."""
    errors: list[dict[str, Any]] = []
    check = task_class(recipe.task.kind).check_level
    for i, entry in enumerate(recipe.validation.sets):
        for j, level in enumerate(entry.levels):
            try:
                check(level)
            except ValueError as error:
                errors.append(
                    {
                        "loc": ("validation", "sets", i, "levels", j),
                        "msg": f"{error} (task.kind is {recipe.task.kind})",
                        "type": "value_error",
                        "input": None,  # the message shows the value
                    }
                )
    return errors


def load_recipe(path: str | os.PathLike[str], overrides: list[str] | None = None) -> Recipe:
    """Read, override (`key.path=value`) and validate a YAML recipe."""
    path = Path(path)
    data, node = read_yaml(path)
    overridden = apply_overrides(data, list(overrides or []))
    return parse_recipe(data, source=str(path), node=node, overridden=overridden)


def dump_recipe(recipe: Recipe) -> str:
    """The fully resolved recipe as YAML (every default written out, M/R/C filled in)."""
    data = recipe.model_dump(mode="json")
    network = recipe.model.network_config()
    data["model"].update(
        blocks=network.blocks, recursions=network.recursions, channels=network.channels
    )
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
