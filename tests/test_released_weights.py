"""The weights shipped in the package: each file is intact, and each model beats its baseline.

The quality check restores one small benchmark image per released model with the exact test
protocol of `memnet eval` and needs ../shared/datasets (it skips without it).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from memnet.evaluation.benchmark import baseline, evaluate, load_set
from memnet.inference.engine import Restorer
from memnet.weights import zoo

RELEASED = sorted(zoo.REGISTRY)
# The small validation set of each task and the levels the check runs at.
CHECK_SET = {"sr": "Set5", "denoise": "Set12", "jpeg": "Classic5"}
CHECK_LEVELS = {"sr": [2.0, 3.0, 4.0], "denoise": [25.0, 50.0], "jpeg": [10.0, 20.0]}
BASELINE = {"sr": "bicubic", "denoise": "identity", "jpeg": "identity"}


def test_every_task_has_a_released_model() -> None:
    for task in ("sr", "denoise", "jpeg"):
        assert zoo.default_for(task) is not None, f"no released model for {task}"


@pytest.mark.parametrize("name", RELEASED)
def test_shipped_file_has_the_registered_hash(name: str) -> None:
    entry = zoo.get(name)
    path = zoo.verified_weights_path(entry)  # raises on a missing or altered file
    assert zoo.sha256_of(path) == entry.sha256
    model, loaded = zoo.load_model(name)
    assert loaded.config == model.config
    assert entry.iterations > 0
    assert entry.recipe
    assert entry.metrics


@pytest.mark.datasets
@pytest.mark.parametrize("name", RELEASED)
def test_released_model_beats_its_baseline_on_a_benchmark_image(name: str, datasets: Path) -> None:
    entry = zoo.get(name)
    bench = load_set(CHECK_SET[entry.task], datasets, kind=entry.task)
    # The smallest image of the set keeps the check to seconds.
    smallest = min(range(len(bench)), key=lambda i: bench.images[i].size)
    one = replace(bench, names=(bench.names[smallest],), images=(bench.images[smallest],))
    model, _ = zoo.load_model(name)
    levels = CHECK_LEVELS[entry.task]
    ours = evaluate(entry.task, levels, [one], Restorer(model, device="cpu"), method_name=name)
    base = evaluate(
        entry.task, levels, [one], baseline(BASELINE[entry.task], entry.task), method_name="base"
    )
    for mine, theirs in zip(ours.summary, base.summary, strict=True):
        assert mine.psnr > theirs.psnr + 0.1, f"{name} {mine.label}: {mine.psnr} vs {theirs.psnr}"
        assert mine.ssim > theirs.ssim, f"{name} {mine.label}: {mine.ssim} vs {theirs.ssim}"
