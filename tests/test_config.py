"""Recipes: typed, validated before any work, errors point at file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from memnet.model import PRESETS
from memnet.training.recipe import RecipeError, dump_recipe, load_recipe, parse_recipe

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.yaml"))

MINIMAL = """\
name: t
task:
  kind: sr
  levels: [2, 3]
data:
  sources: [synthetic]
train:
  iterations: 10
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return path


def error_of(path: Path, overrides: list[str] | None = None) -> str:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides)
    message = str(info.value)
    assert len(message.splitlines()) == 1
    return message


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_recipes_are_valid_and_round_trip(path: Path) -> None:
    recipe = load_recipe(path)
    assert recipe.name == path.stem
    again = parse_recipe(yaml.safe_load(dump_recipe(recipe)))
    assert again.model.network_config() == recipe.model.network_config()
    assert again.train == recipe.train
    assert again.optim == recipe.optim


def test_the_shipped_set_of_recipes() -> None:
    names = {p.stem for p in CONFIGS}
    assert {"sr", "denoise", "jpeg", "sr-cpu", "denoise-cpu", "jpeg-cpu", "smoke"} <= names
    paper = load_recipe(CONFIGS[[p.stem for p in CONFIGS].index("sr")])
    assert paper.model.preset == "m6r6"
    assert paper.task.levels == [2, 3, 4]
    assert (paper.optim.name, paper.optim.lr, paper.optim.momentum) == ("sgd", 0.1, 0.9)
    assert (paper.optim.weight_decay, paper.optim.bias_lr_factor) == (1e-4, 0.1)
    assert (paper.train.loss, paper.train.clip.mode, paper.train.clip.value) == (
        "caffe", "adjustable", 0.01,
    )  # fmt: skip
    assert (paper.train.batch_size, paper.data.patch_size) == (32, 31)


def test_unknown_key_names_line_and_suggests(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("  iterations: 10", "  iterations: 10\n  bach_size: 4"))
    message = error_of(path)
    assert message == f"{path}:9: train.bach_size: unknown key (did you mean 'batch_size'?)"


def test_wrong_type_and_range_are_reported_with_hint(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("iterations: 10", "iterations: ten"))
    assert "train.iterations: Input should be a valid integer" in error_of(path)
    path = write(tmp_path, MINIMAL + "optim:\n  lr: -0.1\n")
    message = error_of(path)
    assert message.startswith(f"{path}:10: optim.lr: Input should be greater than 0")
    assert "base learning rate" in message  # the field's description is the hint


def test_task_levels_are_checked(tmp_path: Path) -> None:
    assert ":4: task.levels: SR scale must be a number greater than 1" in error_of(
        write(tmp_path, MINIMAL.replace("[2, 3]", "[1, 2]"))
    )
    jpeg = MINIMAL.replace("kind: sr", "kind: jpeg").replace("[2, 3]", "[10.5]")
    assert "JPEG quality must be an integer in 1..100" in error_of(write(tmp_path, jpeg))
    blind = MINIMAL.replace("kind: sr", "kind: denoise").replace("levels: [2, 3]", "range: [0, 75]")
    assert load_recipe(write(tmp_path, blind)).task.range == (0, 75)
    both = blind.replace("range: [0, 75]", "range: [0, 75]\n  levels: [50]")
    assert "exactly one of 'levels'" in error_of(write(tmp_path, both))


def test_missing_required_key(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("train:\n  iterations: 10\n", ""))
    assert f"{path}: train: required key is missing" in error_of(path)


def test_overrides_apply_and_errors_name_the_option(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    recipe = load_recipe(path, ["optim.lr=1e-3", "task.levels=[4]", "model.preset=m4r4c32"])
    assert recipe.optim.lr == pytest.approx(1e-3)
    assert recipe.task.levels == [4]
    assert recipe.model.network_config() == PRESETS["m4r4c32"]
    assert error_of(path, ["optim.lrr=3"]) == "--set optim.lrr: unknown key (did you mean 'lr'?)"
    assert "--set train.batch_size" in error_of(path, ["train.batch_size=0"])
    assert "KEY=VALUE" in error_of(path, ["optim.lr"])


def test_explicit_shape_overrides_the_preset(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, MINIMAL), ["model.preset=m6r6", "model.channels=16"])
    config = recipe.model.network_config()
    assert (config.blocks, config.recursions, config.channels) == (6, 6, 16)
    no_preset = ["model.preset=null", "model.blocks=3"]
    assert "give all of blocks, recursions and channels" in error_of(
        write(tmp_path, MINIMAL), no_preset
    )
    assert "unknown preset 'm7r7'" in error_of(write(tmp_path, MINIMAL), ["model.preset=m7r7"])


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    assert "not valid YAML" in error_of(write(tmp_path, "name: [unclosed\n"))
    assert "recipe file not found" in error_of(tmp_path / "nope.yaml")
    assert "must be a mapping" in error_of(write(tmp_path, "- a\n- b\n"))


# -- levels: one rule (the task's) for the recipe, the validation sets and the task ------------

VALIDATED = (
    MINIMAL
    + """\
validation:
  sets:
    - {set: synthetic, levels: [2]}
    - set: synthetic
      levels:
        - 3
        - LEVEL
"""
)


@pytest.mark.parametrize(
    ("kind", "level", "message"),
    [
        ("sr", "1", "SR scale must be a number greater than 1"),
        ("sr", ".nan", "SR scale must be a number greater than 1"),
        ("denoise", "0", "noise sigma must be a positive number"),
        ("jpeg", "10.5", "JPEG quality must be an integer in 1..100"),
        ("jpeg", "101", "JPEG quality must be an integer in 1..100"),
    ],
)
def test_validation_levels_are_checked_against_the_task(
    tmp_path: Path, kind: str, level: str, message: str
) -> None:
    text = VALIDATED.replace("kind: sr", f"kind: {kind}").replace("LEVEL", level)
    if kind == "jpeg":
        text = text.replace("[2, 3]", "[10, 20]").replace("levels: [2]", "levels: [10]")
        text = text.replace("- 3\n", "- 20\n")
    path = write(tmp_path, text)
    # FILE:LINE of the offending list item, the key path, the task's own message
    assert error_of(path).startswith(f"{path}:15: validation.sets.1.levels.1: {message}")


def test_validation_levels_that_the_task_accepts_load(tmp_path: Path) -> None:
    recipe = load_recipe(write(tmp_path, VALIDATED.replace("LEVEL", "2.5")))
    assert recipe.validation.sets[1].levels == [3, 2.5]


def test_a_changed_task_kind_rechecks_the_validation_levels(tmp_path: Path) -> None:
    path = write(tmp_path, VALIDATED.replace("LEVEL", "2.5"))  # scales 2, 3 and 2.5
    message = error_of(path, ["task.kind=jpeg", "task.levels=[10]"])
    # 2 and 3 are qualities too; 2.5 is not
    assert message.startswith(f"{path}:15: validation.sets.1.levels.1: JPEG quality must be")


def test_sigma_bounds_are_the_tasks(tmp_path: Path) -> None:
    from memnet.tasks import Denoise

    denoise = MINIMAL.replace("kind: sr", "kind: denoise")
    # a fixed σ of 0 is no noise at all: the task refuses it, and now so does the recipe
    with pytest.raises(ValueError, match="positive") as task_error:
        Denoise(0)
    assert str(task_error.value) in error_of(write(tmp_path, denoise.replace("[2, 3]", "[0]")))
    # a blind range may start at 0 (the task's range rule), never below
    blind = denoise.replace("levels: [2, 3]", "range: [0, 50]")
    assert load_recipe(write(tmp_path, blind)).task.range == (0, 50)
    negative = blind.replace("[0, 50]", "[-5, 50]")
    assert ":4: task.range: a noise sigma range must lie in [0, inf)" in error_of(
        write(tmp_path, negative)
    )
