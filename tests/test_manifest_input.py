"""`memnet restore -i @FILE`: the inputs listed in a manifest, one path per line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from memnet.cli import main
from memnet.errors import MemNetError
from memnet.inference.folders import read_manifest


def _image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((12, 10, 3), 90, dtype=np.uint8)).save(path)
    return path


def test_a_manifest_lists_files_and_a_missing_one_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _image(tmp_path / "set" / "a.png")
    _image(tmp_path / "set" / "deep" / "b.png")
    manifest = tmp_path / "set" / "list.txt"
    manifest.write_text("# to restore\na.png\n\ndeep/b.png\ngone.png\n", encoding="utf-8")
    out = tmp_path / "out"
    command = ["restore", "-i", f"@{manifest}", "-o", str(out), "--task", "sr"]
    assert main([*command, "--method", "bicubic"]) == 1  # gone.png fails, loudly
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == ["a.png", "deep/b.png"]
    assert "gone.png" in capsys.readouterr().err


def test_bad_manifests_get_a_reason(tmp_path: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n", encoding="utf-8")
    with pytest.raises(MemNetError, match="lists no files"):
        read_manifest(empty)
    twice = tmp_path / "twice.txt"
    twice.write_text("a.png\na.png\n", encoding="utf-8")
    with pytest.raises(MemNetError, match="listed twice"):
        read_manifest(twice)
    with pytest.raises(MemNetError, match="cannot read the manifest"):
        read_manifest(tmp_path / "absent.txt")
