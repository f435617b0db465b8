"""Run by torchrun from test_sync_batchnorm.py: one training step in one of 2 gloo processes.

Each process takes its half of one fixed batch; float64 so that what remains between the two
processes and one process on the whole batch is rounding. In OUT/sync the BatchNorm layers are
synchronised as `train.sync_batchnorm` does, in OUT/plain they are not (per-process statistics,
memnet's behaviour before the option). Rank 0 also runs the whole batch in one
plain process: the reference. Each dumps BatchNorm buffers and gradients after the step.
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from memnet.model import MemNet, MemNetOutput
from memnet.training.environment import Processes
from memnet.training.losses import multi_supervision_loss
from memnet.training.recipe import load_recipe
from memnet.training.sync_batchnorm import SyncedBatchNorm2d, synchronize_batchnorm
from memnet.training.trainer import RunOptions, Trainer

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
BATCH = 8
share = slice(rank * BATCH // world, (rank + 1) * BATCH // world)


def fresh() -> MemNet:
    torch.manual_seed(0)
    model = MemNet(2, 2, 8, branch_weight_init="caffe").double()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = 0.5  # large, so the running statistics show this batch plainly
    return model


def one_step(
    model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor
) -> dict[str, torch.Tensor]:
    output = model(inputs, branches=True)
    assert isinstance(output, MemNetOutput)
    multi_supervision_loss(output.restored, output.branches, targets, "caffe").backward()
    inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    record = {f"buffer.{k}": v.clone() for k, v in inner.named_buffers()}
    record.update({f"grad.{k}": p.grad.clone() for k, p in inner.named_parameters()})
    return record


generator = torch.Generator().manual_seed(1)
inputs = torch.rand(BATCH, 1, 12, 12, generator=generator, dtype=torch.float64)
inputs[BATCH // 2 :] *= 0.3  # the halves differ in statistics, as real patches do
targets = inputs + 0.05 * torch.randn(inputs.shape, generator=generator, dtype=torch.float64)


def run_both_modes() -> None:
    for mode in ("sync", "plain"):
        out = Path(sys.argv[1]) / mode
        out.mkdir(exist_ok=True)
        model = fresh()
        if mode == "sync":
            synchronize_batchnorm(model, torch.device("cpu"))
            assert all(
                isinstance(m, SyncedBatchNorm2d)
                for m in model.modules()
                if isinstance(m, nn.BatchNorm2d)
            )
        ddp = nn.parallel.DistributedDataParallel(model)
        torch.save(one_step(ddp, inputs[share], targets[share]), out / f"rank{rank}.pt")
        if rank == 0:
            torch.save(one_step(fresh(), inputs, targets), out / "whole.pt")

        # the recipe option: the trainer converts its network when train.sync_batchnorm is on
        recipe = load_recipe(
            Path(__file__).parents[1] / "configs" / "smoke.yaml",
            [f"train.sync_batchnorm={'true' if mode == 'sync' else 'false'}", "train.device=cpu"],
        )
        trainer = Trainer(
            recipe, RunOptions(out=out / "run", quiet=True), Processes(rank, rank, world, world)
        )
        synced = sum(isinstance(m, SyncedBatchNorm2d) for m in trainer.model.modules())
        batch = torch.rand(16, 1, 24, 24, generator=torch.Generator().manual_seed(2))
        trainer.step(batch[rank * 8 : rank * 8 + 8], batch[rank * 8 : rank * 8 + 8])
        stats = {k: v.clone() for k, v in trainer.model.named_buffers()}
        torch.save({"synced_layers": synced, "stats": stats}, out / f"trainer{rank}.pt")


run_both_modes()
# Every network, DDP wrapper and trainer holds the process group: they are freed (by leaving
# the function and collecting cycles) and both processes are done with it before it is
# destroyed. A process group still referenced at exit is torn down among the interpreter's
# last destructors, where gloo's threads can abort the process ("terminate called without an
# active exception") after all its results were written.
gc.collect()
dist.barrier()
dist.destroy_process_group()
