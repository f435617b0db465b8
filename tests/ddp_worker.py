"""Run by torchrun from test_train_ddp.py: trains the smoke recipe in one of 2 gloo processes.

Every file this process creates is recorded through Python's audit hooks (temporary files of
atomic writes, plain opens for writing, folders), then the rank's final weights and that list
are dumped outside the run folder for the test to compare.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

run_dir, dump_dir = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
written: list[str] = []


def audit(event: str, args: tuple[object, ...]) -> None:
    path: object = None
    if event == "open":
        target, mode, flags = args
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        )
        path = target if writes else None
    elif event in ("os.mkdir", "os.rename", "os.remove"):
        path = args[0]
    if isinstance(path, (str, bytes, os.PathLike)):
        resolved = Path(os.fsdecode(path)).resolve()
        if resolved.is_relative_to(run_dir):
            written.append(f"{event} {resolved.relative_to(run_dir)}")


sys.addaudithook(audit)

from memnet.training.recipe import load_recipe  # noqa: E402
from memnet.training.trainer import RunOptions, train  # noqa: E402

recipe = load_recipe(Path(__file__).parents[1] / "configs" / "smoke.yaml", sys.argv[3:])
result = train(recipe, RunOptions(out=run_dir, quiet=True))
rank = int(os.environ["RANK"])
final = {k: v.clone() for k, v in result.model.state_dict().items()}
torch.save(final, dump_dir / f"rank{rank}.pt")
(dump_dir / f"rank{rank}.json").write_text(
    json.dumps({"written": written, "iteration": result.iteration})
)
