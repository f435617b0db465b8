"""The model tables of README.md and docs/results.md are what tools/make_model_tables.py writes."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from memnet.weights import zoo

TOOL = Path(__file__).resolve().parents[1] / "tools" / "make_model_tables.py"


@pytest.fixture(scope="module")
def tables() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_model_tables", TOOL)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_committed_tables_are_what_the_script_writes(tables: ModuleType) -> None:
    for path, text in tables.expected_texts().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.name}: run python tools/make_model_tables.py"
        )
        assert text.count("<!-- zoo-table:") == text.count("<!-- /zoo-table -->") >= 1


@pytest.mark.parametrize("name", sorted(zoo.REGISTRY))
def test_zoo_metrics_are_the_per_set_tables_numbers(tables: ModuleType, name: str) -> None:
    """Each measured score in the zoo is the one docs/results.md reports for the model."""
    cells = tables.results_cells(tables.RESULTS.read_text(encoding="utf-8"))
    entry = zoo.get(name)
    for key, score in entry.metrics.items():
        set_name, label = key.split("/")
        level = float(label.removeprefix({"sr": "x", "denoise": "sigma", "jpeg": "q"}[entry.task]))
        title = tables.LEVEL_TITLE[entry.task].format(level)
        assert cells[(set_name, title, name)] == f"{score.psnr:.2f}/{score.ssim:.4f}", key
    measured = {(s, t) for (s, t, column), cell in cells.items() if column == name and cell}
    assert len(measured) == len(entry.metrics), "docs/results.md has scores the zoo lacks"


def test_a_changed_score_makes_the_tables_stale(
    tables: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = zoo.get("memnet-sr")
    changed = {**entry.metrics, "Set5/x2": zoo.Score(40.0, 0.99)}
    monkeypatch.setitem(zoo.REGISTRY, "memnet-sr", dataclasses.replace(entry, metrics=changed))
    readme = tables.expected_texts()[tables.README]
    assert "| 40.00 / 32.83 / 30.53 |" in readme
    assert readme != tables.README.read_text(encoding="utf-8")
