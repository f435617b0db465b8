"""The training loop: multi-supervision loss, the paper's optimiser, AMP, DDP, checkpoints.

One iteration draws a batch of aligned patches (prepared ahead by `memnet.training.patches.BatchStream`),
runs the network with its M branch outputs, takes the multi-supervision loss, clips the global
gradient norm (the paper's adjustable clipping bounds it by value / current lr) and steps the
optimiser at the learning rate the schedule gives for that iteration. Everything that decides
the next step — weights, optimiser, iteration, RNG states, data position — goes into the
checkpoint, so a resumed run continues exactly where the last checkpoint left off.

Several processes (one per GPU, or CPU processes with gloo) train one model through
DistributedDataParallel when launched by `torchrun`; only rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from memnet import __version__, devices
from memnet.cpu_settings import ThreadTuner, available_cores
from memnet.errors import MemNetError
from memnet.fsutil import atomic_write_text
from memnet.inference.engine import Restorer
from memnet.model import MemNet, MemNetOutput
from memnet.training.checkpoint import (
    STATE_FORMAT,
    RunFolder,
    capture_rng_state,
    load_training_state,
    restore_rng_state,
    weights_provenance,
)
from memnet.training.log import MetricsLog, Progress, format_duration, plural
from memnet.training.losses import multi_supervision_loss
from memnet.training.patches import (
    BatchStream,
    PatchSource,
    ValidationItem,
    build_training_set,
    build_validation,
)
from memnet.training.recipe import OptimSpec, Recipe, ScheduleSpec, dump_recipe
from memnet.training.sync_batchnorm import synchronize_batchnorm

__all__ = [
    "DivergenceError",
    "RunOptions",
    "RunResult",
    "build_optimizer",
    "lr_factor",
    "measure_throughput",
    "run_validation",
    "train",
]


class DivergenceError(MemNetError):
    """The loss or the gradient became NaN/inf; the weights were not updated with it."""


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
    run_dir: Path
    iteration: int
    reason: str  # completed, time_limit, stop_at, interrupted, terminated
    best_psnr: float | None
    model: MemNet = field(repr=False)


# --------------------------------------------------------------------------------------------
# optimiser and schedule
# --------------------------------------------------------------------------------------------


def lr_factor(schedule: ScheduleSpec, iteration: int, total: int) -> float:
    """Learning-rate multiplier for the step that makes iteration `iteration` (0-based)."""
    warm = min(1.0, (iteration + 1) / schedule.warmup) if schedule.warmup else 1.0
    if schedule.kind == "constant":
        decay = 1.0
    elif schedule.kind == "step":
        assert schedule.step_size is not None
        decay = schedule.gamma ** (iteration // schedule.step_size)
    else:
        span = max(1, total - schedule.warmup)
        progress = min(1.0, max(0.0, (iteration - schedule.warmup) / span))
        final = schedule.final_lr_factor
        decay = final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return warm * decay


def _conv_biases(model: nn.Module) -> set[int]:
    return {id(m.bias) for m in model.modules() if isinstance(m, nn.Conv2d) and m.bias is not None}


def build_optimizer(model: nn.Module, spec: OptimSpec) -> tuple[torch.optim.Optimizer, list[float]]:
    """The optimiser with two groups (conv biases at lr × bias_lr_factor) and their base lrs."""
    biases = _conv_biases(model)
    weights = [p for p in model.parameters() if id(p) not in biases]
    bias_params = [p for p in model.parameters() if id(p) in biases]
    groups: list[dict[str, Any]] = [{"params": weights}, {"params": bias_params}]
    base_lrs = [spec.lr, spec.lr * spec.bias_lr_factor]
    optimizer: torch.optim.Optimizer
    if spec.name == "sgd":
        optimizer = torch.optim.SGD(
            groups, lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay, foreach=True
        )
    elif spec.name == "adam":
        optimizer = torch.optim.Adam(
            groups, lr=spec.lr, betas=spec.betas, eps=spec.eps, weight_decay=spec.weight_decay,
            foreach=True,
        )  # fmt: skip
    else:
        optimizer = torch.optim.AdamW(
            groups, lr=spec.lr, betas=spec.betas, eps=spec.eps, weight_decay=spec.weight_decay,
            foreach=True,
        )  # fmt: skip
    return optimizer, base_lrs


def _apply_hyperparameters(optimizer: torch.optim.Optimizer, spec: OptimSpec) -> None:
    """Recipe values win over those stored in a resumed optimiser state."""
    for group in optimizer.param_groups:
        group["weight_decay"] = spec.weight_decay
        if "momentum" in group:
            group["momentum"] = spec.momentum
        if "betas" in group:
            group["betas"] = spec.betas
            group["eps"] = spec.eps


# --------------------------------------------------------------------------------------------
# processes, devices, signals
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Processes:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _processes_from_env() -> Processes:
    env = os.environ
    world = int(env.get("WORLD_SIZE", "1"))
    return Processes(
        rank=int(env.get("RANK", "0")),
        local_rank=int(env.get("LOCAL_RANK", "0")),
        world_size=world,
        local_world_size=int(env.get("LOCAL_WORLD_SIZE", str(world))),
    )


def _resolve_device(name: str, local_rank: int) -> torch.device:
    """train.device as memnet.devices resolves it for this process's GPU; MPS is refused."""
    try:
        return devices.resolve_device(name, local_rank=local_rank, allow_mps=False)
    except MemNetError as error:
        raise MemNetError(f"train.device: {error}") from None


class StopSignals:
    """Ctrl-C / SIGTERM ask the loop to stop after the current step (and checkpoint).

    A second Ctrl-C interrupts at once.
    """

    def __init__(self) -> None:
        self.reason: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.reason = "interrupted" if signum == signal.SIGINT else "terminated"

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------


def run_validation(
    model: MemNet, items: list[ValidationItem], *, device: torch.device, tile: int | None
) -> dict[str, dict[str, float]]:
    """Mean PSNR/SSIM per (set, level) with the exact test protocol; leaves the model in eval."""
    restorer = Restorer(model, device=device, tile=tile)
    results: dict[str, dict[str, float]] = {}
    for item in items:
        scores = [item.task.measure(restorer(inputs), truth) for inputs, truth in item.pairs]
        results[item.label] = {
            "psnr": float(np.mean([s.psnr for s in scores])),
            "ssim": float(np.mean([s.ssim for s in scores])),
        }
    return results


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _global_settings(threads: int, deterministic: bool, device: torch.device) -> Iterator[None]:
    """Threads and determinism for the run, restored afterwards (library callers keep theirs)."""
    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    previous_benchmark = torch.backends.cudnn.benchmark
    torch.set_num_threads(threads)
    if deterministic and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_deterministic)
        torch.backends.cudnn.benchmark = previous_benchmark


@dataclass
class _Window:
    """Sums over the steps since the last metrics line."""

    steps: int = 0
    loss: float = 0.0
    grad_norm: float = 0.0
    wait: float = 0.0
    seconds: float = 0.0

    def add(self, loss: float, grad_norm: float, wait: float, seconds: float) -> None:
        self.steps += 1
        self.loss += loss
        self.grad_norm += grad_norm
        self.wait += wait
        self.seconds += seconds


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): data}


class Trainer:
    """One process's share of a run (see `train`)."""

    def __init__(self, recipe: Recipe, options: RunOptions, procs: Processes) -> None:
        self.recipe = recipe
        self.options = options
        self.procs = procs
        self.device = _resolve_device(recipe.train.device, procs.local_rank)
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
        self.memory_format = torch.channels_last if spec.channels_last else torch.contiguous_format

        torch.manual_seed(spec.seed)  # same initial weights on every process
        self.model = MemNet.from_config(
            recipe.model.network_config(),
            identity_init=recipe.model.identity_init,
            branch_weight_init=recipe.model.branch_weight_init,
        )
        for module in self.model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = recipe.model.bn_momentum
        if spec.sync_batchnorm and procs.world_size > 1:
            # one set of BatchNorm statistics over the whole batch, as one process would have
            synchronize_batchnorm(self.model, self.device)
        # Module.to accepts memory_format at run time; the type stubs do not list it
        self.model.to(self.device, memory_format=self.memory_format)  # type: ignore[call-overload]
        self.model.train()
        self.network: nn.Module = self.model
        if procs.world_size > 1:
            self.network = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.optimizer, self.base_lrs = build_optimizer(self.model, recipe.optim)
        self.scaler = _grad_scaler() if self.amp_dtype is torch.float16 else None
        self.params = [p for p in self.model.parameters() if p.requires_grad]

        self.iteration = 0
        self.best_psnr: float | None = None
        self.best_iteration: int | None = None
        self.train_seconds = 0.0
        # CPU time of this process in training steps (all its threads, data threads included):
        # what a run costs on a shared machine, where wall time says little.
        self.cpu_seconds = 0.0
        self.last_validation: dict[str, float] = {}
        self.last_saved: int | None = None
        self.stop_reason: str | None = None
        self._stop_after_step = False
        self.resumed_recipe: dict[str, Any] = {}
        self.deadline: float | None = None
        most = torch.get_num_threads()
        adaptive = spec.threads == "auto" and self.device.type == "cpu" and most > 1
        self.threads = ThreadTuner(most) if adaptive else None

    # -- state --------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything a resume needs, as weights_only-loadable values."""
        return {
            "format": STATE_FORMAT,
            "iteration": self.iteration,
            "network": self.model.config.to_dict(),
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "rng": capture_rng_state(),
            "data": {
                "seed": self.recipe.train.seed,
                "next_batch": self.iteration,  # batch i feeds iteration i on every process
                "world_size": self.procs.world_size,
            },
            "best_psnr": self.best_psnr,
            "best_iteration": self.best_iteration,
            "train_seconds": self.train_seconds,
            "cpu_seconds": self.cpu_seconds,
            "recipe": self.recipe.model_dump(mode="json"),
            "memnet_version": __version__,
        }

    def load(self, path: Path) -> None:
        state = load_training_state(path)
        network = self.model.config.to_dict()
        if state.get("network") != network:
            raise MemNetError(
                f"{path}: checkpoint holds a network {state.get('network')}, the recipe asks "
                f"for {network}"
            )
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scaler is not None and state["scaler"]:
                self.scaler.load_state_dict(state["scaler"])
        except (RuntimeError, ValueError, KeyError) as error:
            first = str(error).strip().splitlines()[0]
            raise MemNetError(
                f"{path}: checkpoint does not fit this recipe ({first}); was optim.name changed?"
            ) from None
        _apply_hyperparameters(self.optimizer, self.recipe.optim)
        restore_rng_state(state["rng"])
        self.iteration = int(state["iteration"])
        self.best_psnr = state["best_psnr"]
        self.best_iteration = state["best_iteration"]
        self.train_seconds = float(state["train_seconds"])
        # States written before CPU time was counted: their runs used one thread, so the CPU
        # time of their steps was about their wall time.
        self.cpu_seconds = float(state.get("cpu_seconds", self.train_seconds))
        if int(state["data"]["next_batch"]) != self.iteration:
            raise MemNetError(f"{path}: inconsistent data position in the training state")
        self.resumed_recipe = state.get("recipe", {})

    def metadata(self, checkpoint: str) -> dict[str, str]:
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

    def save_last(self) -> None:
        if self.procs.is_main and self.last_saved != self.iteration:
            self.folder.save_last(self.model, self.state(), self.metadata("last"))
            self.last_saved = self.iteration

    # -- the loop -----------------------------------------------------------------------------

    def step(self, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[float, float, float]:
        """One optimiser step; returns (loss, grad norm before clipping, lr)."""
        spec = self.recipe.train
        factor = lr_factor(self.recipe.schedule, self.iteration, spec.iterations)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * factor
        lr = self.base_lrs[0] * factor
        inputs = inputs.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        autocast = (
            torch.autocast("cuda", dtype=self.amp_dtype)
            if self.amp_dtype is not None
            else contextlib.nullcontext()
        )
        with autocast:
            output = self.network(
                inputs.contiguous(memory_format=self.memory_format), branches=True
            )
        assert isinstance(output, MemNetOutput)
        loss = multi_supervision_loss(
            output.restored.float(), [b.float() for b in output.branches], targets, spec.loss
        )
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        clip = spec.clip
        max_norm = {"none": math.inf, "norm": clip.value, "adjustable": clip.value / lr}[clip.mode]
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, max_norm, foreach=True)
        loss_value, norm_value = torch.stack([loss.detach(), grad_norm.detach()]).tolist()
        # fp16 overflows are normal (the scaler skips those steps); anything else is divergence
        bad = not math.isfinite(loss_value) or (
            self.scaler is None and not math.isfinite(norm_value)
        )
        stop = self.stop_reason is not None
        if self.procs.world_size > 1:
            flags = torch.tensor([float(bad), float(stop)], device=self.device)
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
            bad, stop = bool(flags[0].item()), bool(flags[1].item())
        if bad:
            raise DivergenceError(self._divergence_message(loss_value, norm_value, lr))
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.iteration += 1
        self._stop_after_step = stop
        return loss_value, norm_value, lr

    def _share_buffers(self) -> None:
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

    def validate(self, items: list[ValidationItem], log: MetricsLog, progress: Progress) -> None:
        started = time.perf_counter()
        results = run_validation(
            self.model, items, device=self.device, tile=self.recipe.validation.tile
        )
        self.model.train()
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

    def run(self) -> RunResult:
        recipe, options, procs = self.recipe, self.options, self.procs
        main = procs.is_main
        started = time.monotonic()
        self.deadline = started + options.max_minutes * 60 if options.max_minutes else None
        resume_from = self.folder.resume_point(options.resume)
        if resume_from is not None:
            self.load(resume_from)
        total = recipe.train.iterations
        progress = Progress(main and not options.quiet, total, self.iteration)
        progress.line(self._run_line())
        if self.iteration >= total:
            progress.line(
                f"run already complete at iteration {self.iteration} "
                f"(train.iterations = {total}); raise it with --set train.iterations=N"
            )
            progress.close()
            return self._result("completed")
        # Data first: a missing dataset stops the run before anything is written.
        source = build_training_set(recipe.task, recipe.data, data_root=options.data_root)
        validation: list[ValidationItem] = []
        if main and recipe.validation.interval and recipe.validation.sets:
            validation = build_validation(
                recipe.validation,
                recipe.task.kind,
                data_root=options.data_root or recipe.data.data_root,
                synthetic=recipe.data.synthetic,
            )
        progress.line(self._data_line(source, validation, time.monotonic() - started))
        if main:
            self.folder.prepare()
            atomic_write_text(self.folder.recipe, self.recipe_yaml)
        log = MetricsLog(
            self.folder.metrics if main else None,
            self.folder.tensorboard if main and recipe.log.tensorboard else None,
            resume_at=self.iteration if resume_from is not None else None,
        )
        stream = BatchStream(
            source,
            batch_size=self.local_batch,
            augment=recipe.data.augment,
            seed=recipe.train.seed,
            rank=procs.rank,
            start=self.iteration,
            workers=recipe.data.workers,
            prefetch=recipe.data.prefetch,
            pin_memory=self.device.type == "cuda",
        )
        try:
            self._log_start(resume_from, progress, log)
            if validation and recipe.validation.at_start and resume_from is None:
                self.validate(validation, log, progress)
            with StopSignals() as signals:
                reason = self._loop(stream, validation, log, progress, signals)
            return self._result(reason)
        except DivergenceError as error:
            log.write({"kind": "event", "event": "diverged", "iteration": self.iteration,
                       "message": str(error)})  # fmt: skip
            raise
        finally:
            stream.close()
            progress.close()
            log.close()

    def _loop(
        self,
        stream: BatchStream,
        validation: list[ValidationItem],
        log: MetricsLog,
        progress: Progress,
        signals: StopSignals,
    ) -> str:
        recipe, options = self.recipe, self.options
        total = recipe.train.iterations
        deadline = self.deadline
        interval = recipe.log.interval
        window = _Window()
        reason = "completed"
        tick, cpu_tick = time.perf_counter(), time.process_time()
        while self.iteration < total:
            inputs, targets, waited = stream.next()
            # a stop asked for by a signal or the clock is agreed on by all processes in step()
            self.stop_reason = signals.reason or (
                "time_limit" if deadline is not None and time.monotonic() >= deadline else None
            )
            if options.stop_at is not None and self.iteration + 1 >= options.stop_at:
                self.stop_reason = self.stop_reason or "stop_at"
            loss, grad_norm, lr = self.step(inputs, targets)
            spent = time.perf_counter() - tick
            self.train_seconds += spent
            self.cpu_seconds += time.process_time() - cpu_tick
            window.add(loss, grad_norm, waited, spent)
            if self.threads is not None:
                self.threads.record(spent - waited)
            it = self.iteration
            patches_per_s = window.steps * recipe.train.batch_size / max(window.seconds, 1e-9)
            progress.step(
                {"loss": f"{loss:.4g}", "lr": f"{lr:.2g}", "patches/s": f"{patches_per_s:.1f}"}
            )
            if it % interval == 0 or it == total:
                self._log_window(window, lr, stream.batch_ms, log, progress)
                window = _Window()
            if validation and it % recipe.validation.interval == 0:
                self.validate(validation, log, progress)
            if self.procs.is_main:
                if it % recipe.checkpoint.interval == 0:
                    self.save_last()
                snapshots = recipe.checkpoint.snapshot_interval
                if snapshots and it % snapshots == 0:
                    self.folder.save_snapshot(
                        self.model, self.state(), self.metadata("snapshot"), it
                    )
            if self._stop_after_step:
                reason = self.stop_reason or signals.reason or "interrupted"
                break
            # validation and checkpoint writes are not training time
            tick, cpu_tick = time.perf_counter(), time.process_time()
        self._share_buffers()
        finished = reason == "completed"
        if finished and validation and self.iteration % recipe.validation.interval:
            self.validate(validation, log, progress)  # the final weights are scored too
        self.save_last()
        log.write({"kind": "event", "event": reason, "iteration": self.iteration,
                   "elapsed_s": round(self.train_seconds, 1)})  # fmt: skip
        return reason

    def _log_window(
        self, window: _Window, lr: float, batch_ms: float, log: MetricsLog, progress: Progress
    ) -> None:
        steps, total = window.steps, self.recipe.train.iterations
        record = {
            "kind": "train",
            "iteration": self.iteration,
            "loss": window.loss / steps,
            "lr": lr,
            "grad_norm": window.grad_norm / steps,
            "data_wait_ms": round(1000 * window.wait / steps, 3),
            "batch_ms": round(batch_ms, 3),
            "step_ms": round(1000 * window.seconds / steps, 2),
            "patches_per_s": round(steps * self.recipe.train.batch_size / window.seconds, 1),
            "threads": torch.get_num_threads(),
            "elapsed_s": round(self.train_seconds, 1),
            "cpu_s": round(self.cpu_seconds, 1),
        }
        log.write(record)
        left = (total - self.iteration) * window.seconds / steps
        progress.interval_line(
            f"iter {self.iteration}/{total}  loss {record['loss']:.4g}  lr {lr:.3g}  "
            f"{steps / window.seconds:.2f} it/s  {record['patches_per_s']:.0f} patches/s  "
            f"data-wait {record['data_wait_ms']:.2f} ms  eta {format_duration(left)}"
        )

    # -- messages -----------------------------------------------------------------------------

    def _run_line(self) -> str:
        recipe = self.recipe
        net = recipe.model.network_config()
        synced = ", BatchNorm synced" if recipe.train.sync_batchnorm else ""
        where = f"{self.device}" + (
            f", {self.procs.world_size} processes{synced}" if self.procs.world_size > 1 else ""
        )
        precision = {torch.bfloat16: "bf16 autocast", torch.float16: "fp16 autocast"}.get(
            self.amp_dtype,  # type: ignore[arg-type]
            "fp32",
        )
        levels = recipe.task.levels or list(recipe.task.range or [])
        return (
            f"memnet train {recipe.name}: {recipe.task.kind} {levels}, MemNet "
            f"M{net.blocks}R{net.recursions}C{net.channels}, batch {recipe.train.batch_size} of "
            f"{recipe.data.patch_size}x{recipe.data.patch_size}, {recipe.optim.name} lr "
            f"{recipe.optim.lr:g}, {recipe.train.iterations} iterations on {where} ({precision}, "
            f"{plural(torch.get_num_threads(), 'thread')}) -> {self.folder.root}"
        )

    def _log_start(self, resume_from: Path | None, progress: Progress, log: MetricsLog) -> None:
        event: dict[str, Any] = {
            "kind": "event",
            "event": "resume" if resume_from is not None else "start",
            "iteration": self.iteration,
            "device": str(self.device),
            "processes": self.procs.world_size,
            "threads": torch.get_num_threads(),
        }
        if resume_from is not None:
            changed = self._recipe_changes()
            event["from"] = str(resume_from)
            event["recipe_changes"] = changed
            note = f" (recipe changes: {', '.join(changed)})" if changed else ""
            progress.line(f"resuming from {resume_from} at iteration {self.iteration}{note}")
        log.write(event)
        if self.procs.is_main and self.recipe.log.tensorboard and not log.tensorboard:
            progress.line("TensorBoard not installed: metrics go to metrics.jsonl only")

    def _recipe_changes(self) -> list[str]:
        before = _flatten(self.resumed_recipe)
        after = _flatten(self.recipe.model_dump(mode="json"))
        return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))

    def _data_line(
        self, source: PatchSource, validation: list[ValidationItem], seconds: float
    ) -> str:
        images = sum(len(item.pairs) for item in validation)
        return (
            f"data: {len(source)} training images (degraded copies cached), "
            f"{len(validation)} validation sets with {images} images; ready after {seconds:.1f} s"
        )

    def _result(self, reason: str) -> RunResult:
        return RunResult(self.folder.root, self.iteration, reason, self.best_psnr, self.model)


def _grad_scaler() -> Any:
    """fp16 loss scaling (torch.amp.GradScaler from torch 2.3, torch.cuda.amp before)."""
    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda")
    return torch.cuda.amp.GradScaler()


def _default_threads(procs: Processes) -> int:
    return max(1, available_cores() // max(1, procs.local_world_size))


@dataclass(frozen=True)
class Throughput:
    """Training speed of a recipe, measured from its per-step metrics."""

    iterations: int
    patches_per_s: float  # median over the measured steps
    best_patches_per_s: float
    step_ms: float  # median
    data_wait_ms: float  # median
    batch_ms: float  # time a background thread takes to make one batch


def measure_throughput(
    recipe: Recipe, iterations: int, *, warmup: int = 3, data_root: str | None = None
) -> Throughput:
    """Train `warmup + iterations` steps in a throw-away folder and report the step speed."""
    import tempfile

    quick = recipe.model_copy(deep=True)
    quick.validation.interval = 0
    quick.log.interval = 1
    quick.log.tensorboard = False
    quick.checkpoint.snapshot_interval = 0
    quick.train.iterations = max(quick.train.iterations, warmup + iterations)
    quick.checkpoint.interval = quick.train.iterations
    with tempfile.TemporaryDirectory(prefix="memnet-throughput-") as folder:
        options = RunOptions(
            out=folder, quiet=True, stop_at=warmup + iterations, data_root=data_root
        )
        train(quick, options)
        lines = (Path(folder) / "metrics.jsonl").read_text().splitlines()
    steps = [r for r in map(json.loads, lines) if r.get("kind") == "train"][warmup:]
    speeds = [float(r["patches_per_s"]) for r in steps]
    return Throughput(
        iterations=len(steps),
        patches_per_s=float(np.median(speeds)),
        best_patches_per_s=max(speeds),
        step_ms=float(np.median([r["step_ms"] for r in steps])),
        data_wait_ms=float(np.median([r["data_wait_ms"] for r in steps])),
        batch_ms=float(steps[-1]["batch_ms"]),
    )


def train(recipe: Recipe, options: RunOptions | None = None) -> RunResult:
    """Run (or resume) a recipe in this process; under torchrun, this process's share of it."""
    options = options or RunOptions()
    procs = _processes_from_env()
    started_group = False
    device = _resolve_device(recipe.train.device, procs.local_rank)
    if procs.world_size > 1 and not dist.is_initialized():
        wants_cuda = device.type == "cuda"
        if wants_cuda:
            torch.cuda.set_device(procs.local_rank)
        dist.init_process_group(backend="nccl" if wants_cuda else "gloo")
        started_group = True
    try:
        fixed = recipe.train.threads
        threads = fixed if isinstance(fixed, int) else _default_threads(procs)
        with _global_settings(threads, recipe.train.deterministic, device):
            return Trainer(recipe, options, procs).run()
    finally:
        if started_group:
            dist.destroy_process_group()
