"""A training state written by an earlier memnet still resumes, and writes states of its format.

tests/data/smoke_state_format1_iter4.state.pt was written by memnet 2026-12 (commit a03631b,
before the trainer was split into modules) running configs/smoke.yaml with `SHORT` below up to
iteration 4 (`stop_at=4`). When the file was made, resuming it with the current code to
iteration 8 gave the same weights, to the last bit, as the earlier code's own resume (a CPU
with other float32 kernels rounds otherwise, so that is not asserted here); on any machine,
resuming it in two legs gives the same weights as resuming it in one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from memnet.training.checkpoint import STATE_FORMAT, load_training_state
from memnet.training.recipe import load_recipe
from memnet.training.trainer import RunOptions, train

SMOKE = Path(__file__).parents[1] / "configs" / "smoke.yaml"
EARLIER_STATE = Path(__file__).with_name("data") / "smoke_state_format1_iter4.state.pt"
SHORT = [
    "train.iterations=8",
    "train.batch_size=4",
    "train.threads=1",
    "train.deterministic=true",
    "data.patch_size=16",
    "data.synthetic={images: 4, size: 32, seed: 0}",
    "validation.interval=4",
    "validation.sets=[{set: synthetic, levels: [2, 4], max_images: 2}]",
    "checkpoint.interval=2",
    "checkpoint.snapshot_interval=0",
    "log.interval=2",
    "log.tensorboard=false",
]


def shape_of(value: Any) -> Any:
    """The key tree of a state with its leaf types (tensors: dtype and shape)."""
    if isinstance(value, dict):
        return {key: shape_of(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [shape_of(item) for item in value]
    if isinstance(value, torch.Tensor):
        return ("tensor", value.dtype, tuple(value.shape))
    return type(value).__name__


def resume(run_dir: Path, source: Path | str, *, stop_at: int | None = None) -> dict[str, Any]:
    result = train(
        load_recipe(SMOKE, SHORT),
        RunOptions(out=run_dir, quiet=True, resume=str(source), stop_at=stop_at),
    )
    assert result.iteration == (stop_at or 8)
    return load_training_state(run_dir / "checkpoints" / "last.state.pt")


def test_an_earlier_state_resumes_and_the_format_is_unchanged(tmp_path: Path) -> None:
    earlier = load_training_state(EARLIER_STATE)
    assert (earlier["format"], earlier["iteration"]) == (STATE_FORMAT, 4)
    assert earlier["best_psnr"] is not None  # validated at iteration 4: every key is filled

    once = resume(tmp_path / "once", EARLIER_STATE)
    # the states this code writes have exactly the keys, types and tensor shapes of the earlier
    assert list(once) == list(earlier)
    assert shape_of(once) == shape_of(earlier)
    assert once["iteration"] == 8
    assert once["data"] == {"seed": 0, "next_batch": 8, "world_size": 1}

    # resumed again from a state this code wrote: the same weights as one resume
    twice = tmp_path / "twice"
    resume(twice, EARLIER_STATE, stop_at=6)
    again = resume(twice, "auto")
    for key, tensor in once["model"].items():
        assert torch.equal(again["model"][key], tensor), key
    assert again["optimizer"]["state"].keys() == once["optimizer"]["state"].keys()
    for index, moments in once["optimizer"]["state"].items():
        for name, value in moments.items():
            assert torch.equal(again["optimizer"]["state"][index][name], value), (index, name)
