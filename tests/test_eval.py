"""The benchmark runner on small images made in code: scores, reproducibility, outputs, errors."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from memnet.errors import MemNetError
from memnet.evaluation.benchmark import (
    BenchmarkSet,
    baseline,
    evaluate,
    load_set,
    make_tasks,
    noise_generator,
)
from memnet.imaging import imresize, jpeg_roundtrip, modcrop, rgb2ycbcr
from memnet.imaging.color import round_to_uint8
from memnet.imaging.metrics import psnr, shave, ssim


def make_picture(shape: tuple[int, int], seed: int, colour: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    base = 128 + 90 * np.sin(xx / (4.0 + seed)) * np.cos(yy / 7.0)
    if colour:
        planes = [base, base[::-1], 255 - base]
        image = np.stack(planes, axis=-1) + 12 * rng.standard_normal((*shape, 3))
    else:
        image = base + 12 * rng.standard_normal(shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_set(folder: Path, count: int = 3, shape: tuple[int, int] = (41, 38)) -> Path:
    """A folder of small PNGs: colour and gray, odd sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        size = (shape[0] + 3 * i, shape[1] + 2 * i)
        Image.fromarray(make_picture(size, i, colour=i % 2 == 0)).save(folder / f"img{i}.png")
    return folder


@pytest.fixture
def tiny_set(tmp_path: Path) -> BenchmarkSet:
    return load_set(str(write_set(tmp_path / "Tiny")))


def test_sets_are_read_as_matlab_luminance(tmp_path: Path) -> None:
    folder = write_set(tmp_path / "Mixed")
    bench = load_set(str(folder))
    assert bench.name == "Mixed"
    assert bench.names == ("img0.png", "img1.png", "img2.png")
    colour = make_picture((41, 38), 0, colour=True)
    np.testing.assert_array_equal(bench.images[0], rgb2ycbcr(colour)[..., 0])
    np.testing.assert_array_equal(bench.images[1], make_picture((44, 40), 1, colour=False))


def test_sixteen_bit_gray_is_scaled_not_clipped(tmp_path: Path) -> None:
    folder = tmp_path / "Deep"
    folder.mkdir()
    wide = (make_picture((30, 30), 0, colour=False).astype(np.uint16) * 257) + 100
    Image.fromarray(wide).save(folder / "deep.png")
    bench = load_set(str(folder))
    np.testing.assert_array_equal(bench.images[0], np.floor(wide / 257 + 0.5).astype(np.uint8))


def test_sr_bicubic_follows_the_protocol_by_hand(tiny_set: BenchmarkSet) -> None:
    report = evaluate("sr", [2, 3], [tiny_set], baseline("bicubic", "sr"), method_name="bicubic")
    assert [(r.image, r.label) for r in report.images][:4] == [
        ("img0.png", "x2"),
        ("img1.png", "x2"),
        ("img2.png", "x2"),
        ("img0.png", "x3"),
    ]
    # Recompute one image step by step as the MATLAB script does.
    truth = modcrop(tiny_set.images[1], 3)
    small = imresize(truth.astype(np.float64) / 255, 1 / 3)
    output = round_to_uint8(imresize(small, 3) * 255).astype(np.float64)
    expected_psnr = psnr(shave(output, 3), shave(truth.astype(np.float64), 3))
    expected_ssim = ssim(shave(output, 3), shave(truth.astype(np.float64), 3))
    row = next(r for r in report.images if r.image == "img1.png" and r.label == "x3")
    # The same float64 arithmetic in the same order: equal but for the last bits of ~30 dB.
    assert row.psnr == pytest.approx(expected_psnr, abs=1e-12)
    assert row.ssim == pytest.approx(expected_ssim, abs=1e-12)
    assert (row.height, row.width) == truth.shape
    # The summary is the mean over the images of the set.
    cell = report.score("Tiny", 3)
    x3 = [r for r in report.images if r.label == "x3"]
    assert cell.images == 3
    assert cell.psnr == pytest.approx(np.mean([r.psnr for r in x3]))
    assert cell.ssim == pytest.approx(np.mean([r.ssim for r in x3]))
    # Harder scales score lower: the numbers carry information.
    assert report.score("Tiny", 2).psnr > cell.psnr


def test_jpeg_identity_scores_the_decoded_jpeg(tiny_set: BenchmarkSet) -> None:
    report = evaluate("jpeg", [10], [tiny_set], baseline("identity", "jpeg"), method_name="id")
    image = tiny_set.images[0]
    decoded = jpeg_roundtrip(image, 10).astype(np.float64)
    # float64 scores of the same decoded pixels; PSNR's log of a small MSE keeps ~1e-9 absolute
    assert report.images[0].psnr == pytest.approx(psnr(decoded, image), abs=1e-9)
    assert report.images[0].ssim == pytest.approx(ssim(decoded, image), abs=1e-12)


def test_denoising_noise_is_reproducible_and_seeded_per_image(tmp_path: Path) -> None:
    folder = write_set(tmp_path / "Noisy", count=2, shape=(96, 96))
    identity = baseline("identity", "denoise")
    first = evaluate("denoise", [25], [load_set(str(folder))], identity, method_name="id")
    again = evaluate("denoise", [25], [load_set(str(folder))], identity, method_name="id")
    assert [r.psnr for r in first.images] == [r.psnr for r in again.images]
    other_seed = evaluate(
        "denoise", [25], [load_set(str(folder))], identity, method_name="id", seed=1
    )
    assert [r.psnr for r in first.images] != [r.psnr for r in other_seed.images]
    # The noisy image's PSNR is that of σ = 25 noise (unclipped): 20·log10(255/25).
    for row in first.images:
        assert row.psnr == pytest.approx(20 * math.log10(255 / 25), abs=0.15)
    # The noise of an image depends on its name, not on the other files of the folder.
    (folder / "img1.png").unlink()
    alone = evaluate("denoise", [25], [load_set(str(folder))], identity, method_name="id")
    assert alone.images[0].psnr == first.images[0].psnr
    a = noise_generator(0, "img0.png").standard_normal(4)
    b = noise_generator(0, "img1.png").standard_normal(4)
    assert not np.array_equal(a, b)


def test_report_outputs_are_written_and_parse(tmp_path: Path, tiny_set: BenchmarkSet) -> None:
    report = evaluate("sr", [2, 4], [tiny_set], baseline("bicubic", "sr"), method_name="bicubic")
    files = report.write(tmp_path / "out", "sr-bicubic")
    assert [f.name for f in files] == ["sr-bicubic.csv", "sr-bicubic.json", "sr-bicubic.md"]
    rows = list(csv.DictReader(io.StringIO(files[0].read_text())))
    assert len(rows) == 6
    assert rows[0]["image"] == "img0.png"
    # the CSV keeps 6 decimals
    assert float(rows[0]["psnr"]) == pytest.approx(report.images[0].psnr, abs=1e-6)
    summary = json.loads(files[1].read_text())
    assert summary["task"] == "sr"
    assert summary["levels"] == [2.0, 4.0]
    assert summary["sets"][0]["images"] == 3
    x4 = next(r for r in summary["results"] if r["label"] == "x4")
    assert x4["psnr"] == pytest.approx(report.score("Tiny", 4).psnr)
    table = files[2].read_text()
    assert table == report.markdown()
    cell = report.score("Tiny", 2)
    assert f"| Tiny | {cell.psnr:.2f}/{cell.ssim:.4f} |" in table
    assert "| set | ×2 | ×4 |" in table


def test_identical_output_gives_infinite_psnr_and_null_in_json(
    tmp_path: Path, tiny_set: BenchmarkSet
) -> None:
    # A perfect method (the ground truth itself) for JPEG: inf PSNR, SSIM 1, JSON null.
    perfect_set = BenchmarkSet(
        "Flat", tiny_set.folder, ("flat.png",), (np.full((24, 24), 77, np.uint8),)
    )
    report = evaluate("jpeg", [100], [perfect_set], baseline("identity", "jpeg"), method_name="id")
    # A flat image survives JPEG exactly.
    assert report.images[0].psnr == math.inf
    assert report.images[0].ssim == pytest.approx(1.0)
    summary = json.loads(report.write(tmp_path, "flat")[1].read_text())
    assert summary["results"][0]["psnr"] is None
    assert "inf/1.0000" in report.markdown()


def test_restored_images_are_saved_as_8bit_png(tmp_path: Path, tiny_set: BenchmarkSet) -> None:
    save = tmp_path / "images"
    evaluate("sr", [3], [tiny_set], baseline("bicubic", "sr"), method_name="b", save_dir=save)
    saved = sorted(p.relative_to(save).as_posix() for p in save.rglob("*.png"))
    assert saved == ["Tiny/x3/img0.png", "Tiny/x3/img1.png", "Tiny/x3/img2.png"]
    with Image.open(save / "Tiny/x3/img1.png") as image:
        assert image.mode == "L"
        pixels = np.asarray(image)
    truth = modcrop(tiny_set.images[1], 3)
    expected = round_to_uint8(imresize(imresize(truth / 255.0, 1 / 3), 3) * 255)
    np.testing.assert_array_equal(pixels, expected)
    assert not list(save.rglob("*.tmp"))


def test_progress_callback_sees_every_image(tiny_set: BenchmarkSet) -> None:
    seen: list[tuple[str, str]] = []
    evaluate(
        "denoise",
        [15, 50],
        [tiny_set],
        baseline("identity", "denoise"),
        method_name="id",
        on_image=lambda row: seen.append((row.label, row.image)),
    )
    assert len(seen) == 6
    assert seen[0] == ("sigma15", "img0.png")


def test_levels_are_deduplicated_in_order() -> None:
    assert [t.label for t in make_tasks("sr", [4, 2, 4.0])] == ["x4", "x2"]


# -- bad input --------------------------------------------------------------------------------


def test_method_returning_the_wrong_size_is_one_clear_error(tiny_set: BenchmarkSet) -> None:
    with pytest.raises(
        MemNetError, match=r"img0.png: the method returned a 20x19 image for a 40x38"
    ):
        evaluate("sr", [2], [tiny_set], lambda x: x[::2, ::2], method_name="broken")


def test_method_returning_nan_is_one_clear_error(tiny_set: BenchmarkSet) -> None:
    with pytest.raises(MemNetError, match="NaN or infinite"):
        evaluate("jpeg", [10], [tiny_set], lambda x: x * np.nan, method_name="broken")


def test_image_too_small_for_the_scale_is_named_before_any_work(tmp_path: Path) -> None:
    folder = write_set(tmp_path / "Small", count=2)
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(folder / "dot.png")
    bench = load_set(str(folder))
    calls: list[int] = []

    def method(x: np.ndarray) -> np.ndarray:
        calls.append(1)
        return x

    with pytest.raises(MemNetError, match=r"dot.png: image of size 3x3 is too small for ×4 SR"):
        evaluate("sr", [4], [bench], method, method_name="m")
    assert calls == []


def test_unreadable_image_in_a_set_stops_the_run_naming_it(tmp_path: Path) -> None:
    folder = write_set(tmp_path / "Broken", count=2)
    (folder / "zz_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "empty.png").write_bytes(b"")
    with pytest.raises(MemNetError) as error:
        load_set(str(folder))
    message = str(error.value)
    assert "\n" not in message
    assert "2 of 4 images cannot be read" in message
    assert "empty.png (empty file)" in message
    assert "zz_corrupt.png" in message


def test_unknown_and_empty_sets(tmp_path: Path) -> None:
    with pytest.raises(MemNetError, match=r"unknown set 'Nope'.*known sets: Set5, Set14, BSD100"):
        load_set("Nope", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(MemNetError, match="contains no images"):
        load_set(str(tmp_path / "empty"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(MemNetError, match="a file, not a folder"):
        load_set(str(tmp_path / "notes.txt"))
    with pytest.raises(MemNetError, match=r"set 'Set5' not found at .*--data-root"):
        load_set("Set5", tmp_path)


def test_duplicate_set_names_are_refused(tiny_set: BenchmarkSet) -> None:
    with pytest.raises(MemNetError, match="same name 'Tiny'"):
        evaluate("sr", [2], [tiny_set, tiny_set], baseline("bicubic", "sr"), method_name="b")


def test_baselines_match_their_tasks() -> None:
    with pytest.raises(MemNetError, match="use 'identity'"):
        baseline("bicubic", "denoise")
    with pytest.raises(MemNetError, match="use 'bicubic'"):
        baseline("identity", "sr")
    with pytest.raises(MemNetError, match="unknown method"):
        baseline("lanczos", "sr")
    with pytest.raises(MemNetError, match="unknown task"):
        make_tasks("blur", [2])
    with pytest.raises(MemNetError, match=r"1\.\.100"):
        make_tasks("jpeg", [0])


def test_unlistable_folder_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_set(tmp_path / "Locked", count=1)

    def refuse(self: Path) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    # Permissions cannot be relied on in a test (root reads everything): refuse the listing.
    monkeypatch.setattr(Path, "iterdir", refuse)
    with pytest.raises(MemNetError, match=r"cannot list folder .*Locked: Permission denied"):
        load_set(str(folder))
