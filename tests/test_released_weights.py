"""The weights shipped in the package: each file is intact, and each model beats its baseline.

The quality check restores one small benchmark image per released model with the exact test
protocol of `memnet eval` and needs ../shared/datasets (it skips without it).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from memnet.evaluation.benchmark import baseline, evaluate, load_set
from memnet.fsutil import sha256_of
from memnet.inference.engine import Restorer
from memnet.model import PRESETS, MemNetConfig, summarize
from memnet.tasks import make_task, task_kinds
from memnet.weights import zoo
from memnet.weights.files import (
    CONFIG_KEY,
    META_ITERATION,
    META_RECIPE,
    META_RECIPE_YAML,
    read_metadata,
    trained_for,
)
from memnet.weights.loading import load_model

RELEASED = sorted(zoo.REGISTRY)
# The small validation set of each task and the levels the check runs at.
CHECK_SET = {"sr": "Set5", "denoise": "Set12", "jpeg": "Classic5"}
CHECK_LEVELS = {"sr": [2.0, 3.0, 4.0], "denoise": [25.0, 50.0], "jpeg": [10.0, 20.0]}
BASELINE = {"sr": "bicubic", "denoise": "identity", "jpeg": "identity"}


def test_every_task_has_exactly_one_default_released_model() -> None:
    for task in task_kinds():
        marked = [e for e in zoo.REGISTRY.values() if e.task == task and e.default]
        assert len(marked) == 1, f"{task}: {len(marked)} default models"
        assert zoo.default_model(task) is marked[0]


@pytest.mark.parametrize("name", RELEASED)
def test_shipped_file_has_the_registered_hash(name: str) -> None:
    entry = zoo.get(name)
    path = zoo.verified_weights_path(entry)  # raises on a missing or altered file
    assert sha256_of(path) == entry.sha256
    assert load_model(name).sha256 == entry.sha256
    assert entry.iterations > 0
    assert entry.recipe
    assert entry.metrics


@pytest.mark.parametrize("name", RELEASED)
def test_zoo_entry_agrees_with_its_file(name: str) -> None:
    """What the zoo says of a model is what its weights file records (the file is the source)."""
    entry = zoo.get(name)
    metadata = read_metadata(zoo.verified_weights_path(entry))
    config = MemNetConfig.from_dict(json.loads(metadata[CONFIG_KEY]))
    assert config == PRESETS[entry.preset] == entry.config
    recorded = trained_for(metadata)
    assert recorded.task == entry.task
    assert recorded.levels == entry.levels
    assert recorded.level_range == entry.level_range
    loaded = load_model(name)
    assert loaded.network is not None
    assert summarize(loaded.network).parameters == entry.parameters
    assert (loaded.task, loaded.levels, loaded.level_range) == (
        entry.task,
        entry.levels,
        entry.level_range,
    )
    assert metadata[META_RECIPE] == Path(entry.recipe).stem
    assert int(metadata[META_ITERATION]) == entry.iterations
    assert yaml.safe_load(metadata[META_RECIPE_YAML])["model"]["preset"] == entry.preset


@pytest.mark.parametrize("name", RELEASED)
def test_zoo_metrics_are_scores_of_the_task(name: str) -> None:
    """Every metric is keyed SET/LABEL with a label of the model's task, PSNR in dB, SSIM ≤ 1."""
    entry = zoo.get(name)
    for key, score in entry.metrics.items():
        set_name, label = key.split("/")
        assert set_name
        level = float(label.removeprefix({"sr": "x", "denoise": "sigma", "jpeg": "q"}[entry.task]))
        assert make_task(entry.task, level).label == label
        assert 10.0 < score.psnr < 60.0
        assert 0.0 < score.ssim <= 1.0


@pytest.mark.datasets
@pytest.mark.parametrize("name", RELEASED)
def test_released_model_beats_its_baseline_on_a_benchmark_image(name: str, datasets: Path) -> None:
    entry = zoo.get(name)
    bench = load_set(CHECK_SET[entry.task], datasets, kind=entry.task)
    # The smallest image of the set keeps the check to seconds.
    smallest = min(range(len(bench)), key=lambda i: bench.images[i].size)
    one = replace(bench, names=(bench.names[smallest],), images=(bench.images[smallest],))
    model = load_model(name).network
    assert model is not None
    levels = CHECK_LEVELS[entry.task]
    ours = evaluate(entry.task, levels, [one], Restorer(model, device="cpu"), method_name=name)
    base = evaluate(
        entry.task, levels, [one], baseline(BASELINE[entry.task], entry.task), method_name="base"
    )
    for mine, theirs in zip(ours.summary, base.summary, strict=True):
        assert mine.psnr > theirs.psnr + 0.1, f"{name} {mine.label}: {mine.psnr} vs {theirs.psnr}"
        assert mine.ssim > theirs.ssim, f"{name} {mine.label}: {mine.ssim} vs {theirs.ssim}"
