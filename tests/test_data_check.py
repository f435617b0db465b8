"""`memnet data check` and the shipped catalogue: decoded pixels decide whether a copy is right."""

from __future__ import annotations

import importlib.util
import io
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import memnet.catalog
from memnet.catalog import load_catalog
from memnet.catalog.check import check_folder, identify_sets
from memnet.catalog.locate import KNOWN_SETS
from memnet.catalog.pixels import pixel_digest
from memnet.cli import main
from memnet.training.recipe import load_recipe
from test_data_cli import make_entry, use_catalogue

PROJECT = Path(__file__).resolve().parents[1]


def encode(pixels: np.ndarray, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.fixture
def originals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    few_colours = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).quantize(32)
    return {
        "colour": rng.integers(0, 256, (24, 32, 3), dtype=np.uint8),
        "gray": rng.integers(0, 256, (20, 16), dtype=np.uint8),
        "other": np.asarray(few_colours.convert("RGB")),
    }


@pytest.fixture
def bmp_set(originals: dict[str, np.ndarray]) -> memnet.catalog.CatalogSet:
    """A catalogued set whose source files are BMPs."""
    return make_entry({f"{name}.bmp": encode(p, "BMP") for name, p in originals.items()})


def test_pixel_digest_is_the_hash_of_the_decoded_array(originals: dict[str, np.ndarray]) -> None:
    import hashlib

    gray = originals["gray"]
    digest = pixel_digest(encode(gray, "PNG"))
    assert (digest.width, digest.height, digest.mode) == (16, 20, "L")
    assert digest.sha256 == hashlib.sha256(np.ascontiguousarray(gray).tobytes()).hexdigest()


def test_lossless_re_encodings_match(
    bmp_set: memnet.catalog.CatalogSet, originals: dict[str, np.ndarray], tmp_path: Path
) -> None:
    (tmp_path / "colour.PNG").write_bytes(encode(originals["colour"], "PNG", compress_level=9))
    (tmp_path / "gray.tif").write_bytes(encode(originals["gray"], "TIFF"))
    # A palette PNG holding the same colours as the 24-bit BMP.
    Image.fromarray(originals["other"]).quantize(32).save(tmp_path / "other.png")
    assert Image.open(tmp_path / "other.png").mode == "P"
    report = check_folder(tmp_path, bmp_set)
    assert report.ok, report.differences
    assert report.matched == 3
    # A gray palette is still a palette: memnet scores such a file as colour (Y of RGB), not as
    # the gray values, so it is not the gray original.
    palette = Image.fromarray(originals["gray"]).convert("P")
    palette.putpalette([v for i in range(256) for v in (i, i, i)])
    palette.putdata(list(originals["gray"].flatten()))
    (tmp_path / "gray.tif").unlink()
    palette.save(tmp_path / "gray.png")
    [difference] = check_folder(tmp_path, bmp_set).differences
    assert (difference.name, difference.problem) == ("gray.png", "mode")
    assert difference.detail == "P (read as RGB), expected L"


def test_each_differing_file_is_named_with_how_it_differs(
    bmp_set: memnet.catalog.CatalogSet, originals: dict[str, np.ndarray], tmp_path: Path
) -> None:
    colour = originals["colour"].copy()
    colour[5, 7, 1] ^= 1  # one value off by one
    (tmp_path / "colour.png").write_bytes(encode(colour, "PNG"))
    rgb_of_gray = np.repeat(originals["gray"][..., None], 3, axis=2)  # the Set14-bridge mistake
    (tmp_path / "gray.png").write_bytes(encode(rgb_of_gray, "PNG"))
    (tmp_path / "stray.png").write_bytes(encode(originals["other"], "PNG"))
    report = check_folder(tmp_path, bmp_set)
    problems = {(d.name, d.problem, d.detail) for d in report.differences}
    assert problems == {
        ("colour.png", "pixels", "same size and mode, different pixel values"),
        ("gray.png", "mode", "RGB, expected L"),
        ("other.bmp", "missing", "not in the folder"),
        ("stray.png", "extra", "not part of the set"),
    }
    assert report.matched == 0
    (tmp_path / "other.png").write_bytes(encode(originals["other"][:8], "PNG"))
    (tmp_path / "stray.png").write_bytes(b"not an image")
    problems = {(d.name, d.problem) for d in check_folder(tmp_path, bmp_set).differences}
    assert ("other.png", "size") in problems
    assert ("stray.png", "extra") in problems  # not an image name of the set: just extra


@pytest.fixture
def with_catalogue(monkeypatch: pytest.MonkeyPatch, bmp_set: memnet.catalog.CatalogSet) -> None:
    use_catalogue(monkeypatch, (bmp_set, *load_catalog()))


@pytest.mark.usefixtures("with_catalogue")
def test_cli_check_finds_the_set_and_reports(
    originals: dict[str, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "mine"
    copy.mkdir()
    for name, pixels in originals.items():
        (copy / f"{name}.png").write_bytes(encode(pixels, "PNG"))
    # Neither the folder's name nor a data root layout says which set it is: its pixels do.
    assert [entry.name for entry, _ in identify_sets(copy)] == ["Tiny"]
    assert main(["data", "check", str(copy)]) == 0
    assert "Tiny: " in capsys.readouterr().out
    (copy / "gray.png").write_bytes(encode(originals["gray"][::-1], "PNG"))
    assert main(["data", "check", str(copy), "--set", "tiny"]) == 1
    out = capsys.readouterr().out
    assert "2 of 3 files match, 1 differ:" in out
    assert re.search(r"^  gray\.png: pixels: ", out, re.MULTILINE)
    root = tmp_path / "root"
    shutil.copytree(copy, root / "sr" / "Tiny")
    assert [entry.name for entry, _ in identify_sets(root)] == ["Tiny"]
    assert main(["data", "check", str(tmp_path / "none")]) == 1
    assert "not a folder" in capsys.readouterr().err


@pytest.mark.datasets
@pytest.mark.parametrize("name", ["Set5", "LIVE1"])
def test_the_local_copies_match_the_catalogue(datasets: Path, name: str) -> None:
    """Set5 is byte-identical to its source; LIVE1 is a PNG re-encoding of BMP originals."""
    entry = memnet.catalog.find_set(name)
    assert entry is not None
    report = check_folder(datasets / entry.folder, entry)
    assert report.ok, report.differences
    assert report.matched == entry.images


@pytest.mark.datasets
def test_a_re_saved_jpeg_copy_is_caught(datasets: Path, tmp_path: Path) -> None:
    entry = memnet.catalog.find_set("Set5")
    assert entry is not None
    copy = tmp_path / "Set5"
    shutil.copytree(datasets / entry.folder, copy)
    with Image.open(copy / "bird.png") as image:
        image.convert("RGB").save(copy / "bird.jpg", quality=100)
    (copy / "bird.png").unlink()
    report = check_folder(copy, entry)
    assert [(d.name, d.problem) for d in report.differences] == [("bird.jpg", "pixels")]


def test_the_catalogue_is_complete_and_well_formed() -> None:
    sets = load_catalog()
    names = [entry.name for entry in sets]
    assert {entry.name: entry.folder for entry in sets} == KNOWN_SETS
    # Every set a recipe trains or validates on, and every default of `memnet eval`, is listed.
    from memnet.tasks import task_classes

    named = {name for cls in task_classes() for name in cls.benchmark_sets}
    for recipe_file in (PROJECT / "configs").glob("*.yaml"):
        recipe = load_recipe(recipe_file)
        named |= {s for s in recipe.data.sources if s != "synthetic"}
        named |= {item.set for item in recipe.validation.sets if item.set != "synthetic"}
    assert named <= set(names), named - set(names)
    assert len(names) == len(set(names))
    for entry in sets:
        if not entry.fetchable:
            assert entry.unavailable
            assert entry.source.homepage
            assert not entry.files
            continue
        assert re.fullmatch(r"[0-9a-f]{40}", entry.source.commit or "")
        assert entry.images == len(entry.files) > 0
        for item in entry.files:
            assert re.fullmatch(r"[0-9a-f]{64}", item.sha256)
            assert re.fullmatch(r"[0-9a-f]{64}", item.pixels_sha256)
            assert min(item.bytes, item.width, item.height) > 0
        url = entry.source.file_url(entry.files[0].name)
        assert url.startswith(f"https://raw.githubusercontent.com/{entry.source.repository}/")


def test_docs_datasets_md_is_generated_from_the_catalogue() -> None:
    spec = importlib.util.spec_from_file_location(
        "make_datasets", PROJECT / "docs" / "make_datasets.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    page = (PROJECT / "docs" / "datasets.md").read_text("utf-8")
    assert page == module.render(), "run python docs/make_datasets.py"
