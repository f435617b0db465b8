"""m6r6 speed on a GPU against the card's measured bf16 matmul rate (run by benchmarks/gpu.sh).

    python benchmarks/gpu.py                      # CUDA; writes benchmarks/gpu-results.md
    python benchmarks/gpu.py --device cpu --dry-run   # tiny sizes on the CPU: checks the script

Inference (Mpix/s) of the plain model and of memnet's optimised network, in fp32 and bf16
autocast, channels_last, and replayed as a CUDA graph where the device has them; the real
`memnet.Restorer` on the same image (transfers and tiling included). Training patches/s for
batch 32 of 31×31 (fp32 and bf16 autocast). Percentages are of the bf16 matmul rate,
counting forward+backward as 3× forward.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import date
from functools import partial
from pathlib import Path

import torch

from memnet.inference.engine import Restorer
from memnet.inference.fast_network import InferenceMemNet
from memnet.model import MemNet, create_model, summarize

HERE = Path(__file__).resolve().parent


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn: Callable[[], object], device: torch.device, reps: int) -> float:
    fn()
    sync(device)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def matmul_rate(device: torch.device, edge: int, reps: int) -> float:
    a = torch.randn(edge, edge, device=device, dtype=torch.bfloat16)
    b = torch.randn(edge, edge, device=device, dtype=torch.bfloat16)
    return 2 * edge**3 / median_time(lambda: a @ b, device, reps) / 1e9


def graphed(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> Callable[[], object]:
    """Capture fn(x) as a CUDA graph once; each call replays it on the same input buffer."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):
            fn(x)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn(x)
    return graph.replay


def infer(
    net: Callable[[torch.Tensor], torch.Tensor], precision: str, inp: torch.Tensor
) -> torch.Tensor:
    with (
        torch.inference_mode(),
        torch.autocast(inp.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"),
    ):
        return net(inp)


def precisions(device: torch.device) -> tuple[str, ...]:
    # bf16 convolutions on a CPU without bf16 hardware are emulated, far too slow for a check.
    return ("fp32", "bf16") if device.type == "cuda" else ("fp32",)


def inference_rows(
    model: MemNet, device: torch.device, edges: list[int], reps: int
) -> list[tuple[str, int, float]]:
    fast = InferenceMemNet(model).to(device)
    plain = model.to(device).to(memory_format=torch.channels_last)
    rows = []
    for edge in edges:
        x = torch.rand(1, 1, edge, edge, device=device).contiguous(
            memory_format=torch.channels_last
        )
        for precision in precisions(device):
            for name, net in (("plain model", plain), ("optimised", fast)):
                run = partial(infer, net, precision)
                seconds = median_time(partial(run, x), device, reps)
                rows.append((f"{name}, {precision}, channels_last", edge, seconds))
                if device.type == "cuda" and name == "optimised":
                    seconds = median_time(graphed(run, x), device, reps)
                    rows.append((f"{name}, {precision}, CUDA graph", edge, seconds))
        restorer = Restorer(model, device=device, dtype="bf16" if device.type == "cuda" else "fp32")
        image = torch.rand(edge, edge).double().numpy()
        seconds = median_time(partial(restorer, image), device, reps)
        rows.append((f"Restorer ({restorer.dtype}, default tiling)", edge, seconds))
    return rows


def train_step(
    model: MemNet,
    optimizer: torch.optim.Optimizer,
    precision: str,
    x: torch.Tensor,
    target: torch.Tensor,
) -> None:
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        out = model(x, branches=True)
    losses = [((b.float() - target) ** 2).mean() for b in [out.restored, *out.branches]]
    optimizer.zero_grad(set_to_none=True)
    torch.stack(losses).sum().backward()
    optimizer.step()


def training_rows(
    device: torch.device, batch: int, patch: int, steps: int
) -> list[tuple[str, float]]:
    rows = []
    for precision in precisions(device):
        model = create_model("m6r6", identity_init=True).to(device)
        model = model.to(memory_format=torch.channels_last).train()
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        x = torch.rand(batch, 1, patch, patch, device=device).contiguous(
            memory_format=torch.channels_last
        )
        step = partial(train_step, model, optimizer, precision, x, torch.rand_like(x))
        rows.append((precision, batch / median_time(step, device, steps)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes, print only")
    parser.add_argument("--out", default=str(HERE / "gpu-results.md"))
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("no CUDA device here; use --device cpu --dry-run to check the script")
    dry = args.dry_run
    reps = 1 if dry else 5
    edges = [48] if dry else [512, 1024, 2048]
    torch.backends.cudnn.benchmark = True
    model = create_model("m6r6").eval()
    flop_px = summarize(model).mflop_per_pixel * 1e6
    peak = matmul_rate(device, 256 if dry else 8192, reps)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    lines = [
        "# Speed of memnet (GPU)",
        "",
        f"Measured by `bash benchmarks/gpu.sh` on {date.today().isoformat()}: {name}, "
        f"torch {torch.__version__}. bf16 matmul: {peak:,.0f} GFLOP/s (the ceiling below).",
        "",
        "## m6r6 inference",
        "",
        "| path | image | Mpix/s | GFLOP/s | % of bf16 matmul |",
        "|---|---|---|---|---|",
    ]
    for label, edge, seconds in inference_rows(model, device, edges, reps):
        gflops = flop_px * edge * edge / seconds / 1e9
        lines.append(
            f"| {label} | {edge}² | {edge * edge / seconds / 1e6:.2f} | {gflops:,.0f} | "
            f"{100 * gflops / peak:.0f} % |"
        )
    batch, patch = (4, 31) if dry else (32, 31)
    lines += [
        "",
        f"## m6r6 training (batch {batch} of {patch}², channels_last, SGD)",
        "",
        "| precision | patches/s | GFLOP/s (3× forward) | % of bf16 matmul |",
        "|---|---|---|---|",
    ]
    for precision, patches in training_rows(device, batch, patch, 2 if dry else 10):
        gflops = 3 * flop_px * patch * patch * patches / 1e9
        lines.append(
            f"| {precision} | {patches:,.1f} | {gflops:,.0f} | {100 * gflops / peak:.0f} % |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not dry:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
