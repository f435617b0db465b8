"""The restore job without the command line: what `memnet restore` runs, called from Python."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from memnet.cli import build_parser
from memnet.errors import MemNetError
from memnet.scale.restore_job import RestoreOptions, load_settings, restore_files
from memnet.tasks import SuperResolution

RNG = np.random.default_rng(11)


def photo(path: Path, size: tuple[int, int] = (17, 13)) -> Path:
    Image.fromarray(RNG.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def test_a_folder_is_restored_and_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in"
    source.mkdir()
    photo(source / "a.png")
    (source / "broken.png").write_bytes(b"not an image")
    options = RestoreOptions(
        input=str(source),
        output=str(tmp_path / "out"),
        task="sr",
        levels={"scale": 3},
        method="bicubic",
    )
    (tmp_path / "out").mkdir()
    assert restore_files(options) is False  # one input failed
    captured = capsys.readouterr()
    with Image.open(tmp_path / "out" / "a.png") as restored:
        assert restored.size == (17 * 3, 13 * 3)
    assert "1 image restored, 1 failed" in captured.out
    assert "broken.png" in captured.err


def test_a_level_for_the_task_comes_from_the_registry_when_not_given() -> None:
    settings = load_settings(RestoreOptions(input="x", output="y", task="sr", method="bicubic"))
    assert settings["scale"] == SuperResolution.default_level
    assert settings["quality"] is None  # other tasks' levels stay unset


def test_a_method_without_a_task_is_refused() -> None:
    with pytest.raises(MemNetError, match="--method bicubic needs --task"):
        load_settings(RestoreOptions(input="x", output="y", method="bicubic"))


def test_every_option_of_the_job_is_an_option_of_the_command() -> None:
    # restore's run() fills RestoreOptions from the parsed arguments by name
    args = build_parser().parse_args(["restore", "-i", "x", "-o", "y"])
    missing = [
        f.name for f in fields(RestoreOptions) if f.name != "levels" and f.name not in vars(args)
    ]
    assert missing == []
