"""Every image people have, every task: format × mode × ICC/EXIF × task × --ext through `memnet restore`.

Each source file (tests/image_cases.py: every mode each format stores natively, without and with
an ICC profile and an EXIF rotation) is restored by the CLI for every task and output extension
with the baseline methods (bicubic for SR, identity otherwise: the network is irrelevant to
formats), and for every task once more through a tiny identity-initialised network (the Restorer's
path). Every output must have the right size, mode, bit depth and profile, and, where the output
format is lossless, the right pixels. One folder run per (task, extension) restores all sources;
each source is then checked as a case of its own. Pairwise: every (source, task), (source, ext)
and (task, ext) pair occurs, in 62 × 6 cases instead of 62 × 6 × 5.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from image_cases import SRGB_ICC, Decoded, Source, decode_output, sources
from memnet.cli import main
from memnet.imaging.resize import imresize
from memnet.model import PRESETS, MemNet
from memnet.weights.files import save_weights

TASKS: dict[str, tuple[str, ...]] = {
    "sr-x2": ("--task", "sr", "--scale", "2"),
    "sr-x3": ("--task", "sr", "--scale", "3"),
    "sr-x4": ("--task", "sr", "--scale", "4"),
    "sr-x2.5": ("--task", "sr", "--scale", "2.5"),
    "denoise": ("--task", "denoise", "--sigma", "25"),
    "jpeg": ("--task", "jpeg", "--quality", "10"),
}
EXTS = ("auto", "png", "jpg", "webp", "tiff")
SUFFIX_FORMAT = {".png": "PNG", ".jpg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF",
                 ".bmp": "BMP"}  # fmt: skip
ICC_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF")
ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")
LOSSLESS_FORMATS = ("PNG", "TIFF", "BMP")
# A lossy encoder at quality 95 moves each luminance value a little (chroma much more: it is
# subsampled); a wrong mapping (inverted, black, another picture) moves the mean absolute
# luminance difference of random pixels by ~1/3.
LOSSY_MEAN_BOUND = 0.1
LUMA = np.array([0.299, 0.587, 0.114])
SOURCES = sources()


@dataclass(frozen=True)
class Run:
    code: int
    errors: dict[str, str]  # source file name -> its error line
    out: Path
    warnings: dict[str, str]  # source file name -> its warning line


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    # in memory where there is a tmpfs: every output is fsynced, which a disk makes slow
    shm = Path("/dev/shm")
    root = (
        Path(tempfile.mkdtemp(prefix="memnet-matrix-", dir=shm))
        if shm.is_dir() and os.access(shm, os.W_OK)
        else tmp_path_factory.mktemp("matrix")
    )
    (root / "in").mkdir()
    for source in SOURCES:
        source.write(root / "in")
    model = MemNet.from_config(PRESETS["tiny"], identity_init=True).eval()
    save_weights(model, root / "tiny.safetensors")
    yield root
    shutil.rmtree(root, ignore_errors=True)


_runs: dict[tuple[str, str, str], Run] = {}


def restored(workspace: Path, task: str, ext: str, engine: str) -> Run:
    """Restore the whole source folder once per (task, ext, engine); later cases reuse it."""
    key = (task, ext, engine)
    if key not in _runs:
        folder = workspace / f"in-{engine}-{task}-{ext}"  # the sources of this cell only
        folder.mkdir()
        for name in sorted(CELLS[engine, task, ext]):
            os.link(workspace / "in" / name, folder / name)
        out = workspace / f"out-{engine}-{task}-{ext}"
        if engine == "network":
            model = ("--weights", str(workspace / "tiny.safetensors"), "--tile", "0")
        else:
            model = ("--method", "bicubic" if task.startswith("sr") else "identity")
        args = ["restore", "-i", str(folder), "-o", str(out), "--ext", ext, "--quiet"]
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            code = main([*args, *TASKS[task], *model])
        errors, warnings = {}, {}
        for line in stderr.getvalue().splitlines():
            for source in SOURCES:
                if source.name in line:
                    (warnings if "warning:" in line else errors)[source.name] = line
        _runs[key] = Run(code, errors, out, warnings)
    return _runs[key]


def output_suffix(source: Source, task: str, ext: str) -> str:
    if ext != "auto":
        return "." + ext
    if task == "jpeg":
        return ".png"  # deblocking writes PNG unless told otherwise (no new JPEG artefacts)
    suffix = Path(source.name).suffix
    return suffix if suffix in SUFFIX_FORMAT else ".png"  # GIF is read, not written


def scale_of(task: str) -> float:
    return float(task.removeprefix("sr-x")) if task.startswith("sr") else 1.0


def expected_values(source: Source, workspace: Path, task: str, fmt: str) -> np.ndarray:
    """The output's values (H, W, C), alpha last where `fmt` keeps it, in [0, 1]."""
    want = source.expected(workspace / "in")
    scale = scale_of(task)

    def prepare(channel: np.ndarray) -> np.ndarray:
        # Bicubic is linear with weights summing to 1, so bicubic on Y/Cb/Cr (what SR does)
        # equals bicubic on R, G and B; the identity keeps the channel.
        return np.clip(imresize(channel, scale), 0, 1) if scale != 1 else channel

    pixels = want.pixels[..., None] if want.gray else want.pixels
    planes = [prepare(pixels[..., c]) for c in range(pixels.shape[2])]
    if fmt == "WEBP" and want.gray:
        planes = planes * 3  # WebP has no gray layout
    if want.alpha is not None and fmt in ALPHA_FORMATS:
        planes.append(prepare(want.alpha))
    return np.dstack(planes)


def expected_mode(source: Source, fmt: str) -> str:
    colour = "RGB" if not source.gray or fmt == "WEBP" else "L"  # WebP has no gray layout
    keeps_alpha = source.has_alpha and fmt in ALPHA_FORMATS
    return {"L": "LA", "RGB": "RGBA"}[colour] if keeps_alpha else colour


def check_output(source: Source, workspace: Path, run: Run, task: str, ext: str) -> None:
    assert run.code == (1 if run.errors else 0)
    assert source.name not in run.errors, run.errors[source.name]
    target = run.out / (Path(source.name).stem + output_suffix(source, task, ext))
    assert target.is_file(), f"{target} was not written"
    fmt = SUFFIX_FORMAT[target.suffix]
    # A transparent source written where the format has no alpha is said so, and only then.
    dropped = source.has_alpha and fmt not in ALPHA_FORMATS
    assert (source.name in run.warnings) == dropped, run.warnings.get(source.name)
    got: Decoded = decode_output(target)
    want = source.expected(workspace / "in")
    scale = scale_of(task)
    height, width = want.pixels.shape[:2]
    size = (math.ceil(height * scale), math.ceil(width * scale))
    assert got.values.shape[:2] == size, f"size {got.values.shape[:2]}, expected {size}"
    assert got.mode == expected_mode(source, fmt)
    assert got.bit_depth == (16 if want.bit_depth == 16 and fmt in ("PNG", "TIFF") else 8)
    keeps_icc = want.icc_profile is not None and fmt in ICC_FORMATS
    assert got.icc_profile == (SRGB_ICC if keeps_icc else None)
    values = expected_values(source, workspace, task, fmt)
    if fmt in LOSSLESS_FORMATS:
        # one step of the output's bit depth: rounding of float results at a .5 boundary
        peak = 2**got.bit_depth - 1
        steps = np.abs(np.round(got.values * peak) - np.round(values * peak))
        assert steps.max() <= 1, f"pixels differ by up to {steps.max():.0f}/{peak}"
    else:
        assert np.abs(luminance(got.values) - luminance(values)).mean() < LOSSY_MEAN_BOUND


def luminance(values: np.ndarray) -> np.ndarray:
    colour = values.shape[2] >= 3
    return values[..., :3] @ LUMA if colour else values[..., 0]


CELLS: dict[tuple[str, str, str], set[str]] = {}  # (engine, task, ext) -> its source names


def pairwise(engine: str, offset: int, *, with_meta: bool = True) -> list[object]:
    """Every (source, task) pair once, the extension rotating so that every (source, ext) and
    every (task, ext) pair occurs too: all pairs of the three factors in len(sources) × 6 cases."""
    cases = []
    chosen = [s for s in SOURCES if with_meta or not s.meta]
    for i, source in enumerate(chosen):
        for j, task in enumerate(TASKS):
            ext = EXTS[(i + j + offset) % len(EXTS)]
            CELLS.setdefault((engine, task, ext), set()).add(source.name)
            cases.append(pytest.param(source, task, ext, id=f"{source.name}-{task}-{ext}"))
    return cases


@pytest.mark.parametrize(("source", "task", "ext"), pairwise("baseline", 0))
def test_every_format_mode_task_and_extension(
    workspace: Path, source: Source, task: str, ext: str
) -> None:
    check_output(source, workspace, restored(workspace, task, ext, "baseline"), task, ext)


@pytest.mark.parametrize(("source", "task", "ext"), pairwise("network", 2, with_meta=False))
def test_every_mode_and_task_through_a_network(
    workspace: Path, source: Source, task: str, ext: str
) -> None:
    check_output(source, workspace, restored(workspace, task, ext, "network"), task, ext)


def _refused_sources(folder: Path) -> dict[str, str]:
    """Files memnet cannot restore faithfully, each with what its reason must say."""
    Image.fromarray(np.zeros((5, 7), np.uint8)).save(folder / "tiny.png")
    Image.fromarray(np.full((12, 16), -3, np.int32)).save(folder / "negative.tif")
    Image.fromarray(np.full((12, 16), 70000, np.int32)).save(folder / "wide.tif")
    nan = np.full((12, 16), np.nan, np.float32)
    Image.fromarray(nan).save(folder / "nan.tif")
    return {
        "tiny.png": "at least 8x8",
        "negative.tif": "save the image as 8- or 16-bit",
        "wide.tif": "save the image as 8- or 16-bit",
        "nan.tif": "save the image without them",
    }


def test_what_cannot_be_restored_is_refused_with_a_reason_that_says_what_to_do(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    reasons = _refused_sources(folder)
    Image.fromarray(np.zeros((12, 16), np.uint8)).save(folder / "good.png")
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = main(["restore", "-i", str(folder), "-o", str(tmp_path / "out"), "--quiet",
                     "--task", "denoise", "--method", "identity"])  # fmt: skip
    assert code == 1
    lines = stderr.getvalue().splitlines()
    for name, advice in reasons.items():
        mine = [line for line in lines if name in line]
        assert len(mine) == 1, lines
        assert advice in mine[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]
