"""`memnet compare` builds a comparison sheet from a clean picture and a model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from memnet.cli import main
from memnet.evaluation.side_by_side import best_crop
from memnet.model import MemNet
from memnet.weights.files import save_weights


@pytest.fixture
def identity_weights(tmp_path: Path) -> Path:
    path = tmp_path / "identity.safetensors"
    model = MemNet(blocks=1, recursions=1, channels=4, identity_init=True).eval()
    save_weights(model, path, {"memnet.task": "sr"})
    return path


@pytest.fixture
def clean_picture(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:90, 0:120]
    rgb = np.dstack([128 + 100 * np.sin(xx / 3.0), 128 + 80 * np.cos(yy / 5.0), 90 + 0 * xx])
    rgb[30:60, 40:80] += rng.normal(0, 30, (30, 40, 1))
    path = tmp_path / "clean.png"
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path)
    return path


def test_best_crop_finds_the_detailed_region() -> None:
    image = np.zeros((100, 100))
    image[60:90, 10:40] = np.random.default_rng(1).random((30, 30))
    top, left = best_crop(image, 32)
    assert 55 <= top <= 62
    assert 5 <= left <= 12


def test_compare_sr_sheet(
    tmp_path: Path, clean_picture: Path, identity_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sheet.png"
    code = main(
        [
            "compare",
            "-i",
            str(clean_picture),
            "-o",
            str(out),
            "--task",
            "sr",
            "--scale",
            "3",
            "--weights",
            str(identity_weights),
            "--zoom",
            "1",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    # an identity network reproduces bicubic exactly: same PSNR for both panels
    scores = [part.split()[-2] for part in printed.strip().split(": ", 1)[1].split(", ")]
    assert len(scores) == 2
    assert scores[0] == scores[1]
    with Image.open(out) as sheet:
        assert sheet.width > 4 * 80  # four panels


def test_compare_refuses_to_overwrite(
    tmp_path: Path, clean_picture: Path, identity_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sheet.png"
    out.write_bytes(b"keep me")
    code = main(
        ["compare", "-i", str(clean_picture), "-o", str(out), "--weights", str(identity_weights)]
    )
    assert code == 1
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"keep me"


def test_compare_rejects_a_crop_outside_the_picture(
    tmp_path: Path, clean_picture: Path, identity_weights: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "compare",
            "-i",
            str(clean_picture),
            "-o",
            str(tmp_path / "s.png"),
            "--weights",
            str(identity_weights),
            "--crop",
            "100,50,64",
        ]
    )
    assert code == 1
    assert "does not fit" in capsys.readouterr().err
