"""The training loop: schedule, optimiser groups, clipping, exact resume, divergence, stops."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import memnet.training.step as step_module
from memnet.cpu_settings import ThreadTuner
from memnet.errors import MemNetError
from memnet.training.checkpoint import load_training_state
from memnet.training.environment import processes_from_env
from memnet.training.optimizer import build_optimizer, lr_factor
from memnet.training.recipe import Recipe, ScheduleSpec, load_recipe
from memnet.training.trainer import DivergenceError, RunOptions, Trainer, train
from memnet.weights.files import load_weights

SMOKE = Path(__file__).parents[1] / "configs" / "smoke.yaml"
QUICK = [
    "train.iterations=12",
    "train.batch_size=8",
    "validation.interval=0",
    "checkpoint.snapshot_interval=0",
    "log.interval=2",
]


def smoke(*overrides: str) -> Recipe:
    return load_recipe(SMOKE, [*QUICK, *overrides])


def metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


# -- schedule and optimiser ----------------------------------------------------------------------


def test_step_schedule_divides_by_gamma_every_step_size() -> None:
    schedule = ScheduleSpec(kind="step", step_size=100, gamma=0.1)
    assert lr_factor(schedule, 0, 1000) == 1.0
    assert lr_factor(schedule, 99, 1000) == 1.0
    assert lr_factor(schedule, 100, 1000) == pytest.approx(0.1)
    assert lr_factor(schedule, 250, 1000) == pytest.approx(0.01)


def test_cosine_schedule_with_warmup() -> None:
    schedule = ScheduleSpec(kind="cosine", warmup=10, final_lr_factor=0.1)
    assert lr_factor(schedule, 0, 110) == pytest.approx(0.1)  # first warm-up step
    assert lr_factor(schedule, 9, 110) == pytest.approx(1.0)
    assert lr_factor(schedule, 60, 110) == pytest.approx(0.55)  # half-way down the cosine
    assert lr_factor(schedule, 110, 110) == pytest.approx(0.1)


def test_conv_biases_get_their_own_learning_rate() -> None:
    recipe = smoke(
        "optim.name=sgd", "optim.lr=0.1", "optim.bias_lr_factor=0.1", "optim.weight_decay=1e-4"
    )
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    optimizer, base_lrs = build_optimizer(model, recipe.optim)
    assert base_lrs == [pytest.approx(0.1), pytest.approx(0.01)]
    weights, biases = optimizer.param_groups
    assert [p.shape for p in biases["params"]] == [torch.Size([2])]  # only the conv bias
    assert len(weights["params"]) == 3  # conv weight, BN weight and BN bias
    assert isinstance(optimizer, torch.optim.SGD)
    assert weights["momentum"] == 0.9
    assert weights["weight_decay"] == pytest.approx(1e-4)


def test_adjustable_clipping_bounds_the_raw_step_by_value(tmp_path: Path) -> None:
    # Paper solver: caffe loss, SGD, ||grad|| <= 0.01 / lr, so the raw step lr·g has norm <= 0.01.
    recipe = smoke(
        "model.identity_init=false", "optim.name=sgd", "optim.lr=0.5", "optim.momentum=0",
        "optim.weight_decay=0", "optim.bias_lr_factor=1", "schedule={kind: constant}",
        "train.loss=caffe", "train.clip={mode: adjustable, value: 0.01}",
    )  # fmt: skip
    trainer = Trainer(recipe, RunOptions(out=tmp_path), processes_from_env())
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in params]
    inputs = torch.rand(8, 1, 24, 24)
    _, grad_norm, lr = trainer.step(inputs, inputs.flip(-1))
    assert lr == pytest.approx(0.5)
    assert grad_norm > 0.01 / lr * 10  # clipping was active
    moved = math.sqrt(
        sum(float((p.detach() - b).pow(2).sum()) for p, b in zip(params, before, strict=True))
    )
    # the clip makes the step exactly 0.01; float32 parameters round it to ~1e-7 relative each
    assert moved == pytest.approx(0.01, rel=1e-3)


# -- runs ----------------------------------------------------------------------------------------


PAPER_SOLVER = (
    "optim.name=sgd", "optim.lr=0.1", "optim.momentum=0.9", "optim.weight_decay=1e-4",
    "optim.bias_lr_factor=0.1", "schedule={kind: step, step_size: 5}", "train.loss=caffe",
    "train.clip={mode: adjustable, value: 0.01}",
)  # fmt: skip


@pytest.mark.parametrize(
    "variant",
    [
        (),  # SR x2/x3/x4, Adam, cosine with warm-up
        PAPER_SOLVER,  # SGD momentum, bias lr, step schedule, adjustable clipping
        ("task={kind: denoise, levels: [30, 50, 70]}",),  # fresh noise per patch
        ("task={kind: denoise, range: [0, 75]}",),  # blind σ
        ("task={kind: jpeg, levels: [10, 20]}",),
    ],
    ids=["sr-adam", "sr-paper-sgd", "denoise", "denoise-blind", "jpeg"],
)
def test_resume_is_bit_identical_to_a_straight_run(
    tmp_path: Path, variant: tuple[str, ...]
) -> None:
    recipe = smoke("train.deterministic=true", "checkpoint.interval=100", *variant)
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(recipe, RunOptions(out=straight, quiet=True))
    first = train(recipe, RunOptions(out=split, quiet=True, stop_at=6))
    assert (first.reason, first.iteration) == ("stop_at", 6)
    assert load_training_state(split / "checkpoints" / "last.state.pt")["iteration"] == 6
    second = train(recipe, RunOptions(out=split, quiet=True, resume="auto"))
    assert (second.reason, second.iteration) == ("completed", 12)
    a = load_file(straight / "checkpoints" / "last.safetensors")
    b = load_file(split / "checkpoints" / "last.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    resumed = [r for r in metrics(split) if r.get("event") == "resume"]
    assert resumed
    assert resumed[0]["iteration"] == 6
    # CPU time of the steps is carried over the resume: it only grows, and the state keeps it
    cpu = [float(r["cpu_s"]) for r in metrics(split) if r.get("kind") == "train"]
    assert cpu == sorted(cpu)
    assert cpu[-1] > 0
    state = load_training_state(split / "checkpoints" / "last.state.pt")
    assert state["cpu_seconds"] == pytest.approx(cpu[-1], abs=0.05)  # the log rounds to 0.1 s


def test_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    real_loss = step_module.multi_supervision_loss

    def loss_that_blows_up(*args: Any, **kwargs: Any) -> torch.Tensor:
        nonlocal calls
        calls += 1
        loss = real_loss(*args, **kwargs)
        return loss * math.nan if calls == 7 else loss

    monkeypatch.setattr(step_module, "multi_supervision_loss", loss_that_blows_up)
    recipe = smoke("checkpoint.interval=3")
    with pytest.raises(DivergenceError, match="diverged at iteration 7") as error:
        train(recipe, RunOptions(out=tmp_path, quiet=True))
    assert "iteration 6" in str(error.value)  # names the checkpoint that was kept
    assert len(str(error.value).splitlines()) == 1
    state = load_training_state(tmp_path / "checkpoints" / "last.state.pt")
    assert state["iteration"] == 6
    model, meta = load_weights(tmp_path / "checkpoints" / "last.safetensors")
    assert meta["memnet.iteration"] == "6"
    assert all(torch.isfinite(t).all() for t in model.state_dict().values())
    assert metrics(tmp_path)[-1]["event"] == "diverged"


def test_time_limit_stops_with_a_checkpoint(tmp_path: Path) -> None:
    recipe = smoke("train.iterations=100000", "checkpoint.interval=100000")
    result = train(recipe, RunOptions(out=tmp_path, quiet=True, max_minutes=0.03))
    assert result.reason == "time_limit"
    assert 0 < result.iteration < 100000
    assert load_training_state(tmp_path / "checkpoints" / "last.state.pt")["iteration"] == (
        result.iteration
    )


def test_existing_run_is_not_overwritten_without_resume(tmp_path: Path) -> None:
    recipe = smoke("train.iterations=2")
    train(recipe, RunOptions(out=tmp_path, quiet=True))
    with pytest.raises(MemNetError, match="--resume auto"):
        train(recipe, RunOptions(out=tmp_path, quiet=True))
    again = train(recipe, RunOptions(out=tmp_path, quiet=True, resume="auto"))
    assert (again.reason, again.iteration) == ("completed", 2)  # nothing left to do


def test_resume_refuses_a_different_network(tmp_path: Path) -> None:
    train(smoke("train.iterations=2"), RunOptions(out=tmp_path, quiet=True))
    with pytest.raises(MemNetError, match="checkpoint holds a network"):
        train(
            smoke("train.iterations=4", "model.channels=4"),
            RunOptions(out=tmp_path, quiet=True, resume="auto"),
        )


def test_weights_carry_config_and_provenance(tmp_path: Path) -> None:
    recipe = smoke("validation.interval=6", "validation.at_start=false")
    result = train(recipe, RunOptions(out=tmp_path, quiet=True))
    model, meta = load_weights(tmp_path / "checkpoints" / "best.safetensors")
    assert model.config == recipe.model.network_config()
    assert meta["memnet.task"] == "sr"
    assert json.loads(meta["memnet.levels"]) == [2, 3, 4]
    assert meta["memnet.recipe"] == "smoke"
    assert meta["memnet.checkpoint"] == "best"
    assert float(json.loads(meta["memnet.validation"])["synthetic/x2"]) > 0
    assert result.best_psnr is not None
    saved = load_recipe(tmp_path / "recipe.yaml")  # the resolved recipe reloads as it ran
    assert saved.model_dump() == recipe.model_dump() | {"model": saved.model.model_dump()}
    assert saved.model.network_config() == recipe.model.network_config()


def test_missing_dataset_stops_before_anything_is_written(tmp_path: Path) -> None:
    recipe = smoke("data.sources=[T91]")
    empty = tmp_path / "no-datasets"
    empty.mkdir()
    with pytest.raises(MemNetError, match="set 'T91' not found"):
        train(recipe, RunOptions(out=tmp_path / "run", quiet=True, data_root=empty))
    assert not (tmp_path / "run").exists()


def test_thread_tuner_keeps_the_faster_count_and_measures_again() -> None:
    before = torch.get_num_threads()
    try:
        tuner = ThreadTuner(2, probe=3, hold_s=1.0)
        assert torch.get_num_threads() == 2
        for _ in range(3):
            tuner.record(0.9)  # two threads: slow (a busy machine)
        assert torch.get_num_threads() == 1
        for _ in range(3):
            tuner.record(0.3)
        assert tuner.current == 1  # holds the winner
        for _ in range(4):
            tuner.record(0.3)
        assert torch.get_num_threads() == 2  # measures again after `hold_s` seconds
        for seconds in (0.1, 0.1, 0.1, 0.3, 0.3, 0.3):
            tuner.record(seconds)
        assert tuner.current == 2
    finally:
        torch.set_num_threads(before)


def test_adaptive_threads_are_refused_in_deterministic_mode() -> None:
    with pytest.raises(MemNetError, match="deterministic runs need a fixed number"):
        smoke("train.threads=auto", "train.deterministic=true")


def test_a_line_cut_short_by_a_kill_is_dropped_on_resume(tmp_path: Path) -> None:
    recipe = smoke("train.iterations=4")
    train(recipe, RunOptions(out=tmp_path, quiet=True))
    path = tmp_path / "metrics.jsonl"
    path.write_text(path.read_text() + '{"kind": "train", "iter')
    train(smoke("train.iterations=6"), RunOptions(out=tmp_path, quiet=True, resume="auto"))
    kinds = [r["kind"] for r in metrics(tmp_path)]  # every line parses
    assert kinds[-1] == "event"


def test_tensorboard_scalars_when_installed(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="TensorBoard is an optional extra")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(smoke("validation.interval=6"), RunOptions(out=tmp_path, quiet=True))
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"train/loss", "train/lr", "train/data_wait_ms", "psnr/synthetic/x2"} <= set(tags)
    assert [e.step for e in events.Scalars("train/loss")] == list(range(2, 13, 2))


@pytest.mark.slow
@pytest.mark.datasets
def test_validation_of_an_identity_network_is_the_bicubic_reference(datasets: Path) -> None:
    from memnet.model import create_model
    from memnet.training.recipe import ValidationSet, ValidationSpec
    from memnet.training.validation import build_validation, run_validation

    spec = ValidationSpec(sets=[ValidationSet(set="Set5", levels=[2, 3, 4])])
    items = build_validation(spec, "sr", data_root=datasets, synthetic=smoke().data.synthetic)
    scores = run_validation(
        create_model("tiny", identity_init=True), items, device=torch.device("cpu"), tile=0
    )
    psnr = [round(scores[f"Set5/x{s}"]["psnr"], 2) for s in (2, 3, 4)]
    assert psnr == [33.66, 30.39, 28.42]  # memnet-spec.md §4, bicubic
    assert round(scores["Set5/x2"]["ssim"], 4) == 0.9299


def test_progress_bar_shows_loss_lr_and_patches_per_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from memnet.training.log import Progress

    shown: list[dict[str, str]] = []
    monkeypatch.setattr(Progress, "step", lambda self, postfix: shown.append(postfix))
    train(smoke("train.iterations=3"), RunOptions(out=tmp_path, quiet=True))
    assert len(shown) == 3  # one update per iteration (tqdm adds it/s and the ETA)
    assert set(shown[-1]) == {"loss", "lr", "patches/s"}
    assert float(shown[-1]["patches/s"]) > 0


def test_resume_from_a_path_a_snapshot_or_a_run_folder(tmp_path: Path) -> None:
    recipe = smoke("train.deterministic=true", "checkpoint.interval=100")
    straight, source = tmp_path / "straight", tmp_path / "source"
    train(recipe, RunOptions(out=straight, quiet=True))
    train(smoke("train.deterministic=true", "checkpoint.snapshot_interval=4"),
          RunOptions(out=source, quiet=True, stop_at=8))  # fmt: skip
    snapshot = source / "checkpoints" / "snapshots" / "iter_00000004.state.pt"
    assert load_training_state(snapshot)["iteration"] == 4

    # a snapshot's state file, into a new run folder: continues from iteration 4, exactly
    branch = tmp_path / "branch"
    result = train(recipe, RunOptions(out=branch, quiet=True, resume=str(snapshot)))
    assert (result.reason, result.iteration) == ("completed", 12)
    resumed = [r for r in metrics(branch) if r.get("event") == "resume"]
    assert resumed[0]["iteration"] == 4
    a = load_file(straight / "checkpoints" / "last.safetensors")
    b = load_file(branch / "checkpoints" / "last.safetensors")
    assert all(torch.equal(a[key], b[key]) for key in a)

    # a run folder resumes from its last.state.pt; weights alone cannot resume
    again = train(recipe, RunOptions(out=tmp_path / "other", quiet=True, resume=str(source)))
    assert [r["iteration"] for r in metrics(tmp_path / "other") if r.get("event") == "resume"] == [
        8
    ]
    assert again.iteration == 12
    weights_only = source / "checkpoints" / "snapshots" / "iter_00000004.safetensors"
    (source / "checkpoints" / "snapshots" / "iter_00000004.state.pt").unlink()
    with pytest.raises(MemNetError, match="weights alone cannot resume"):
        train(recipe, RunOptions(out=tmp_path / "x", quiet=True, resume=str(weights_only)))
    with pytest.raises(MemNetError, match="no such checkpoint"):
        train(recipe, RunOptions(out=tmp_path / "x", quiet=True, resume=str(tmp_path / "no.pt")))


def test_records_a_killed_run_made_after_its_checkpoint_are_not_logged_twice(
    tmp_path: Path,
) -> None:
    train(smoke("train.iterations=4"), RunOptions(out=tmp_path, quiet=True))
    path = tmp_path / "metrics.jsonl"
    lost = [{"kind": "train", "iteration": 6, "loss": 1.0}, {"kind": "val", "iteration": 6}]
    path.write_text(path.read_text() + "".join(json.dumps(r) + "\n" for r in lost))
    train(smoke("train.iterations=8"), RunOptions(out=tmp_path, quiet=True, resume="auto"))
    records = metrics(tmp_path)
    assert [r["iteration"] for r in records if r["kind"] == "train"] == [2, 4, 6, 8]
    assert all(r["loss"] != 1.0 for r in records if r["kind"] == "train")
    assert [r["event"] for r in records if r["kind"] == "event"] == [
        "start", "completed", "resume", "completed",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "kind"), [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW)]
)
def test_adam_and_adamw_keep_the_bias_group(name: str, kind: type) -> None:
    recipe = smoke(f"optim.name={name}", "optim.lr=2e-3", "optim.weight_decay=0.01",
                   "optim.bias_lr_factor=0.5", "optim.betas=[0.8, 0.99]")  # fmt: skip
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    optimizer, base_lrs = build_optimizer(model, recipe.optim)
    assert type(optimizer) is kind
    assert base_lrs == [pytest.approx(2e-3), pytest.approx(1e-3)]
    assert optimizer.param_groups[0]["betas"] == (0.8, 0.99)
    assert optimizer.param_groups[0]["weight_decay"] == pytest.approx(0.01)
