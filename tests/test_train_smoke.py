"""CI runs configs/smoke.yaml end to end: train, checkpoint, resume, evaluate; the loss goes down."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from memnet.cli import main
from memnet.training.recipe import load_recipe
from memnet.training.validation import build_validation, run_validation
from memnet.weights.files import load_weights

SMOKE = Path(__file__).parents[1] / "configs" / "smoke.yaml"


def records(run_dir: Path, kind: str) -> list[dict[str, object]]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("kind") == kind]


@pytest.mark.slow
def test_smoke_recipe_trains_resumes_and_evaluates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    run_dir = tmp_path / "smoke"
    assert main(["train", str(SMOKE), "--out", str(run_dir), "--quiet"]) == 0
    for name in ("last.safetensors", "last.state.pt", "best.safetensors"):
        assert (run_dir / "checkpoints" / name).is_file()
    assert (run_dir / "checkpoints" / "snapshots" / "iter_00000060.safetensors").is_file()
    assert (run_dir / "recipe.yaml").is_file()

    # the loss went down (log lines average 10 steps each)
    losses = [float(r["loss"]) for r in records(run_dir, "train")]  # type: ignore[arg-type]
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < 0.9 * sum(losses[:2]) / 2
    validations = records(run_dir, "val")
    first, last = (float(v["psnr_mean"]) for v in (validations[0], validations[-1]))  # type: ignore[arg-type]
    assert validations[0]["iteration"] == 0
    assert last > first + 0.1  # better than the untrained (identity = bicubic) network

    # resume: extend the finished run by 30 iterations
    extend = ["--resume", "auto", "--set", "train.iterations=150", "--quiet"]
    assert main(["train", str(SMOKE), "--out", str(run_dir), *extend]) == 0
    events = records(run_dir, "event")
    assert [e["event"] for e in events] == ["start", "completed", "resume", "completed"]
    assert events[2]["iteration"] == 120
    assert events[2]["recipe_changes"] == ["train.iterations"]
    assert records(run_dir, "train")[-1]["iteration"] == 150

    # evaluate the best weights with the exact protocol, as validation did
    model, _meta = load_weights(run_dir / "checkpoints" / "best.safetensors")
    recipe = load_recipe(run_dir / "recipe.yaml")
    items = build_validation(
        recipe.validation, "sr", data_root=None, synthetic=recipe.data.synthetic
    )
    scores = run_validation(model, items, device=model.reconstruction.weight.device, tile=None)
    best = max(float(v["psnr_mean"]) for v in records(run_dir, "val"))  # type: ignore[arg-type]
    mean = sum(s["psnr"] for s in scores.values()) / len(scores)
    # the same validation recomputed; metrics.jsonl keeps full float precision
    assert mean == pytest.approx(best, abs=1e-6)
    assert mean > first + 0.1
    assert time.monotonic() - started < 120


def test_cli_reports_recipe_errors_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMOKE.read_text().replace("patch_size: 24", "patch_sise: 24"))
    assert main(["train", str(bad), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{bad}:" in err
    assert "data.patch_sise: unknown key (did you mean 'patch_size'?)" in err
    assert not (tmp_path / "run").exists()  # nothing started


def test_cli_check_prints_the_resolved_recipe(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(SMOKE), "--check", "--set", "optim.lr=1e-3"]) == 0
    out = capsys.readouterr().out
    assert "lr: 0.001" in out
    assert "blocks: 2" in out  # the preset resolved into M/R/C


def test_cli_refuses_to_overwrite_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", str(SMOKE), "--out", str(tmp_path), "--quiet", "--set", "train.iterations=2"]
    assert main([*args, "--set", "validation.interval=0"]) == 0
    assert main([*args, "--set", "validation.interval=0"]) == 1
    assert "pass --resume auto" in capsys.readouterr().err


def test_cli_benchmark_reports_patches_per_second(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["train", str(SMOKE), "--benchmark", "2", "--set", "train.batch_size=4"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "batch 4 of 24x24" in out
    assert float(out.split(" patches/s")[0].split()[-1]) > 0
