"""Validation during training is `memnet eval`'s path, and its numbers are those of earlier runs.

The pinned numbers were computed by the validation code that training had before it went
through `memnet.evaluation.benchmark` (its own set loading, degradation and scoring loop). The
networks are chosen so that their outputs are exact on any CPU — the identity, and the identity
shifted by 1/32 (zero reconstruction weights, a constant bias) — so the pins test loading,
degradation, restoring and scoring, and nothing depends on how a CPU rounds a convolution.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from memnet.cli import main
from memnet.model import MemNet, create_model
from memnet.training.recipe import SyntheticSpec, ValidationSet, ValidationSpec, load_recipe
from memnet.training.validation import build_validation, run_validation
from memnet.weights.files import load_weights, save_weights

# float64 scoring (log10, SSIM's filters) may differ by a few ulp between numpy builds and CPUs
FLOAT64_SCORING = 1e-12

SYNTHETIC_SETS = {
    "sr": ValidationSpec(sets=[ValidationSet(set="synthetic", levels=[2, 3, 4], max_images=2)]),
    "denoise": ValidationSpec(
        seed=3, sets=[ValidationSet(set="synthetic", levels=[15, 50], max_images=2)]
    ),
    "jpeg": ValidationSpec(sets=[ValidationSet(set="synthetic", levels=[10, 40], max_images=2)]),
}
DATASET_SETS = {
    "sr": ValidationSpec(sets=[ValidationSet(set="Set5", levels=[3], max_images=2)]),
    "denoise": ValidationSpec(seed=3, sets=[ValidationSet(set="Set12", levels=[25], max_images=2)]),
    "jpeg": ValidationSpec(sets=[ValidationSet(set="Classic5", levels=[20], max_images=2)]),
}
# (PSNR, SSIM) per label, identity network / identity + 1/32, from the earlier validation code
PINNED = {
    "identity": {
        "synthetic/x2": (22.625684397804527, 0.8450336185547249),
        "synthetic/x3": (18.879542300372925, 0.616668214916124),
        "synthetic/x4": (17.116657646220105, 0.4074566799303867),
        "Set5/x3": (33.241235658424614, 0.914780311871817),
        "synthetic/sigma15": (24.545193284874014, 0.7700619745338303),
        "synthetic/sigma50": (14.087618380607914, 0.42361905816180156),
        "Set12/sigma25": (20.166014311448528, 0.30525598872176596),
        "synthetic/q10": (23.52541947083348, 0.8170240536737433),
        "synthetic/q40": (28.250596737930017, 0.9163018706756283),
        "Classic5/q20": (27.257182206775845, 0.8154278532457031),
    },
    "shifted": {
        "synthetic/x2": (21.924024509581294, 0.8435181744152125),
        "synthetic/x3": (18.56857581582826, 0.6159379201581587),
        "synthetic/x4": (16.899481858524894, 0.4081671211214055),
        "Set5/x3": (28.373014042059467, 0.9069469815459614),
        "synthetic/sigma15": (23.455248782885096, 0.7675766675353977),
        "synthetic/sigma50": (13.971016867930665, 0.4224006727777878),
        "Set12/sigma25": (19.756115948255584, 0.3040103258839505),
        "synthetic/q10": (22.74080265455774, 0.8146524754453257),
        "synthetic/q40": (26.014456530832412, 0.9133087681090801),
        "Classic5/q20": (25.412772775420578, 0.8127005171629686),
    },
}


def exact_network(shift: float) -> MemNet:
    """A tiny network that outputs its input + `shift` exactly: zero weights, constant bias."""
    model = create_model("tiny", identity_init=True)
    with torch.no_grad():
        model.reconstruction.bias.fill_(shift)
    return model


NETWORKS = {"identity": 0.0, "shifted": 1 / 32}


def scores_of(model: MemNet, kind: str, spec: ValidationSpec, data_root: Path | None) -> dict:
    validation = build_validation(spec, kind, data_root=data_root, synthetic=SyntheticSpec(size=64))
    return run_validation(model, validation, device=torch.device("cpu"), tile=None)


def check_pins(scores: dict, pins: dict) -> None:
    assert scores, "no validation scores"
    for label, result in scores.items():
        psnr, ssim = pins[label]
        assert result["psnr"] == pytest.approx(psnr, rel=FLOAT64_SCORING), label
        assert result["ssim"] == pytest.approx(ssim, rel=FLOAT64_SCORING), label


@pytest.mark.parametrize("network", NETWORKS)
@pytest.mark.parametrize("kind", ["sr", "denoise", "jpeg"])
def test_validation_numbers_of_synthetic_sets_are_unchanged(kind: str, network: str) -> None:
    model = exact_network(NETWORKS[network])
    check_pins(scores_of(model, kind, SYNTHETIC_SETS[kind], None), PINNED[network])


@pytest.mark.datasets
@pytest.mark.parametrize("network", NETWORKS)
@pytest.mark.parametrize("kind", ["sr", "denoise", "jpeg"])
def test_validation_numbers_of_benchmark_sets_are_unchanged(
    kind: str, network: str, datasets: Path
) -> None:
    model = exact_network(NETWORKS[network])
    check_pins(scores_of(model, kind, DATASET_SETS[kind], datasets), PINNED[network])


@pytest.mark.datasets
@pytest.mark.parametrize(
    ("kind", "option", "level", "set_name"),
    [("sr", "--scales", 3, "Set5"), ("denoise", "--sigmas", 25, "Set12")],
)
def test_training_validation_gives_the_numbers_of_memnet_eval(
    tmp_path: Path, datasets: Path, kind: str, option: str, level: int, set_name: str
) -> None:
    torch.manual_seed(11)
    model = create_model("tiny")  # random weights: a real network, not an exact one
    weights = tmp_path / "tiny.safetensors"
    save_weights(model, weights)
    out = tmp_path / "eval"
    args = ["eval", "--task", kind, option, str(level), "--sets", set_name, "--weights"]
    code = main([*args, str(weights), "--data-root", str(datasets), "--seed", "4", "--device",
                 "cpu", "--out", str(out), "--quiet"])  # fmt: skip
    assert code == 0
    (summary,) = out.glob("*.json")
    (row,) = json.loads(summary.read_text())["results"]
    spec = ValidationSpec(seed=4, sets=[ValidationSet(set=set_name, levels=[level])])
    loaded, _ = load_weights(weights)
    scores = scores_of(loaded, kind, spec, datasets)
    # the same computation in the same process: equal to the last bit
    assert scores == {f"{set_name}/{row['label']}": {"psnr": row["psnr"], "ssim": row["ssim"]}}


SMOKE = Path(__file__).parents[1] / "configs" / "smoke.yaml"


def test_an_image_too_small_for_a_level_stops_the_run_before_its_first_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    Image.fromarray(np.full((40, 40), 128, np.uint8)).save(folder / "big.png")
    Image.fromarray(np.full((16, 16), 128, np.uint8)).save(folder / "small.png")  # x2, not x4
    run_dir = tmp_path / "run"
    sets = f"validation.sets=[{{set: {folder}, levels: [2, 4]}}]"
    args = ["train", str(SMOKE), "--out", str(run_dir), "--quiet", "--set", sets]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{folder / 'small.png'}: image of size 16x16 is too small for ×4 SR" in err
    assert not run_dir.exists()  # nothing was written


RUN = Path(__file__).parents[1] / "training" / "memnet-sr-m6r6"


@pytest.mark.slow
@pytest.mark.datasets
def test_the_m6r6_runs_logged_validation_is_reproduced(datasets: Path) -> None:
    best = RUN / "checkpoints" / "best.safetensors"
    if not best.is_file():
        pytest.skip(f"{best} is not in this checkout")
    model, meta = load_weights(best)
    recipe = load_recipe(RUN / "recipe.yaml")
    logged = next(
        record
        for record in map(json.loads, (RUN / "metrics.jsonl").read_text().splitlines())
        if record.get("kind") == "val" and str(record["iteration"]) == meta["memnet.iteration"]
    )
    validation = build_validation(
        recipe.validation, "sr", data_root=datasets, synthetic=recipe.data.synthetic
    )
    scores = run_validation(model, validation, device=torch.device("cpu"), tile=None)
    # Equal to the last bit on the CPU that trained the run; another CPU rounds the network's
    # float32 sums otherwise, so the check is at the precision the results are published with.
    for label, psnr in logged["psnr"].items():
        assert scores[label]["psnr"] == pytest.approx(psnr, abs=0.005), label
