"""Fuzzing the decode path and the recipe loader with hypothesis: zero tracebacks, zero partial outputs.

Targets:
- `memnet.imaging.reading.read_image` on byte-mutated PNG/JPEG/TIFF/BMP/WebP/GIF files (bit flips, random
  bytes, header fields set to extremes, insertions, deletions, truncations, splices of two files):
  it returns a sane Picture or raises MemNetError with one line naming the file;
- `memnet restore` on a folder of such files: exit 1 when any is bad, one error line per bad
  file, an output exactly for each file that decodes, every output complete, no temporary files;
- `memnet.training.recipe.load_recipe` on recipe YAML mutated as text and as data, and on `--set` values:
  a Recipe or a RecipeError with one line naming the file (or the --set), nothing else.

CI runs a fixed, small number of examples from a fixed seed (a few seconds per target). A longer
search with fresh random examples:

    MEMNET_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest -q tests/test_fuzz.py

Whatever a search finds is fixed and kept below as a regression file built in code.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from image_cases import Source
from memnet.cli import main
from memnet.errors import MemNetError
from memnet.imaging.picture import PIXEL_DTYPE, Picture
from memnet.imaging.reading import read_image
from memnet.training.recipe import RecipeError, load_recipe

LONG_RUN = int(os.environ.get("MEMNET_FUZZ_EXAMPLES", "0"))
FUZZ = settings(
    max_examples=LONG_RUN or 60,
    deadline=None,
    derandomize=not LONG_RUN,  # CI: the same examples every run; a long run searches afresh
    database=None,
    suppress_health_check=list(HealthCheck),
)
CONFIGS = Path(__file__).resolve().parents[1] / "configs"

# Seed files: one small valid file per format and layout family.
SEED_SOURCES = [
    Source("PNG", "RGB"),
    Source("PNG", "PA"),
    Source("PNG", "I;16"),
    Source("PNG", "RGBA;16", meta=True),
    Source("JPEG", "RGB", meta=True),
    Source("JPEG", "CMYK"),
    Source("WEBP", "RGBA"),
    Source("TIFF", "RGB", meta=True),
    Source("TIFF", "RGB;16"),
    Source("TIFF", "F"),
    Source("BMP", "P"),
    Source("GIF", "PA"),
]
SEEDS = {source.name: source.encode() for source in SEED_SOURCES}
EXTREMES = (b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00", b"\xff\xff", b"\xff\xff\xff\xff",
            b"\x7f\xff\xff\xff", b"\x00\x00\x00\x00", b"\x00\x01\x00\x00")  # fmt: skip


@st.composite
def mutated_image(draw: st.DrawFn) -> tuple[str, bytes]:
    """(file name, bytes): a seed file with 1..6 mutations, biased towards its header."""
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        head = min(len(data) - 1, 96)
        at = draw(st.integers(0, head) | st.integers(0, len(data) - 1))
        kind = draw(st.sampled_from(("flip", "byte", "extreme", "insert", "delete", "truncate",
                                     "splice")))  # fmt: skip
        if kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "byte":
            data[at] = draw(st.integers(0, 255))
        elif kind == "extreme":
            value = draw(st.sampled_from(EXTREMES))
            data[at : at + len(value)] = value
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "truncate":
            del data[at:]
        else:  # the tail of another file: chunks and markers in unexpected places
            other = SEEDS[draw(st.sampled_from(sorted(SEEDS)))]
            data[at:] = other[draw(st.integers(0, len(other) - 1)) :]
    return name, bytes(data)


def check_picture(picture: Picture) -> None:
    """What every decoded picture must be, whatever the file was."""
    assert picture.pixels.dtype == PIXEL_DTYPE
    assert picture.pixels.ndim == 2 or (picture.pixels.ndim == 3 and picture.pixels.shape[2] == 3)
    assert np.isfinite(picture.pixels).all()
    assert picture.pixels.min() >= 0.0
    assert picture.pixels.max() <= 1.0
    assert picture.bit_depth in (8, 16)
    if picture.alpha is not None:
        assert picture.alpha.shape == picture.pixels.shape[:2]
        assert np.isfinite(picture.alpha).all()


# What the targets saw, for tools/reliability_report.py: decoded/refused files, loaded/refused
# recipes, restored/refused files of the folder runs.
OUTCOMES: Counter[str] = Counter()


def read_or_reason(path: Path) -> Picture | str:
    """The picture, or the one-line reason it was refused; any other exception fails the test."""
    try:
        picture = read_image(path)
    except MemNetError as error:
        reason = str(error)
        assert "\n" not in reason
        assert str(path) in reason
        OUTCOMES["decode: refused with a reason"] += 1
        return reason
    check_picture(picture)
    OUTCOMES["decode: decoded"] += 1
    return picture


@FUZZ
@given(case=mutated_image())
def test_decoding_a_mutated_file_gives_a_picture_or_a_one_line_reason(
    tmp_path_factory: pytest.TempPathFactory, case: tuple[str, bytes]
) -> None:
    name, data = case
    path = tmp_path_factory.mktemp("fuzz") / name
    path.write_bytes(data)
    read_or_reason(path)


@settings(FUZZ, max_examples=max(LONG_RUN // 20, 12))
@given(cases=st.lists(mutated_image(), min_size=2, max_size=6))
def test_restoring_a_folder_of_mutated_files_loses_nothing(
    tmp_path_factory: pytest.TempPathFactory, cases: list[tuple[str, bytes]]
) -> None:
    root = tmp_path_factory.mktemp("fuzz-folder")
    folder, out = root / "in", root / "out"
    folder.mkdir()
    outcomes: dict[str, Picture | str] = {}
    for index, (name, data) in enumerate(cases):
        path = folder / f"{index}-{name}"
        path.write_bytes(data)
        outcomes[path.name] = read_or_reason(path)
    good = [name for name, outcome in outcomes.items() if isinstance(outcome, Picture)]
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        code = main(["restore", "-i", str(folder), "-o", str(out), "--task", "denoise",
                     "--method", "identity", "--quiet"])  # fmt: skip
    lines = stderr.getvalue().splitlines()
    assert "Traceback" not in stderr.getvalue()
    assert not any("internal error" in line for line in lines), lines
    # nothing but memnet's own lines: no warnings or log records of the decoders
    assert all(line.startswith("memnet restore: ") for line in lines), lines
    written = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert not [name for name in written if name.startswith(".")]  # no temporary files left
    restored = {Path(name).stem for name in written}
    failed = [name for name in outcomes if Path(name).stem not in restored]
    assert code == (1 if failed else 0)
    for name in failed:  # each failure has exactly one line, which names the file
        assert sum(name in line for line in lines if "error:" in line) == 1, lines
    for name in written:  # every output is a complete image file
        with Image.open(out / name) as image:
            image.load()
    OUTCOMES["restore: restored"] += len(written)
    OUTCOMES["restore: refused with a reason"] += len(failed)
    # A file that decodes is restored unless the restore itself has a reason (e.g. too small).
    for name in good:
        assert Path(name).stem in restored or any(name in line for line in lines)


# --------------------------------------------------------------------------------------------
# recipes
# --------------------------------------------------------------------------------------------

RECIPE_TEXTS = {p.name: p.read_text() for p in sorted(CONFIGS.glob("*.yaml"))}
YAML_CHARS = ":-[]{}#&*!|>'\"%@`,?\n\t .0123456789eE+~nulltrue"
leaf_values = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["sr", "denoise", "jpeg", "synthetic", "auto", "tiny", "m6r6", "cosine"])
)
yaml_values = st.recursive(
    leaf_values,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mutated_recipe_text(draw: st.DrawFn) -> str:
    """A recipe file with 1..8 character edits drawn from YAML's syntax."""
    text = list(RECIPE_TEXTS[draw(st.sampled_from(sorted(RECIPE_TEXTS)))])
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, max(len(text) - 1, 0)))
        kind = draw(st.sampled_from(("insert", "replace", "delete", "duplicate")))
        char = draw(st.sampled_from(YAML_CHARS))
        if kind == "insert":
            text.insert(at, char)
        elif kind == "replace" and text:
            text[at] = char
        elif kind == "delete" and text:
            del text[at : at + draw(st.integers(1, 20))]
        elif text:
            line_end = at + draw(st.integers(1, 80))
            text[at:at] = text[at:line_end]
    return "".join(text)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found += _paths(value, (*prefix, index))
    return found


@st.composite
def mutated_recipe_data(draw: st.DrawFn) -> str:
    """A recipe whose values (anywhere in the tree) are replaced by arbitrary YAML values."""
    data = yaml.safe_load(RECIPE_TEXTS[draw(st.sampled_from(sorted(RECIPE_TEXTS)))])
    paths = _paths(data)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(paths))
        node = data
        try:
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = draw(yaml_values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier replacement removed this branch
    return yaml.safe_dump(data, allow_unicode=True)


def load_or_reason(path: Path, overrides: list[str] | None = None) -> None:
    kind = "--set" if overrides else "recipe"
    try:
        load_recipe(path, overrides)
    except RecipeError as error:
        reason = str(error)
        assert "\n" not in reason
        assert str(path) in reason or "--set" in reason, reason
        OUTCOMES[f"{kind}: refused with a reason"] += 1
    else:
        OUTCOMES[f"{kind}: loaded"] += 1


@FUZZ
@given(text=mutated_recipe_text() | mutated_recipe_data())
def test_a_mutated_recipe_loads_or_gives_a_one_line_reason(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    path = tmp_path_factory.mktemp("recipe") / "recipe.yaml"
    path.write_text(text, encoding="utf-8")
    load_or_reason(path)


@FUZZ
@given(
    key=st.sampled_from(
        [
            "optim.lr",
            "train.iterations",
            "task.levels",
            "model",
            "data.sources",
            "validation.sets",
            "a",
            "task",
            "train.threads",
        ]
    )
    | st.text(max_size=12),
    value=st.text(alphabet=YAML_CHARS + "abc", max_size=24),
)
def test_a_set_override_loads_or_gives_a_one_line_reason(
    tmp_path_factory: pytest.TempPathFactory, key: str, value: str
) -> None:
    path = tmp_path_factory.mktemp("recipe") / "smoke.yaml"
    path.write_text(RECIPE_TEXTS["smoke.yaml"], encoding="utf-8")
    load_or_reason(path, [f"{key}={value}"])


# --------------------------------------------------------------------------------------------
# regressions: what the searches found, as files made in code
# --------------------------------------------------------------------------------------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def restore_folder_stderr(folder: Path, out: Path) -> tuple[int, list[str]]:
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        code = main(["restore", "-i", str(folder), "-o", str(out), "--task", "denoise",
                     "--method", "identity", "--quiet"])  # fmt: skip
    return code, stderr.getvalue().splitlines()


def tiff_with_bad_tag_types() -> bytes:
    """A 16-bit TIFF whose first IFD entries have an invalid data type (769)."""
    data = bytearray(Source("TIFF", "RGB;16").encode())
    (ifd,) = struct.unpack("<I", data[4:8])
    for entry in range(3):
        at = ifd + 2 + 12 * entry
        data[at + 2 : at + 4] = struct.pack("<H", 769)
    return bytes(data)


def test_regression_a_tiff_with_any_layout_is_read_or_refused(tmp_path: Path) -> None:
    # found by the decode target: tifffile returned an array of an unexpected shape for a
    # damaged float TIFF (IndexError); too many samples and volumes are refused, one row is read
    import tifffile

    tifffile.imwrite(tmp_path / "seven.tif", np.zeros((12, 16, 7), np.float32), photometric="minisblack", planarconfig="contig")  # fmt: skip
    tifffile.imwrite(tmp_path / "volume.tif", np.zeros((2, 12, 16), np.float32), volumetric=True)
    tifffile.imwrite(tmp_path / "row.tif", np.full((1, 16), 0.5, np.float32))
    for name in ("seven.tif", "volume.tif"):
        reason = read_or_reason(tmp_path / name)
        assert isinstance(reason, str)
        assert "unsupported TIFF layout" in reason
    row = read_or_reason(tmp_path / "row.tif")
    assert isinstance(row, Picture)
    assert row.pixels.shape == (1, 16)


def test_regression_damaged_files_print_one_memnet_line_each(tmp_path: Path) -> None:
    # found by the folder target: tifffile logged its own error records and Pillow printed
    # warnings (two lines each) to stderr besides memnet's one line per file
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "bad-tags.tif").write_bytes(tiff_with_bad_tag_types())
    (folder / "truncated.tif").write_bytes(Source("TIFF", "RGB").encode()[:150])
    code, lines = restore_folder_stderr(folder, tmp_path / "out")
    assert code == 1
    assert all(line.startswith("memnet restore: ") for line in lines), lines
    for name in ("bad-tags.tif", "truncated.tif"):
        assert sum(name in line for line in lines) == 1, lines


def tiff_with_tag(data: bytes, tag: int, value: int) -> bytes:
    """A little-endian TIFF with the (short or long) value of `tag` in its first IFD replaced."""
    out = bytearray(data)
    (ifd,) = struct.unpack("<I", out[4:8])
    (entries,) = struct.unpack("<H", out[ifd : ifd + 2])
    for index in range(entries):
        at = ifd + 2 + 12 * index
        found, kind = struct.unpack("<HH", out[at : at + 4])
        if found == tag:
            out[at + 8 : at + 12] = struct.pack(
                "<I" if kind == 4 else "<HH", value, *([] if kind == 4 else [0])
            )
    return bytes(out)


@pytest.mark.parametrize("tag", [256, 257], ids=["width", "height"])
def test_regression_a_tiff_of_zero_pixels_is_refused(tmp_path: Path, tag: int) -> None:
    # found by a longer decode search: a float TIFF claiming 0 rows decoded to an empty picture
    path = tmp_path / "empty.tif"
    path.write_bytes(tiff_with_tag(Source("TIFF", "F").encode(), tag, 0))
    reason = read_or_reason(path)
    assert isinstance(reason, str)
    assert "a damaged file" in reason
