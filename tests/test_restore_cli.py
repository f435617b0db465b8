"""`memnet restore` end to end: files, folders, globs, bad input, and nothing ever lost."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from memnet.cli import main
from memnet.fsutil import sha256_of
from memnet.model import MemNet, MemNetConfig
from memnet.weights import zoo
from memnet.weights.files import save_weights

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLE = PROJECT_ROOT / "examples" / "sample.png"
RNG = np.random.default_rng(5)


def photo(path: Path, size: tuple[int, int] = (24, 20), mode: str = "RGB") -> Path:
    data = RNG.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data).convert(mode).save(path)
    return path


BICUBIC = ["--task", "sr", "--method", "bicubic"]


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_quick_start_command_on_the_sample(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "restored.png"
    code = main(["restore", "-i", str(SAMPLE), "-o", str(out), "--task", "sr", "--scale", "2"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert str(out) in captured.out  # says where the output went
    assert "1 image restored, 0 failed" in captured.out
    assert "bicubic method" not in captured.err  # the released SR model ran, not the fallback
    bicubic = tmp_path / "bicubic.png"
    assert main(["restore", "-i", str(SAMPLE), "-o", str(bicubic), "--scale", "2", *BICUBIC]) == 0
    with Image.open(SAMPLE) as source, Image.open(out) as result, Image.open(bicubic) as plain:
        assert result.size == (2 * source.width, 2 * source.height)
        assert np.abs(np.asarray(result, float) - np.asarray(plain, float)).mean() > 0.1


def test_folder_with_bad_files_restores_the_good_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "in"
    photo(src / "good1.png")
    photo(src / "good2.jpg")
    good_png = io.BytesIO()
    Image.fromarray(RNG.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(good_png, "PNG")
    (src / "truncated.png").write_bytes(good_png.getvalue()[:200])
    (src / "empty.png").write_bytes(b"")
    (src / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(RNG.integers(0, 256, 300)))
    (src / "notes.txt").write_text("not a picture\n")
    out = tmp_path / "out"
    code = main(["restore", "-i", str(src), "-o", str(out), "--task", "denoise", "--quiet"])
    captured = capsys.readouterr()
    assert code == 1
    assert files_under(out) == ["good1.png", "good2.jpg"]
    errors = [line for line in captured.err.splitlines() if "error:" in line]
    for name in ("truncated.png", "empty.png", "corrupt.jpg", "notes.txt"):
        assert sum(name in line for line in errors) == 1, captured.err
    assert "2 images restored, 4 failed" in captured.err
    assert captured.out == ""  # --quiet


def test_jpeg_task_writes_png_by_default_and_ext_overrides(tmp_path: Path) -> None:
    photo(tmp_path / "in" / "a.jpg")
    assert (
        main(
            [
                "restore",
                "-i",
                str(tmp_path / "in"),
                "-o",
                str(tmp_path / "o1"),
                "--task",
                "jpeg",
                "-q",
            ]
        )
        == 0
    )
    assert files_under(tmp_path / "o1") == ["a.png"]
    assert (
        main(
            [
                "restore",
                "-i",
                str(tmp_path / "in"),
                "-o",
                str(tmp_path / "o2"),
                "--task",
                "jpeg",
                "--ext",
                "webp",
                "-q",
            ]
        )
        == 0
    )
    assert files_under(tmp_path / "o2") == ["a.webp"]


def test_recursive_folders_are_mirrored_and_globs_work(tmp_path: Path) -> None:
    src = tmp_path / "in"
    photo(src / "a.png")
    photo(src / "trip" / "day1" / "b.png")
    photo(src / ".hidden" / "c.png")
    out = tmp_path / "out"
    argv = ["restore", "-i", str(src), "-o", str(out), "--task", "sr", "--scale", "2", "-q"]
    assert main([*argv, "--recursive", "--suffix", "_big"]) == 0
    assert files_under(out) == ["a_big.png", "trip/day1/b_big.png"]
    assert (
        main(["restore", "-i", str(src / "*.png"), "-o", str(tmp_path / "g"), "--task", "sr", "-q"])
        == 0
    )
    assert files_under(tmp_path / "g") == ["a.png"]
    # a folder or glob into what looks like a file name is refused before anything is written
    assert main(["restore", "-i", str(src), "-o", str(tmp_path / "one.png"), "--task", "sr"]) == 1
    assert not (tmp_path / "one.png").exists()


def test_existing_outputs_and_inputs_are_never_overwritten(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = photo(tmp_path / "a.png")
    before = source.read_bytes()
    target = tmp_path / "out.png"
    target.write_bytes(b"keep me")
    argv = ["restore", "-i", str(source), "--task", "denoise", "-q"]
    assert main([*argv, "-o", str(target)]) == 1
    assert "already exists" in capsys.readouterr().err
    assert target.read_bytes() == b"keep me"
    assert main([*argv, "-o", str(target), "--overwrite"]) == 0
    assert target.read_bytes() != b"keep me"
    assert main([*argv, "-o", str(source), "--overwrite"]) == 1
    assert "refusing to overwrite an input" in capsys.readouterr().err
    assert source.read_bytes() == before
    # a folder restored into itself gets a suffix instead of replacing its images
    folder = tmp_path / "same"
    photo(folder / "x.png")
    assert main(["restore", "-i", str(folder), "-o", str(folder), "--task", "sr", "-q"]) == 0
    assert files_under(folder) == ["x.png", "x_x2.png"]


def test_small_huge_and_unwritable_give_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny = photo(tmp_path / "tiny.png", size=(5, 4))
    assert main(["restore", "-i", str(tiny), "-o", str(tmp_path / "t.png"), "--task", "sr"]) == 1
    assert "at least 8x8" in capsys.readouterr().err
    assert not (tmp_path / "t.png").exists()

    bomb = tmp_path / "bomb.png"
    Image.new("1", (30_000, 30_000)).save(bomb)  # 112 kB on disk, 900 Mpixel decoded
    assert (
        main(["restore", "-i", str(bomb), "-o", str(tmp_path / "b.png"), "--task", "denoise"]) == 1
    )
    assert "pixel limit" in capsys.readouterr().err

    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the output folder should be")
    good = photo(tmp_path / "good.png")
    out = blocker / "sub" / "o.png"
    assert main(["restore", "-i", str(good), "-o", str(out), "--task", "denoise"]) == 1
    err = capsys.readouterr().err
    assert "cannot create the output folder" in err
    assert len([line for line in err.splitlines() if "error" in line]) == 1


def test_half_precision_on_cpu_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tmp_path / "w.safetensors"
    save_weights(MemNet(2, 2, 8), weights, {"task": "denoise"})
    source = photo(tmp_path / "a.png")
    argv = ["restore", "-i", str(source), "-o", str(tmp_path / "o.png"), "--weights", str(weights)]
    assert main([*argv, "--device", "cpu", "--dtype", "fp16"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "half precision" in err


def test_weights_file_with_tiles_self_ensemble_and_16bit(tmp_path: Path) -> None:
    torch.manual_seed(0)
    weights = tmp_path / "w.safetensors"
    save_weights(MemNet(2, 2, 8, identity_init=True), weights, {"task": "denoise"})
    data = RNG.integers(0, 65536, (30, 26, 3), dtype=np.uint16)
    from memnet.imaging.picture import picture_from_array, picture_to_array
    from memnet.imaging.reading import read_image
    from memnet.imaging.writing import write_image

    write_image(picture_from_array(data), tmp_path / "wide.png")
    out = tmp_path / "o.png"
    argv = ["restore", "-i", str(tmp_path / "wide.png"), "-o", str(out), "--weights", str(weights)]
    assert main([*argv, "--device", "cpu", "--tile", "0", "--self-ensemble", "-q"]) == 0
    restored = read_image(out)
    assert restored.bit_depth == 16
    # identity network: 16-bit pixels come back within float32 rounding
    error = np.abs(picture_to_array(restored, np.uint16).astype(int) - data.astype(int)).max()
    assert error <= 4


def test_pickle_weights_need_unsafe_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pickle = tmp_path / "old.pth"
    torch.save(MemNet(2, 2, 8).state_dict(), pickle)
    source = photo(tmp_path / "a.png")
    argv = [
        "restore",
        "-i",
        str(source),
        "-o",
        str(tmp_path / "o.png"),
        "--weights",
        str(pickle),
        "--task",
        "jpeg",
        "-q",
    ]
    assert main(argv) == 1
    assert "--unsafe-load" in capsys.readouterr().err
    assert main([*argv, "--unsafe-load"]) == 0


def test_zoo_model_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = MemNetConfig(2, 2, 8)
    save_weights(MemNet.from_config(config), tmp_path / "m.safetensors", {"task": "sr"})
    entry = zoo.ZooEntry(
        "memnet-test",
        "m.safetensors",
        sha256_of(tmp_path / "m.safetensors"),
        "tiny",
        "sr",
        (2.0,),
        "t",
        default=True,
    )
    monkeypatch.setattr(zoo, "REGISTRY", {entry.name: entry})
    monkeypatch.setattr(zoo, "weights_dir", lambda: tmp_path)
    source = photo(tmp_path / "a.png")
    out = tmp_path / "o.png"
    assert main(["restore", "-i", str(source), "-o", str(out), "--model", "memnet-test", "-q"]) == 0
    assert Image.open(out).size == (48, 40)  # the task and the default ×2 came with the model
    # and the task's default model is used without --model, with no fallback note
    out2 = tmp_path / "o2.png"
    assert main(["restore", "-i", str(source), "-o", str(out2), "--task", "sr", "-q"]) == 0


def test_subprocess_run_reports_and_exits_nonzero(tmp_path: Path) -> None:
    src = tmp_path / "in"
    photo(src / "ok.png")
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    out = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "memnet",
            "restore",
            "-i",
            str(src),
            "-o",
            str(out),
            "--task",
            "sr",
            "--scale",
            "3",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{src / 'ok.png'} -> {out / 'ok.png'}" in result.stdout
    assert "broken.png" in result.stderr
    assert "1 image restored, 1 failed" in result.stdout
    assert files_under(out) == ["ok.png"]


@pytest.mark.parametrize(("sigma", "warns"), [("80", True), ("60", False)])
def test_outside_training_warns_alike_by_name_and_by_file(
    sigma: str, warns: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The trained range comes from the weights file, however the model is named."""
    source = photo(tmp_path / "a.png", size=(12, 10), mode="L")
    released = zoo.verified_weights_path(zoo.get("memnet-denoise"))
    notes = []
    for choice in (["--model", "memnet-denoise"], ["--weights", str(released)]):
        out = tmp_path / f"o{len(notes)}.png"
        argv = ["restore", "-i", str(source), "-o", str(out), *choice, "--sigma", sigma, "-q"]
        assert main(argv) == 0
        notes.append(capsys.readouterr().err.replace(released.name, "memnet-denoise"))
    assert notes[0] == notes[1]
    if warns:
        assert f"trained for denoise range 0-75; sigma{sigma} is outside that range" in notes[0]
    else:
        assert notes[0] == ""


def test_alpha_dropped_by_the_output_format_is_said_per_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A transparent input written where the format has no alpha (JPEG, BMP) is restored, with
    a warning naming the file; where the format keeps alpha nothing is said."""
    src = tmp_path / "in"
    photo(src / "clear.png", mode="RGBA")
    photo(src / "solid.png")
    for ext, warned in (("jpg", ["clear.png"]), ("png", [])):
        out = tmp_path / ext
        code = main(["restore", "-i", str(src), "-o", str(out), *BICUBIC, "--ext", ext, "-q"])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        assert files_under(out) == [f"clear.{ext}", f"solid.{ext}"]
        lines = [line for line in captured.err.splitlines() if "alpha channel is dropped" in line]
        assert [
            name for name in ("clear.png", "solid.png") if any(name in x for x in lines)
        ] == warned
