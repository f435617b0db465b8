"""The `memnet` command: version, help, info, and one-line errors for bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from memnet import __version__
from memnet.cli import main


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"memnet {__version__}"


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "info" in out


def test_info_preset_is_measured_from_the_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "m6r6"]) == 0
    out = capsys.readouterr().out
    assert "695,497" in out
    assert "5.78 MFLOP/pixel" in out
    assert "receptive field 149 px" in out


def test_info_lists_presets_and_device(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "m10r10" in out
    assert "device: cpu" in out


def test_unknown_preset_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "m7r7"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "unknown MemNet preset 'm7r7'" in err


def test_console_script_runs_as_a_module() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "memnet", "info", "tiny"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "tiny: M=2 R=2 C=8" in result.stdout
