"""A CPU training step with each of memnet's training kernels switched on in turn, interleaved.

    python benchmarks/training_fusions.py             # m4r4c32 and m6r6 (~3 min, 2 cores)
    python benchmarks/training_fusions.py m4r4c32     # one preset

Each variant is its own model of the preset (untrained weights, the same seed) in one process,
trained on the same batch (32 of 31×31 patches, channels_last fp32, 2 threads, Adam, the
multi-supervised loss); the variants take turns step by step (speed.interleaved_times), so
the machine's drift hits them alike:

- PyTorch's ops only (MEMNET_WINOGRAD=0's convs, BatchNorm2d and ReLU);
- the memory blocks' 3×3 convs through the Winograd kernel (memnet.training.winograd_convs);
- + τ's kernel (FusedPreActivation);
- + each recursion's τ → conv pairs fused (FusedRecursiveUnit);
- + the gates fused (FusedGateUnit): what `memnet train` runs on a CPU.

Writes benchmarks/training-fusions-results.md.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F

from memnet.cpu_settings import retain_freed_memory
from memnet.model import GateUnit, MemNet, RecursiveUnit, create_model
from memnet.training.fused_preactivations import use_fused_preactivations
from memnet.training.winograd_convs import use_winograd_convs
from speed import interleaved_times, kernels_line, machine

RESULTS = Path(__file__).with_name("training-fusions-results.md")
BATCH, PATCH = 32, 31
VARIANTS = [
    "PyTorch's ops",
    "+ Winograd convs",
    "+ τ kernel",
    "+ recursions fused",
    "+ gates fused (memnet train)",
]


def build(preset: str, variant: int) -> MemNet:
    torch.manual_seed(0)
    model = create_model(preset, identity_init=True).to(memory_format=torch.channels_last)
    if variant >= 1:
        use_winograd_convs(model)
    if variant >= 2:
        use_fused_preactivations(model)
        for module in model.modules():  # undo the fusions this variant goes without
            if variant < 3 and isinstance(module, RecursiveUnit):
                module.__class__ = RecursiveUnit
            if variant < 4 and isinstance(module, GateUnit):
                module.__class__ = GateUnit
    return model.train()


def stepper(model: MemNet, x: torch.Tensor, target: torch.Tensor) -> Callable[[], object]:
    optimizer = torch.optim.Adam(model.parameters(), 1e-4)

    def step() -> object:
        out = model(x, branches=True)
        loss = F.mse_loss(out.restored, target) + sum(
            F.mse_loss(branch, target) for branch in out.branches
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss

    return step


def rows(preset: str, reps: int) -> list[str]:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(BATCH, 1, PATCH, PATCH, generator=generator)
    x = x.contiguous(memory_format=torch.channels_last)
    target = torch.rand(BATCH, 1, PATCH, PATCH, generator=generator)
    runs = {name: stepper(build(preset, i), x, target) for i, name in enumerate(VARIANTS)}
    medians = {name: statistics.median(t) for name, t in interleaved_times(runs, reps).items()}
    plain = medians[VARIANTS[0]]
    return [
        f"| {preset} | {name} | {seconds * 1e3:.0f} ms | {BATCH / seconds:.1f} | "
        f"{plain / seconds:.2f}× |"
        for name, seconds in medians.items()
    ]


def main() -> None:
    torch.set_num_threads(2)
    retain_freed_memory()  # as the memnet command does for `memnet train`
    presets = sys.argv[1:] or ["m4r4c32", "m6r6"]
    reps = {"m4r4c32": 15, "m6r6": 5}
    lines = [
        "# A CPU training step, kernel by kernel",
        "",
        f"Measured by `python benchmarks/training_fusions.py` on {date.today()}: {machine()}. "
        f"{kernels_line()}. Batch {BATCH} of {PATCH}² patches, channels_last fp32, 2 threads, "
        "Adam; the variants interleaved step by step in one process, medians.",
        "",
        "| preset | variant | step | patches/s | speed-up |",
        "|---|---|---|---|---|",
    ]
    for preset in presets:
        lines += rows(preset, reps.get(preset, 5))
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.write_text(text)


if __name__ == "__main__":
    main()
