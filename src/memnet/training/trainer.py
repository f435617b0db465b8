"""`train` and the `Trainer`: one process's network, optimiser and step, state and checkpoints.

One iteration takes the next batch of aligned patches (prepared ahead by
`memnet.training.batches.BatchStream`) and makes one optimiser step (`memnet.training.step`);
the loop around it — data, validation, checkpoints, stops — is `memnet.training.loop`.
Validation scores the weights by `memnet eval`'s path (`memnet.training.validation`); the
training state (`memnet.training.state`) holds everything that decides the next step, so a
resumed run continues exactly where the last checkpoint left off. Under `torchrun` each process
trains its share of the batch (`memnet.training.environment`); only rank 0 writes files.
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from memnet.cpu_settings import ThreadTuner
from memnet.errors import MemNetError
from memnet.model import MemNet
from memnet.training.checkpoint import RunFolder, weights_provenance
from memnet.training.environment import (
    Processes,
    default_threads,
    global_settings,
    processes_from_env,
    training_device,
)
from memnet.training.fused_preactivations import use_fused_preactivations
from memnet.training.log import MetricsLog, Progress
from memnet.training.loop import run_training
from memnet.training.optimizer import build_optimizer, grad_scaler
from memnet.training.recipe import Recipe, dump_recipe
from memnet.training.state import Counters, resume_state, training_state
from memnet.training.step import DivergenceError, TrainingStep
from memnet.training.sync_batchnorm import synchronize_batchnorm
from memnet.training.validation import Validation, run_validation
from memnet.training.winograd_convs import use_winograd_convs

__all__ = ["DivergenceError", "RunOptions", "RunResult", "Trainer", "train"]


@dataclass
class RunOptions:
    """How to run a recipe (what the command line adds to it)."""

    out: str | os.PathLike[str] | None = None  # run folder; default runs/<recipe name>
    resume: str | None = None  # None, "auto" or a checkpoint path
    max_minutes: float | None = None  # stop (and checkpoint) after this much wall time
    stop_at: int | None = None  # stop (and checkpoint) after this iteration, as if interrupted
    quiet: bool = False
    data_root: str | os.PathLike[str] | None = None


@dataclass
class RunResult:
    """How a run ended: where, at which iteration, why, and its best validation PSNR."""

    run_dir: Path
    iteration: int
    reason: str  # completed, time_limit, stop_at, interrupted, terminated
    best_psnr: float | None
    model: MemNet = field(repr=False)

    def summary(self) -> str:
        """One line: how and where the run ended, its best validation, how to continue it."""
        best = f", best validation {self.best_psnr:.3f} dB" if self.best_psnr else ""
        how = {
            "completed": "finished",
            "time_limit": "stopped at the time limit",
            "stop_at": "stopped",
            "interrupted": "interrupted",
            "terminated": "terminated",
        }[self.reason]
        again = "" if self.reason == "completed" else " (continue with --resume auto)"
        return (
            f"{how} at iteration {self.iteration}{best}; checkpoints in "
            f"{self.run_dir / 'checkpoints'}{again}"
        )


def _build_model(recipe: Recipe, procs: Processes, device: torch.device) -> MemNet:
    """The recipe's network with its initial weights (the same on every process), on `device`."""
    torch.manual_seed(recipe.train.seed)
    model = MemNet.from_config(
        recipe.model.network_config(),
        identity_init=recipe.model.identity_init,
        branch_weight_init=recipe.model.branch_weight_init,
    )
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = recipe.model.bn_momentum
    if recipe.train.sync_batchnorm and procs.world_size > 1:
        # one set of BatchNorm statistics over the whole batch, as one process would have
        synchronize_batchnorm(model, device)
    return model


class Trainer:
    """One process's share of a run (see `train`)."""

    def __init__(self, recipe: Recipe, options: RunOptions, procs: Processes) -> None:
        self.recipe = recipe
        self.options = options
        self.procs = procs
        self.device = training_device(recipe, procs)
        self.recipe_yaml = dump_recipe(recipe)
        self.folder = RunFolder(options.out or Path("runs") / recipe.name)
        spec = recipe.train
        if spec.batch_size % procs.world_size:
            raise MemNetError(
                f"train.batch_size {spec.batch_size} is not divisible by the "
                f"{procs.world_size} processes"
            )
        self.local_batch = spec.batch_size // procs.world_size
        amp = spec.amp if spec.amp != "auto" else "bf16"
        self.amp_dtype = (
            {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
            if self.device.type == "cuda"
            else None
        )
        memory_format = torch.channels_last if spec.channels_last else torch.contiguous_format
        self.model = _build_model(recipe, procs, self.device)
        # Module.to accepts memory_format at run time; the type stubs do not list it
        self.model.to(self.device, memory_format=memory_format)  # type: ignore[call-overload]
        if self.device.type == "cpu":
            use_winograd_convs(self.model)
            use_fused_preactivations(self.model)
        self.model.train()
        network: nn.Module = self.model
        if procs.world_size > 1:
            network = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.optimizer, base_lrs = build_optimizer(self.model, recipe.optim)
        self.scaler = grad_scaler() if self.amp_dtype is torch.float16 else None
        self._step = TrainingStep(
            network, self.optimizer, base_lrs, self.scaler, recipe=recipe, device=self.device,
            amp_dtype=self.amp_dtype, memory_format=memory_format, world_size=procs.world_size,
        )  # fmt: skip

        self.iteration = 0
        self.best_psnr: float | None = None
        self.best_iteration: int | None = None
        self.train_seconds = 0.0
        self.cpu_seconds = 0.0  # of this process's training steps, its data threads included
        self.last_validation: dict[str, float] = {}
        self.last_saved: int | None = None
        self.stop_reason: str | None = None
        self.stopping = False  # all processes agreed to stop after the step just made
        self.resumed_recipe: dict[str, Any] = {}
        self.deadline: float | None = None
        most = torch.get_num_threads()
        adaptive = spec.threads == "auto" and self.device.type == "cpu" and most > 1
        self.threads = ThreadTuner(most) if adaptive else None

    # -- state --------------------------------------------------------------------------------

    def counters(self) -> Counters:
        """The run's counters as a training state holds them."""
        return Counters(
            self.iteration, self.best_psnr, self.best_iteration, self.train_seconds,
            self.cpu_seconds,
        )  # fmt: skip

    def state(self) -> dict[str, Any]:
        """Everything a resume needs (`memnet.training.state`)."""
        return training_state(
            self.counters(), model=self.model, optimizer=self.optimizer, scaler=self.scaler,
            recipe=self.recipe, world_size=self.procs.world_size,
        )  # fmt: skip

    def load(self, path: Path) -> None:
        """Continue from the training state at `path`."""
        resumed = resume_state(
            path, model=self.model, optimizer=self.optimizer, scaler=self.scaler,
            recipe=self.recipe,
        )  # fmt: skip
        counters = resumed.counters
        self.iteration = counters.iteration
        self.best_psnr, self.best_iteration = counters.best_psnr, counters.best_iteration
        self.train_seconds, self.cpu_seconds = counters.train_seconds, counters.cpu_seconds
        self.resumed_recipe = resumed.recipe

    def metadata(self, checkpoint: str) -> dict[str, str]:
        """The provenance written into a weights file of this run."""
        task = self.recipe.task
        return weights_provenance(
            self.recipe.name,
            self.recipe_yaml,
            task.kind,
            list(task.levels),
            list(task.range) if task.range is not None else None,
            iteration=self.iteration,
            checkpoint=checkpoint,
            seconds=self.train_seconds,
            validation=self.last_validation,
        )

    def save_snapshot(self) -> None:
        """Keep a numbered snapshot of the weights and the state at this iteration."""
        self.folder.save_snapshot(
            self.model, self.state(), self.metadata("snapshot"), self.iteration
        )

    def save_last(self) -> None:
        """Write the 'last' checkpoint (rank 0, once per iteration)."""
        if self.procs.is_main and self.last_saved != self.iteration:
            self.folder.save_last(self.model, self.state(), self.metadata("last"))
            self.last_saved = self.iteration

    # -- steps --------------------------------------------------------------------------------

    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[float, float, float]:
        """One optimiser step; returns (loss, grad norm before clipping, lr)."""
        result = self._step(
            inputs, targets, iteration=self.iteration, stop=self.stop_reason is not None
        )
        if result.diverged:
            raise DivergenceError(
                self._divergence_message(result.loss, result.grad_norm, result.lr)
            )
        self.iteration += 1
        self.stopping = result.stop
        return result.loss, result.grad_norm, result.lr

    def share_buffers(self) -> None:
        """Give every process rank 0's BatchNorm statistics (DDP syncs them only at forward).

        Each process updates its running statistics with its own batch, so after the last step
        they differ; rank 0's are the ones in the checkpoints.
        """
        if self.procs.world_size > 1:
            for buffer in self.model.buffers():
                dist.broadcast(buffer, src=0)

    def _divergence_message(self, loss: float, norm: float, lr: float) -> str:
        kept = (
            f"the last good checkpoint ({self.folder.last_state}, iteration {self.last_saved}) is kept"
            if self.last_saved is not None
            else "no checkpoint had been written yet"
        )
        return (
            f"training diverged at iteration {self.iteration + 1}: loss {loss}, gradient norm "
            f"{norm} (lr {lr:.3g}); the step was not applied and {kept}; lower optim.lr or "
            "tighten train.clip, then resume with --resume auto"
        )

    # -- validation ---------------------------------------------------------------------------

    def validate(self, validation: Validation, log: MetricsLog, progress: Progress) -> None:
        """Score the current weights; the best so far are saved as checkpoints/best."""
        started = time.perf_counter()
        results = run_validation(
            self.model, validation, device=self.device, tile=self.recipe.validation.tile
        )
        psnr = {label: r["psnr"] for label, r in results.items()}
        mean = float(np.mean(list(psnr.values())))
        self.last_validation = psnr
        improved = self.best_psnr is None or mean > self.best_psnr
        if improved:
            self.best_psnr, self.best_iteration = mean, self.iteration
            self.folder.save_best(self.model, self.metadata("best"))
        seconds = time.perf_counter() - started
        log.write(
            {
                "kind": "val",
                "iteration": self.iteration,
                "psnr": psnr,
                "ssim": {label: r["ssim"] for label, r in results.items()},
                "psnr_mean": mean,
                "best": improved,
                "seconds": round(seconds, 2),
                "elapsed_s": round(self.train_seconds, 1),
                "cpu_s": round(self.cpu_seconds, 1),
            }
        )
        shown = "  ".join(f"{label} {value:.2f}" for label, value in psnr.items())
        progress.line(
            f"validation @ {self.iteration}: {shown}  (mean {mean:.3f} dB"
            f"{', best' if improved else ''}; {seconds:.1f} s)"
        )

    # -- the run ------------------------------------------------------------------------------

    def run(self) -> RunResult:
        """Resume if asked, load the data, train to the end or a stop, checkpoint."""
        return run_training(self)

    def result(self, reason: str) -> RunResult:
        """The run's outcome as it stands now."""
        return RunResult(self.folder.root, self.iteration, reason, self.best_psnr, self.model)


def train(recipe: Recipe, options: RunOptions | None = None) -> RunResult:
    """Run (or resume) a recipe in this process; under torchrun, this process's share of it."""
    options = options or RunOptions()
    procs = processes_from_env()
    started_group = False
    device = training_device(recipe, procs)
    if procs.world_size > 1 and not dist.is_initialized():
        wants_cuda = device.type == "cuda"
        if wants_cuda:
            torch.cuda.set_device(procs.local_rank)
        dist.init_process_group(backend="nccl" if wants_cuda else "gloo")
        started_group = True
    try:
        fixed = recipe.train.threads
        threads = fixed if isinstance(fixed, int) else default_threads(procs)
        with global_settings(threads, recipe.train.deterministic, device):
            return Trainer(recipe, options, procs).run()
    finally:
        if started_group:
            # the trainer's DDP wrapper holds the group: collect it (cycles included) first, so
            # the group is not torn down among the interpreter's last destructors at exit,
            # where gloo's threads can abort a process whose work is done
            gc.collect()
            dist.destroy_process_group()
