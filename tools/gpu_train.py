"""Train MemNet M6R6 for SR, denoising and JPEG on one large GPU in a fixed time budget.

    python tools/gpu_train.py --out $OUT --minutes 11          # the GPU run (tools/gpu_train.sh)
    python tools/gpu_train.py --out /tmp/dry --dry-run          # the whole script on the CPU, seconds

Each task gets an equal share of the budget. Its patches are made on the GPU
(`memnet.training.device_patches`: bicubic SR and noise on the device, JPEG views compressed whole once),
the network and optimiser are memnet's own (`memnet.training.trainer.Trainer`: bf16 autocast, channels_last,
the multi-supervision loss, gradient clipping), and the learning-rate schedule (warm-up, then
cosine) is compressed to the time: after a short measured start the run's iteration count is set
to what the remaining time allows. Throughput and a validation PSNR are printed as it goes;
`OUT/TASK/checkpoints/last.safetensors` (with memnet metadata, for `memnet eval --weights`) and
`last.state.pt` (to resume with `memnet train`) are written at the end of each task.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from memnet.training.device_patches import DevicePatches
from memnet.training.environment import Processes
from memnet.training.patches import load_clean_images
from memnet.training.recipe import Recipe, dump_recipe, parse_recipe
from memnet.training.trainer import RunOptions, Trainer
from memnet.training.validation import Validation, build_validation, run_validation


@dataclass(frozen=True)
class TaskPlan:
    kind: str
    levels: list[float]
    sources: list[str]
    validation: str
    validation_levels: list[float]


PLANS = {
    "sr": TaskPlan("sr", [2, 3, 4], ["T91", "BSD200"], "Set5", [2, 3, 4]),
    "denoise": TaskPlan("denoise", [30, 50, 70], ["Train400"], "Set12", [50]),
    "jpeg": TaskPlan("jpeg", [10, 20], ["T91", "BSD200"], "Classic5", [10, 20]),
}


def recipe_for(plan: TaskPlan, args: argparse.Namespace) -> Recipe:
    """The memnet recipe this run follows (written into the weights' metadata)."""
    dry = args.dry_run
    sources = ["synthetic"] if dry else plan.sources
    validation = "synthetic" if dry else plan.validation
    data = {"sources": sources, "patch_size": args.patch, "synthetic": {"images": 6, "size": 64}}
    if args.data_root:
        data["data_root"] = args.data_root
    return parse_recipe(
        {
            "name": f"gpu-{plan.kind}",
            "description": f"MemNet M6R6 {plan.kind} in {args.minutes / 3:.1f} GPU minutes "
            "(tools/gpu_train.py)",
            "task": {"kind": plan.kind, "levels": plan.levels},
            "model": {
                "preset": "tiny" if dry else "m6r6",
                "branch_weight_init": args.branch_weight_init,
            },
            "data": data,
            # Adam with a cosine schedule: the paper's SGD needs ~10^5 steps, this run has ~10^3
            "optim": {"name": "adam", "lr": args.lr, "weight_decay": 0.0, "bias_lr_factor": 1.0},
            "schedule": {"kind": "cosine", "warmup": 50},
            "train": {
                "iterations": 1_000_000,  # replaced by what the time allows
                "batch_size": args.batch,
                "loss": "mean",
                "clip": {"mode": "norm", "value": 1.0},
                "device": "cpu" if dry else "cuda",
                "amp": "off" if dry else "bf16",
                "channels_last": True,
            },
            "validation": {
                "sets": [
                    {
                        "set": validation,
                        "levels": plan.validation_levels,
                        **({"max_images": 2} if dry else {}),
                    }
                ]
            },
        },
        source=f"gpu_train {plan.kind}",
    )


def train_task(plan: TaskPlan, args: argparse.Namespace, seconds: float) -> dict[str, float]:
    """Train one task for `seconds` of wall time; returns its last validation PSNRs."""
    started = time.monotonic()
    recipe = recipe_for(plan, args)
    out = Path(args.out) / plan.kind
    trainer = Trainer(recipe, RunOptions(out=out, quiet=True), Processes())
    device = trainer.device
    root = args.data_root or recipe.data.data_root
    clean = load_clean_images(
        recipe.data.sources, data_root=root, synthetic=recipe.data.synthetic, kind=plan.kind
    )
    patches = DevicePatches(
        plan.kind, plan.levels, [im for _, im in clean], recipe.data.patch_size, device
    )
    validation = build_validation(
        recipe.validation, plan.kind, data_root=root, synthetic=recipe.data.synthetic
    )
    generator = torch.Generator(device=device).manual_seed(recipe.train.seed)
    ready = time.monotonic() - started
    print(
        f"[{plan.kind}] {len(patches)} training images x 8 views on {device}; ready in {ready:.1f} s"
    )
    trainer.folder.prepare()

    deadline = started + seconds
    # steps 1..10 warm up (cuDNN picks its kernels); steps 11..30 are timed
    warm, probe = (2, 6) if args.dry_run else (10, 30)
    window_start, window_steps = time.monotonic(), 0
    if args.max_iterations:
        recipe.train.iterations = args.max_iterations
    scores: dict[str, float] = {}
    next_report = time.monotonic() + args.report_every
    while trainer.iteration < recipe.train.iterations:
        inputs, targets = patches.sample(recipe.train.batch_size, generator)
        loss, _, lr = trainer.step(inputs, targets)
        window_steps += 1
        if trainer.iteration == warm:
            window_start, window_steps = time.monotonic(), 0
        if trainer.iteration == probe:
            # compress the schedule to the time: as many steps as the rest allows, after the
            # validations the reports will take (one is timed now)
            per_step = (time.monotonic() - window_start) / window_steps
            tick = time.monotonic()
            _validate(trainer, validation)
            per_validation = time.monotonic() - tick
            left = max(0.0, deadline - time.monotonic() - args.reserve)
            reports = left / (args.report_every + per_validation) + 1
            train_left = max(0.0, left - reports * per_validation)
            total = max(probe + 1, probe + int(train_left / per_step))
            recipe.train.iterations = min(total, recipe.train.iterations)
            trainer.recipe_yaml = dump_recipe(recipe)  # the metadata names the real schedule
            print(
                f"[{plan.kind}] {per_step * 1000:.1f} ms/step, validation {per_validation:.1f} s:"
                f" {recipe.train.iterations} steps"
            )
            window_start, window_steps = time.monotonic(), 0
        now = time.monotonic()
        if now >= deadline and trainer.iteration < recipe.train.iterations:
            # out of time before the schedule's end (a slower stretch): stop here, say so
            print(f"[{plan.kind}] time is up at iteration {trainer.iteration}")
            recipe.train.iterations = trainer.iteration
            trainer.recipe_yaml = dump_recipe(recipe)
        if now >= next_report or trainer.iteration == recipe.train.iterations:
            rate = window_steps * recipe.train.batch_size / max(now - window_start, 1e-9)
            scores = _validate(trainer, validation)
            shown = "  ".join(f"{k} {v:.2f}" for k, v in scores.items())
            print(
                f"[{plan.kind}] iter {trainer.iteration}/{recipe.train.iterations} loss "
                f"{loss:.4g} lr {lr:.2e} {rate:.0f} patches/s | val {shown}",
                flush=True,
            )
            window_start, window_steps = time.monotonic(), 0
            next_report = time.monotonic() + args.report_every
    trainer.train_seconds = time.monotonic() - started
    trainer.save_last()
    print(f"[{plan.kind}] saved {trainer.folder.last_weights} after {trainer.train_seconds:.0f} s")
    return scores


def _validate(trainer: Trainer, validation: Validation) -> dict[str, float]:
    results = run_validation(trainer.model, validation, device=trainer.device, tile=0)
    trainer.last_validation = {label: r["psnr"] for label, r in results.items()}
    return trainer.last_validation


def main(argv: list[str] | None = None) -> int:
    """Parse the options and train every task in turn."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT", "runs/gpu"))
    parser.add_argument("--minutes", type=float, default=11.0, help="budget for all tasks")
    parser.add_argument("--tasks", default="sr,denoise,jpeg")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--patch", type=int, default=48)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--report-every", type=float, default=30.0, help="seconds")
    parser.add_argument("--reserve", type=float, default=10.0, help="seconds kept for saving")
    parser.add_argument("--max-iterations", type=int, default=None, help="cap per task")
    parser.add_argument(
        "--branch-weight-init",
        choices=["mean", "caffe"],
        default="mean",
        help="w_m start: mean (1/M, steadier for a few minutes of Adam) or caffe (1)",
    )
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU, seconds")
    args = parser.parse_args(argv)
    if args.dry_run:
        args.batch, args.patch, args.report_every, args.reserve = 4, 24, 1e9, 0.0
        args.max_iterations = args.max_iterations or 40
    elif not torch.cuda.is_available():
        print("gpu_train: no CUDA device (use --dry-run to check the script on the CPU)")
        return 1
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    kinds = [k.strip() for k in args.tasks.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in PLANS]
    if unknown or not kinds:
        print(f"gpu_train: --tasks: unknown {unknown}; choose from {', '.join(PLANS)}")
        return 1
    started = time.monotonic()
    summary = {}
    for index, kind in enumerate(kinds):
        left = args.minutes * 60 - (time.monotonic() - started)
        share = left / (len(kinds) - index)
        summary[kind] = train_task(PLANS[kind], args, share)
    total = time.monotonic() - started
    for kind, scores in summary.items():
        mean = float(np.mean(list(scores.values()))) if scores else float("nan")
        print(f"summary {kind}: validation PSNR mean {mean:.2f} dB {scores}")
    print(f"gpu_train: {len(kinds)} tasks in {total / 60:.1f} minutes -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
