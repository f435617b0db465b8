"""`memnet restore` under faults: one pipe for both streams, a full disk, a read-only folder.

Every failure is one line that names its file; the lines keep the order of the files; what was
written before the fault stays intact; no partial or temporary file is left behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from memnet.cli import main

RNG = np.random.default_rng(23)
ERROR = "memnet restore: error: "


def restore(source: Path, target: Path, *extra: str) -> tuple[int, list[str]]:
    """`memnet restore` (identity method: no network) with stdout and stderr on one pipe."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # as a user has it
    command = [sys.executable, "-m", "memnet", "restore", "-i", str(source), "-o", str(target)]
    command += ["--task", "denoise", "--method", "identity", *extra]
    completed = subprocess.run(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=300
    )
    return completed.returncode, completed.stdout.splitlines()


def restore_here(
    source: Path, target: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[str], list[str]]:
    """The same in this process (quicker): exit code, output lines, error lines."""
    command = ["restore", "-i", str(source), "-o", str(target), "--task", "denoise"]
    code = main([*command, "--method", "identity"])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err.splitlines()


def make_folder(folder: Path, count: int, bad_every: int, size: int = 16) -> list[Path]:
    folder.mkdir()
    files = []
    for index in range(count):
        # long names: the output lines overflow a pipe's buffer many times over
        path = folder / f"{index:03d}-{'photo' * 20}.png"
        if index % bad_every == bad_every - 1:
            path.write_bytes(b"\x89PNG\r\n\x1a\n broken")
        else:
            Image.fromarray(RNG.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
        files.append(path)
    return files


def test_one_pipe_keeps_every_line_whole_and_in_order(tmp_path: Path) -> None:
    files = make_folder(tmp_path / "in", 40, bad_every=7)
    code, lines = restore(tmp_path / "in", tmp_path / "out")
    assert code == 1
    assert len(lines) == len(files) + 1
    for path, line in zip(files, lines, strict=False):
        if path.read_bytes().endswith(b"broken"):
            assert line.startswith(f"{ERROR}{path}: "), line
        else:
            assert line == f"{path} -> {tmp_path / 'out' / path.name}", line
    failed = sum(path.read_bytes().endswith(b"broken") for path in files)
    assert lines[-1].startswith("memnet restore (identity")
    assert f"{len(files) - failed} images restored, {failed} failed" in lines[-1]


def check_outputs(folder: Path, written: list[str]) -> None:
    """Every output that was reported is a complete image; nothing else is in the folder."""
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(written), "partial or temporary files left behind"
    for name in written:
        with Image.open(folder / name) as image:
            image.load()


@pytest.fixture
def small_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted for the test (root only), or a skip saying why not."""
    mount = shutil.which("mount")
    if mount is None or os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root and mount(8)")
    point = tmp_path / f"small-{uuid.uuid4().hex[:8]}"
    point.mkdir()
    result = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip() or result.returncode}")
    try:
        yield point
    finally:
        subprocess.run(["umount", str(point)], check=False)


def test_full_disk_fails_each_file_on_one_line_and_keeps_earlier_outputs(
    tmp_path: Path, small_filesystem: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Noise does not compress: each 256² RGB PNG is ~190 KB, so the 1 MiB disk fills after a few.
    files = make_folder(tmp_path / "in", 10, bad_every=1000, size=256)
    out = small_filesystem / "out"
    code, lines, errors = restore_here(tmp_path / "in", out, capsys)
    assert code == 1
    written = [line.split(" -> ")[1] for line in lines if " -> " in line]
    assert written, errors
    assert errors, lines
    assert len(written) + len(errors) == len(files)
    for line in errors:
        assert line.startswith(ERROR), line
        assert "No space left on device" in line, line
        assert any(str(path) in line for path in files), line
    check_outputs(out, [Path(name).name for name in written])


def test_read_only_output_folder_fails_each_file_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = make_folder(tmp_path / "in", 4, bad_every=1000)
    out = tmp_path / "out"
    out.mkdir()
    earlier = out / "earlier.png"
    Image.fromarray(RNG.integers(0, 256, (8, 8), dtype=np.uint8)).save(earlier)
    before = earlier.read_bytes()
    out.chmod(0o555)
    try:
        if os.access(out, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root ignores permissions)")
        code, _lines, errors = restore_here(tmp_path / "in", out, capsys)
    finally:
        out.chmod(0o755)
    assert code == 1
    assert len(errors) == len(files)
    for path, line in zip(files, errors, strict=True):
        assert line.startswith(f"{ERROR}{path}: "), line
        assert "Permission denied" in line, line
    assert earlier.read_bytes() == before
    check_outputs(out, ["earlier.png"])


def test_read_only_filesystem(
    tmp_path: Path, small_filesystem: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Root writes through permission bits, but not through a read-only mount.
    files = make_folder(tmp_path / "in", 3, bad_every=1000)
    out = small_filesystem / "out"
    out.mkdir()
    Image.fromarray(RNG.integers(0, 256, (8, 8), dtype=np.uint8)).save(out / "earlier.png")
    before = (out / "earlier.png").read_bytes()
    subprocess.run(["mount", "-o", "remount,ro", str(small_filesystem)], check=True)
    code, _lines, errors = restore_here(tmp_path / "in", out, capsys)
    assert code == 1
    assert len(errors) == len(files), errors
    for path, line in zip(files, errors, strict=True):
        assert line.startswith(f"{ERROR}{path}: "), line
        assert "Read-only file system" in line, line
    assert (out / "earlier.png").read_bytes() == before
    check_outputs(out, ["earlier.png"])
