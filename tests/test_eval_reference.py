"""Acceptance: the evaluation reproduces the published baseline tables (needs the benchmark sets).

Bicubic SR (Y, rounded, shave = scale) and JPEG (Y, libjpeg at quality q) must give the
reference numbers of docs/memnet-spec §4 to ±0.01 dB PSNR and ±0.001 SSIM. (Set14 is this
data root's copy of it, whose numbers differ from the published ones in the third digit.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memnet.catalog.locate import KNOWN_SETS
from memnet.cli import main
from memnet.evaluation.benchmark import baseline, evaluate, load_set

pytestmark = [pytest.mark.datasets, pytest.mark.slow]

BICUBIC = {
    "Set5": {2: (33.66, 0.9299), 3: (30.39, 0.8682), 4: (28.42, 0.8104)},
    "Set14": {2: (30.23, 0.8687), 3: (27.54, 0.7736), 4: (26.00, 0.7019)},
    "BSD100": {2: (29.56, 0.8431), 3: (27.21, 0.7385), 4: (25.96, 0.6675)},
}
JPEG = {
    "Classic5": {10: (27.82, 0.7595), 20: (30.12, 0.8344)},
    "LIVE1": {10: (27.77, 0.7730), 20: (30.07, 0.8512)},
}


def require_sets(root: Path, names: list[str]) -> None:
    """Skip, naming them, when some of the benchmark sets are not under the data root."""
    missing = [name for name in names if not (root / KNOWN_SETS[name]).is_dir()]
    if missing:
        pytest.skip(f"benchmark sets {', '.join(missing)} not found under {root}")


def test_bicubic_sr_reproduces_the_published_table(datasets: Path) -> None:
    require_sets(datasets, list(BICUBIC))
    sets = [load_set(name, datasets) for name in BICUBIC]
    assert [len(s) for s in sets] == [5, 14, 100]
    report = evaluate("sr", [2, 3, 4], sets, baseline("bicubic", "sr"), method_name="bicubic")
    for name, by_scale in BICUBIC.items():
        for scale, (psnr, ssim) in by_scale.items():
            cell = report.score(name, scale)
            assert cell.psnr == pytest.approx(psnr, abs=0.01), (name, scale)
            assert cell.ssim == pytest.approx(ssim, abs=0.001), (name, scale)


def test_jpeg_reproduces_the_published_table(datasets: Path) -> None:
    require_sets(datasets, list(JPEG))
    sets = [load_set(name, datasets) for name in JPEG]
    report = evaluate("jpeg", [10, 20], sets, baseline("identity", "jpeg"), method_name="identity")
    for name, by_quality in JPEG.items():
        for quality, (psnr, ssim) in by_quality.items():
            cell = report.score(name, quality)
            assert cell.psnr == pytest.approx(psnr, abs=0.01), (name, quality)
            assert cell.ssim == pytest.approx(ssim, abs=0.001), (name, quality)


def test_cli_prints_and_writes_the_published_numbers(
    datasets: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_sets(datasets, ["Set5", *JPEG])
    common = ["--data-root", str(datasets), "--out", str(tmp_path), "--quiet"]
    assert main(["eval", "--task", "sr", "--sets", "Set5", "--method", "bicubic", *common]) == 0
    stdout = capsys.readouterr().out
    assert "| Set5 | 33.66/0.9299 | 30.39/0.8682 | 28.42/0.8104 |" in stdout

    args = ["--task", "jpeg", "--qualities", "10,20", "--sets", "Classic5,LIVE1"]
    assert main(["eval", *args, "--method", "identity", *common]) == 0
    summary = json.loads((tmp_path / "jpeg-identity.json").read_text())
    for row in summary["results"]:
        psnr, ssim = JPEG[row["set"]][int(row["level"])]
        assert row["psnr"] == pytest.approx(psnr, abs=0.01)
        assert row["ssim"] == pytest.approx(ssim, abs=0.001)
    lines = (tmp_path / "jpeg-identity.csv").read_text().splitlines()
    assert len(lines) == 1 + 2 * (5 + 29)
