"""`memnet eval` end to end on small images made in code (no benchmark data needed)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from memnet.cli import main
from memnet.model import create_model
from memnet.weights import zoo
from memnet.weights.files import save_weights
from test_eval import write_set


def table_cells(stdout: str) -> dict[str, list[str]]:
    """{set name: cells} from the markdown table printed by `memnet eval`."""
    rows = [line for line in stdout.splitlines() if line.startswith("| ") and "---" not in line]
    cells = {}
    for row in rows[1:]:
        parts = [p.strip() for p in row.strip("|").split("|")]
        cells[parts[0]] = parts[1:]
    return cells


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """A data root laid out like ../shared/datasets with small made-up sets."""
    root = tmp_path / "data"
    write_set(root / "sr" / "Set5", count=2)
    write_set(root / "jpeg" / "Classic5", count=2)
    write_set(root / "denoise" / "Set12", count=2)
    return root


def run_eval(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["eval", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_bicubic_table_csv_json_and_images(
    tmp_path: Path, data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    code, stdout, stderr = run_eval(
        capsys,
        "--task", "sr", "--scales", "2,3", "--sets", "Set5", "--method", "bicubic",
        "--data-root", str(data_root), "--out", str(out), "--save-images",
    )  # fmt: skip
    assert code == 0, stderr
    assert "| set | ×2 | ×3 |" in stdout
    cells = table_cells(stdout)
    assert list(cells) == ["Set5"]
    summary = json.loads((out / "sr-bicubic.json").read_text())
    x2 = summary["results"][0]
    assert cells["Set5"][0] == f"{x2['psnr']:.2f}/{x2['ssim']:.4f}"
    assert summary["method"] == "bicubic"
    lines = (out / "sr-bicubic.csv").read_text().splitlines()
    assert lines[0] == "set,level,label,image,height,width,psnr,ssim,seconds"
    assert len(lines) == 1 + 2 * 2
    assert (out / "sr-bicubic.md").read_text() == stdout
    saved = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert saved == [
        "sr-bicubic/Set5/x2/img0.png",
        "sr-bicubic/Set5/x2/img1.png",
        "sr-bicubic/Set5/x3/img0.png",
        "sr-bicubic/Set5/x3/img1.png",
    ]
    # progress on stderr (tqdm): images done of all, elapsed<remaining (the ETA); then the files
    assert "4/4" in stderr
    assert re.search(r"\d\d:\d\d<\d\d:\d\d", stderr), stderr
    assert "wrote" in stderr


def test_quiet_prints_only_the_table(data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, stderr = run_eval(
        capsys,
        "--task", "jpeg", "--qualities", "10,20", "--sets", "Classic5", "--method", "identity",
        "--data-root", str(data_root), "--quiet",
    )  # fmt: skip
    assert code == 0
    assert stderr == ""
    assert "| set | q=10 | q=20 |" in stdout
    q10, q20 = (float(c.split("/")[0]) for c in table_cells(stdout)["Classic5"])
    assert q20 > q10


def test_denoise_defaults_and_seed(
    data_root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEMNET_DATA_ROOT", str(data_root))
    base = ["--task", "denoise", "--sets", "Set12", "--method", "identity", "--quiet"]
    code, first, _ = run_eval(capsys, *base)
    assert code == 0
    assert "| set | σ=15 | σ=25 | σ=30 | σ=50 | σ=70 |" in first
    assert "noise seed 0" in first
    _, again, _ = run_eval(capsys, *base)
    assert again == first
    _, other, _ = run_eval(capsys, *base, "--seed", "5")
    assert table_cells(other) != table_cells(first)


@pytest.mark.parametrize(
    ("task", "method", "first_missing", "header"),
    [
        ("sr", "bicubic", "Set14", "| set | ×2 | ×3 | ×4 |"),
        ("denoise", "identity", "BSD68", "| set | σ=15 | σ=25 | σ=30 | σ=50 | σ=70 |"),
        ("jpeg", "identity", "LIVE1", "| set | q=10 | q=20 | q=30 | q=40 |"),
    ],
)
def test_default_sets_and_levels_are_the_literatures(
    task: str,
    method: str,
    first_missing: str,
    header: str,
    data_root: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    common = ["--task", task, "--method", method, "--data-root", str(data_root), "--quiet"]
    # The made-up root holds one set per task (Set5, Set12, Classic5): the default list asks for
    # the others too, and names the first that is missing.
    code, stdout, stderr = run_eval(capsys, *common)
    assert (code, stdout) == (1, "")
    assert f"set {first_missing!r} not found" in stderr
    present = {"sr": "Set5", "denoise": "Set12", "jpeg": "Classic5"}[task]
    code, stdout, _ = run_eval(capsys, *common, "--sets", present)
    assert code == 0
    assert header in stdout


def test_folder_path_as_a_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_set(tmp_path / "mine", count=1)
    code, stdout, _ = run_eval(
        capsys, "--task", "sr", "--scales", "4", "--sets", str(folder), "--method", "bicubic"
    )
    assert code == 0
    assert list(table_cells(stdout)) == ["mine"]


@pytest.fixture
def one_thread() -> Iterator[None]:
    # A tiny network on tiny images gains nothing from threads, and on a busy 2-core machine
    # OpenMP threads waiting on each other make each call ~100× slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_network_weights_through_the_restorer(
    tmp_path: Path, data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--task", "sr", "--scales", "2", "--sets", "Set5", "--data-root", str(data_root)]
    _, bicubic, _ = run_eval(capsys, *common, "--method", "bicubic", "--quiet")

    # A model that starts as the identity reproduces the bicubic baseline exactly, tiled or not.
    identity = tmp_path / "identity.safetensors"
    save_weights(create_model("tiny", identity_init=True), identity, {"task": "sr"})
    for tile in ("0", "16"):
        code, stdout, stderr = run_eval(
            capsys, *common, "--weights", str(identity), "--tile", tile, "--quiet"
        )
        assert code == 0, stderr
        assert table_cells(stdout) == table_cells(bicubic)

    # A random network scores differently, and its provenance is recorded.
    torch.manual_seed(1)
    random_model = tmp_path / "random.safetensors"
    save_weights(create_model("tiny"), random_model)
    out = tmp_path / "out"
    code, stdout, _ = run_eval(
        capsys, *common, "--weights", str(random_model), "--out", str(out), "--quiet"
    )
    assert code == 0
    assert table_cells(stdout) != table_cells(bicubic)
    summary = json.loads((out / "sr-random.json").read_text())
    assert summary["method"] == "random"
    assert summary["weights"] == str(random_model)
    assert summary["config"]["blocks"] == 2
    assert len(summary["sha256"]) == 64
    assert np.isfinite(summary["results"][0]["psnr"])


def test_without_a_method_and_no_default_model_it_says_so_in_one_line(
    data_root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(zoo, "REGISTRY", {})
    code, _, stderr = run_eval(capsys, "--task", "jpeg", "--data-root", str(data_root))
    assert code == 1
    assert stderr.count("\n") == 1
    assert "no released model is the default for task 'jpeg'" in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--task", "sr", "--sets", "Nope", "--method", "bicubic"], "known sets: Set5, Set14"),
        (["--task", "sr", "--scales", "2,x", "--method", "bicubic"], "--scales: 'x' is not a number"),
        (["--task", "sr", "--scales", "1", "--method", "bicubic"], "greater than 1"),
        (["--task", "sr", "--sigmas", "25", "--method", "bicubic"], "--sigmas applies to --task denoise"),
        (["--task", "jpeg", "--qualities", "101", "--method", "identity"], "1..100"),
        (["--task", "sr", "--method", "identity"], "use 'bicubic'"),
        (["--task", "sr", "--method", "bicubic", "--save-images"], "--save-images needs --out"),
        (["--task", "sr", "--method", "bicubic", "--tile", "64"], "--tile applies to a network"),
        (["--task", "sr", "--model", "nonexistent"], "unknown model 'nonexistent'"),
        (["--task", "sr", "--weights", "missing.safetensors"], "weights file not found"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_1(
    args: list[str], message: str, data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stdout, stderr = run_eval(capsys, *args, "--data-root", str(data_root), "--quiet")
    assert code == 1
    assert stdout == ""
    assert stderr.count("\n") == 1, stderr
    assert message in stderr


def test_bad_images_in_a_set_are_named(
    tmp_path: Path, data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = write_set(tmp_path / "bad", count=1)
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(folder / "tiny.png")
    code, stdout, stderr = run_eval(
        capsys, "--task", "sr", "--sets", str(folder), "--method", "bicubic", "--quiet"
    )
    assert (code, stdout, stderr.count("\n")) == (1, "", 1)
    assert "tiny.png: image of size 2x2 is too small for ×2 SR" in stderr

    (folder / "tiny.png").write_bytes(b"GIF89a garbage")
    code, _, stderr = run_eval(
        capsys, "--task", "sr", "--sets", str(folder), "--method", "bicubic", "--quiet"
    )
    assert code == 1
    assert "1 of 2 images cannot be read: tiny.png" in stderr

    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, stderr = run_eval(
        capsys, "--task", "jpeg", "--sets", str(empty), "--method", "identity", "--quiet"
    )
    assert code == 1
    assert "contains no images" in stderr


def test_help_describes_the_protocol(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    out = capsys.readouterr().out
    for option in ("--scales", "--sigmas", "--qualities", "--save-images", "--seed", "--quiet"):
        assert option in out
    for option in ("--unsafe-load", "--dtype", "--self-ensemble", "--tile-pad"):  # as restore
        assert option in out
    assert "reproducible" in out


def test_unwritable_out_fails_before_any_work(
    tmp_path: Path, data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, stdout, stderr = run_eval(
        capsys,
        "--task", "sr", "--sets", "Set5", "--method", "bicubic",
        "--data-root", str(data_root), "--out", str(blocker / "results"), "--quiet",
    )  # fmt: skip
    assert (code, stdout) == (1, "")
    assert stderr.count("\n") == 1
    assert "cannot create folder" in stderr


@pytest.mark.usefixtures("one_thread")
def test_loading_options_match_restore(
    tmp_path: Path, data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--unsafe-load, --dtype, --self-ensemble and --tile-pad, as `memnet restore` has them."""
    common = ["--task", "sr", "--scales", "2", "--sets", "Set5", "--data-root", str(data_root)]
    # Near the identity, so that scores are not saturated and small changes show.
    torch.manual_seed(2)
    model = create_model("tiny", identity_init=True)
    with torch.no_grad():
        model.reconstruction.weight.normal_(0, 0.01)
    weights = tmp_path / "random.safetensors"
    save_weights(model, weights, {"memnet.task": "sr"})
    out = tmp_path / "out"
    code, plain, stderr = run_eval(capsys, *common, "--weights", str(weights), "--quiet")
    assert code == 0, stderr

    # A pickle is refused, then read with --unsafe-load and scores like the same weights.
    pickle = tmp_path / "random.pth"
    torch.save(model.state_dict(), pickle)
    code, _, stderr = run_eval(capsys, *common, "--weights", str(pickle), "--quiet")
    assert code == 1
    assert "--unsafe-load" in stderr
    code, stdout, stderr = run_eval(
        capsys, *common, "--weights", str(pickle), "--unsafe-load", "--quiet"
    )
    assert code == 0, stderr
    assert table_cells(stdout) == table_cells(plain)

    # Tiles without context differ from the whole image; the default context does not.
    tiled = ["--weights", str(weights), "--tile", "8", "--quiet"]
    code, exact, _ = run_eval(capsys, *common, *tiled)
    assert table_cells(exact) == table_cells(plain)
    code, no_context, _ = run_eval(capsys, *common, *tiled, "--tile-pad", "0")
    assert code == 0
    assert table_cells(no_context) != table_cells(plain)

    # The self-ensemble scores differently and is recorded with the precision.
    code, ensemble, _ = run_eval(
        capsys, *common, "--weights", str(weights), "--self-ensemble", "--out", str(out), "--quiet"
    )
    assert code == 0
    assert table_cells(ensemble) != table_cells(plain)
    summary = json.loads((out / "sr-random.json").read_text())
    assert (summary["self_ensemble"], summary["dtype"]) == (True, "fp32")

    # Half precision is refused on the CPU in one line, as by `memnet restore`.
    code, stdout, stderr = run_eval(
        capsys, *common, "--weights", str(weights), "--dtype", "bf16", "--device", "cpu", "--quiet"
    )
    assert (code, stdout, stderr.count("\n")) == (1, "", 1)
    assert "half precision" in stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "bicubic", "--tile-pad", "4"], "--tile-pad applies to a network"),
        (["--method", "bicubic", "--self-ensemble"], "--self-ensemble applies to a network"),
        (["--method", "bicubic", "--dtype", "fp16"], "--dtype applies to a network"),
        (["--authors-tiles", "--tile-pad", "4"], "--tile-pad and --authors-tiles"),
        (["--tile-pad", "-1"], "--tile-pad must be non-negative"),
    ],
)
def test_loading_options_that_cannot_apply_are_refused(
    args: list[str], message: str, data_root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, stdout, stderr = run_eval(
        capsys, "--task", "sr", "--sets", "Set5", *args, "--data-root", str(data_root), "--quiet"
    )
    assert (code, stdout, stderr.count("\n")) == (1, "", 1), stderr
    assert message in stderr
