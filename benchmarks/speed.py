"""Speed of memnet on this machine against its measured ceiling, in one run.

    python benchmarks/speed.py           # everything; writes benchmarks/results.md (~11 min, 2 cores)
    python benchmarks/speed.py --quick   # small sizes, prints the table only (~1 min)

Rows:
- ceiling: a 3×3 64→64 conv (channels_last, 1×64×256×256) and a 4096² matmul, GFLOP/s;
- m6r6 inference through the real `memnet.Restorer` (defaults: optimised network streamed over
  strips of rows, automatic column windows) at 256², 512², 1024², and at 1024² once more with
  `stream=False` (whole windows, automatic tiling): Mpix/s, useful GFLOP/s (5.78 MFLOP per
  output pixel; context recomputed by tiles is not counted), % of the conv ceiling, peak RSS;
- the plain eager reference (benchmarks/eager_reference.py) on the same images, whole;
- training throughput of the paper-size m6r6 and the light m4r4c32 (the default model's
  preset) through `memnet train`'s loop (batch 32 of 31×31 patches, forward+backward counted
  as 3× forward), with the time each step waited for data;
- the earlier PyTorch port's network (benchmarks/old_port.py) on the same 512² image.

Every row runs in a fresh process, so each peak RSS (VmHWM) is its own; times are medians of
at least 3 repetitions. Weights are untrained presets: speed does not depend on their values.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from memory import peak_rss_mb  # the same VmHWM reading as the memory benchmark

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.md"
PATCH = 31
BATCH = 32
# The presets whose training is measured, each with its recipe.
TRAINING = (("m6r6", "sr-m6r6-cpu.yaml"), ("m4r4c32", "sr-cpu.yaml"))


def timed(fn: Any, reps: int) -> list[float]:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def fma_peak(threads: int) -> dict[str, float]:
    """The cores' fp32 FMA peak in GFLOP/s on `threads` threads, per instruction set the CPU
    has (benchmarks/fma_peak.cpp built by the machine's compiler; empty without one)."""
    compiler = shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++")
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    builds = {"avx2": ["-mavx2", "-mfma"], "avx512": ["-mavx512f", "-mavx2", "-mfma", "-DWIDE"]}
    needs = {"avx2": {"avx2", "fma"}, "avx512": {"avx512f", "avx2", "fma"}}
    peaks: dict[str, float] = {}
    if compiler is None:
        return peaks
    with tempfile.TemporaryDirectory() as scratch:
        for isa, isa_flags in builds.items():
            if not needs[isa] <= flags:
                continue
            binary = Path(scratch) / isa
            source = str(HERE / "fma_peak.cpp")
            command = [compiler, "-O2", "-fopenmp", *isa_flags, "-o", str(binary), source]
            subprocess.run(command, check=True)
            env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
            done = subprocess.run([str(binary)], env=env, capture_output=True, text=True)
            peaks[isa] = float(done.stdout)
    return peaks


CONV_FLOP = 2 * 64 * 64 * 9 * 256 * 256  # the ceiling's conv: 3×3, 64→64, 256²


def conv_times(reps: int) -> list[float]:
    """Seconds of each of `reps` runs of the ceiling's conv (oneDNN, channels_last), after two
    warm-up runs."""
    import torch
    import torch.nn.functional as F

    with torch.inference_mode():
        x = torch.randn(1, 64, 256, 256).contiguous(memory_format=torch.channels_last)
        w, b = torch.randn(64, 64, 3, 3), torch.randn(64)
        timed(lambda: F.conv2d(x, w, b, padding=1), 2)
        return timed(lambda: F.conv2d(x, w, b, padding=1), reps)


def adjacent_ceiling() -> float:
    """The conv ceiling (GFLOP/s, median of 7) measured right now, next to a case: this shared
    machine's speed drifts by 10-20 % within an hour, so a long case is compared with the mean
    of the ceilings measured just before and just after it."""
    return CONV_FLOP / float(np.median(conv_times(7))) / 1e9


def ceiling(reps: int) -> dict[str, float]:
    """GFLOP/s of the conv the network is made of, of a large matmul, and the FMA peak."""
    import torch

    conv_flop = CONV_FLOP
    conv = conv_times(max(reps, 7))
    with torch.inference_mode():
        a, c = torch.randn(4096, 4096), torch.randn(4096, 4096)
        timed(lambda: a @ c, 1)
        mm = timed(lambda: a @ c, max(reps, 5))
    peaks = fma_peak(torch.get_num_threads())
    return {
        "conv_gflops": conv_flop / float(np.median(conv)) / 1e9,
        "conv_best_gflops": conv_flop / min(conv) / 1e9,
        "matmul_gflops": 2 * 4096**3 / float(np.median(mm)) / 1e9,
        **{f"fma_{isa}_gflops": value for isa, value in peaks.items()},
    }


def widest_peak(ceil: dict[str, float]) -> float | None:
    """The FMA peak of the widest vectors measured (None if none was)."""
    peaks = [value for key, value in ceil.items() if key.startswith("fma_")]
    return max(peaks) if peaks else None


def interleaved_times(runs: dict[str, Callable[[], object]], reps: int) -> dict[str, list[float]]:
    """Seconds of each of `reps` repetitions of every run, after one warm-up call each; the runs
    take turns, so that the machine's drift hits them alike."""
    for run in runs.values():
        run()  # warm-up: first-touch pages, primitive caches, the kernels' first calls
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(reps):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times


def kernels_line() -> str:
    """Which build of memnet's own kernels the memnet rows ran, in words."""
    from memnet.inference import native

    return f"memnet's kernels: {native.status().split(' in /')[0]}"


def peak_line(ceil: dict[str, float]) -> str:
    """The FMA peak in words, for a results file: what no conv can pass."""
    names = {"avx2": "AVX2", "avx512": "AVX-512"}
    parts = [
        f"{names[isa]} {ceil[f'fma_{isa}_gflops']:.0f} GFLOP/s"
        for isa in names
        if f"fma_{isa}_gflops" in ceil
    ]
    return "FMA peak of the cores: " + (", ".join(parts) if parts else "not measured (no compiler)")


def picture(edge: int) -> np.ndarray:
    rng = np.random.default_rng(edge)
    yy, xx = np.mgrid[0:edge, 0:edge] / edge
    return np.clip(0.4 + 0.3 * xx * yy + rng.normal(0, 0.05, (edge, edge)), 0, 1)


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One measurement in this fresh process."""
    import torch

    sys.path.insert(0, str(HERE))
    from memnet.model import create_model, summarize

    kind, reps = spec["kind"], spec["reps"]
    torch.manual_seed(0)
    model = create_model(spec.get("preset", "m6r6")).eval()
    flop_px = summarize(model).mflop_per_pixel * 1e6
    out: dict[str, Any] = {"flop_per_pixel": flop_px}
    if kind == "restorer":
        from memnet.cpu_settings import retain_freed_memory
        from memnet.inference.engine import Restorer

        if spec.get("retain", True):  # "retain": false shows the heap without the setting
            retain_freed_memory()  # as the memnet command does
        edge = spec["edge"]
        restorer = Restorer(model, device="cpu", stream=spec.get("stream", True))
        restorer(picture(96))  # warm-up: first-call setup, not the image's work
        image = picture(edge)
        plan = restorer.plan(edge, edge)
        windows = (
            [(edge, edge)]
            if plan.grid is None
            else [(r.stop - r.start, c.stop - c.start) for r, c, _, _ in plan.grid]
        )
        streamed = [batch for batch in plan.views[0].batches if batch.streamed]
        times = timed(lambda: restorer(image), reps)
        out.update(
            windows=len(windows),
            computed_pixels=sum(h * w for h, w in windows),
            largest_window=max(windows, key=lambda hw: hw[0] * hw[1]),
            stream=plan.how == "streamed",
            strip_rows=streamed[0].strip_rows if streamed else None,
        )
    elif kind == "eager":
        from eager_reference import EagerMemNet

        edge = spec["edge"]
        eager = EagerMemNet.from_memnet(model)
        x = torch.from_numpy(picture(edge).astype(np.float32))[None, None]
        with torch.inference_mode():
            eager(x[..., :96, :96])
            times = timed(lambda: eager(x), reps)
    elif kind == "old_port":
        from old_port import OldPortNet, conv_flop_per_pixel

        edge = spec["edge"]
        port = OldPortNet().eval()
        out["flop_per_pixel"] = conv_flop_per_pixel(port)
        x = torch.rand(1, 3, edge, edge)
        with torch.inference_mode():
            port(x[..., :32, :32])
            times = timed(lambda: port(x), reps)
    elif kind == "training":
        from memnet.training.recipe import load_recipe
        from memnet.training.throughput import measure_throughput

        recipe = load_recipe(
            str(HERE.parent / "configs" / spec["recipe"]),
            [f"train.batch_size={BATCH}", f"data.patch_size={PATCH}", "train.threads=2"],
        )
        speed = measure_throughput(recipe, spec["steps"], warmup=2)
        out.update(
            patches_per_s=speed.patches_per_s,
            step_ms=speed.step_ms,
            data_wait_ms=speed.data_wait_ms,
            batch_ms=speed.batch_ms,
            steps=speed.iterations,
        )
        times = [speed.step_ms / 1e3]
    else:
        raise ValueError(kind)
    out.update(times=times, median_s=float(np.median(times)), peak_rss_mb=peak_rss_mb())
    return out


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {spec} -> {result['median_s']:.2f} s", file=sys.stderr, flush=True)
    return result


def machine() -> str:
    import torch

    import memnet

    first: dict[str, str] = {}  # each /proc/cpuinfo field of the first processor
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            first.setdefault(key.strip(), value.strip())
    cpu = first.get("model name") or platform.processor() or platform.machine()
    # Machines of one model name ("AMD EPYC") differ in what decides these numbers: the core
    # generation (family and model: this project's Zen 3 machine is family 25 model 1) and
    # whether it has AVX-512.
    family = f"family {first.get('cpu family', '?')} model {first.get('model', '?')}"
    vectors = "AVX-512" if "avx512f" in first.get("flags", "").split() else "no AVX-512"
    return (
        f"{cpu} ({family}; {vectors}), {os.cpu_count()} CPU cores, {platform.machine()}; "
        f"Python {platform.python_version()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads, oneDNN {torch.backends.mkldnn.is_available()}), "
        f"numpy {np.__version__}, memnet {memnet.__version__}"
    )


def report(results: dict[str, Any]) -> str:
    ceil = results["ceiling"]
    peak = ceil["conv_gflops"]
    suffix = results.get("suffix", "")  # the same machine's other results: results-X.md's -X

    def pct(gflops: float) -> str:
        return f"{100 * gflops / peak:.0f} %"

    lines = [
        "# Speed of memnet (CPU)",
        "",
        f"Measured by `{results.get('command', 'python benchmarks/speed.py')}` on "
        f"{date.today().isoformat()}: {results['machine']}. Times are medians of "
        f"{results['reps']} repetitions, each row in a fresh process; untrained weights.",
        "",
        "## Ceiling",
        "",
        "| kernel | GFLOP/s |",
        "|---|---|",
        f"| 3×3 conv 64→64, channels_last, 1×64×256×256 (median) | {peak:.0f} |",
        f"| same conv, best repetition | {ceil['conv_best_gflops']:.0f} |",
        f"| 4096² fp32 matmul | {ceil['matmul_gflops']:.0f} |",
        *[
            f"| FMA peak of the cores, {name} (benchmarks/fma_peak.cpp) | "
            f"{ceil[f'fma_{isa}_gflops']:.0f} |"
            for isa, name in (("avx2", "AVX2"), ("avx512", "AVX-512"))
            if f"fma_{isa}_gflops" in ceil
        ],
        "",
        "Percentages below are of the median conv rate: the network is 97 % such convs. "
        "memnet's own rows use its kernels' "
        + results.get("kernels", "default build")
        + ". The whole restore, end to end, of every released model on photos of 1, 12 and 48 Mpx "
        f"is in [end-to-end-results{suffix}.md](end-to-end-results{suffix}.md), the network under "
        f"every other runtime in [runtimes-results{suffix}.md](runtimes-results{suffix}.md).",
        "",
        "## m6r6 inference",
        "",
        "| image | path | time | Mpix/s | GFLOP/s | % of ceiling | peak RSS | windows "
        "(computed / output pixels) | speed-up over eager |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    eager_by_edge = {r["edge"]: r for r in results["eager"]}
    for row in results["restorer"] + results.get("tiled", []):
        edge, pixels = row["edge"], row["edge"] ** 2
        if row.get("stream"):
            path = f"Restorer (default: streamed in {row['strip_rows']}-row strips)"
        elif row["windows"] == 1:
            path = "Restorer (default: whole image, fits the budget)"
        else:
            path = "Restorer, stream=False (tiles)"
        gflops = row["flop_per_pixel"] * pixels / row["median_s"] / 1e9
        eager = eager_by_edge.get(edge)
        speedup = f"{eager['median_s'] / row['median_s']:.2f}×" if eager else "—"
        lines.append(
            f"| {edge}² | {path} | {row['median_s']:.2f} s | "
            f"{pixels / row['median_s'] / 1e6:.4f} | {gflops:.0f} | {pct(gflops)} | "
            f"{row['peak_rss_mb']:,.0f} MB | {row['windows']} "
            f"({row['computed_pixels'] / pixels:.2f}×) | {speedup} |"
        )
        if eager and row in results["restorer"]:
            g = eager["flop_per_pixel"] * pixels / eager["median_s"] / 1e9
            lines.append(
                f"| {edge}² | eager reference | {eager['median_s']:.2f} s | "
                f"{pixels / eager['median_s'] / 1e6:.4f} | {g:.0f} | {pct(g)} | "
                f"{eager['peak_rss_mb']:,.0f} MB | 1 (whole image) | 1.00× |"
            )
    lines += [
        "",
        "## Training",
        "",
        "| preset (recipe) | batch | patches/s | step | GFLOP/s (3× forward) | % of ceiling "
        "| ceiling beside it | % of it | data wait per step |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for train in results["training"]:
        train_gflops = 3 * train["flop_per_pixel"] * PATCH**2 * train["patches_per_s"] / 1e9
        beside = train.get("ceiling_beside", peak)
        lines.append(
            f"| {train['preset']} (configs/{train['recipe']}) | {BATCH} × {PATCH}² | "
            f"{train['patches_per_s']:.1f} | {train['step_ms'] / 1e3:.2f} s | "
            f"{train_gflops:.0f} | {pct(train_gflops)} | {beside:.0f} | "
            f"{100 * train_gflops / beside:.0f} % | {train['data_wait_ms']:.1f} ms |"
        )
    steps = results["training"][0]["steps"]
    lines += [
        "",
        f"Batch {BATCH}, 2 threads, median of {steps} steps after 2 warm-up steps, through "
        "memnet.training's own loop and data pipeline (a background thread makes the batches). "
        "The memory blocks' 3×3 convs train through memnet's Winograd kernel (forward, input and "
        "weight gradients; memnet.training.winograd_convs), which is how m6r6 passes the "
        "direct-conv ceiling; every pre-activation runs through memnet's BatchNorm+ReLU kernel, "
        "fused into the Winograd call that reads it in the recursions and, in the gates, into "
        "one gate-kernel call over the memories and, backwards, one call of the gate's backward "
        "kernel per memory (memnet.training.fused_preactivations). Each kernel's "
        "share of the step: [training-fusions-results.md](training-fusions-results.md). "
        "*ceiling beside it*: the conv ceiling measured just before and just after the row (their "
        "mean), since this machine's speed drifts within a run; *% of it* compares the row with "
        "that.",
    ]
    old = results.get("old_port")
    if old is not None:
        old_pixels = old["edge"] ** 2
        old_gflops = old["flop_per_pixel"] * old_pixels / old["median_s"] / 1e9
        same = next((r for r in results["restorer"] if r["edge"] == old["edge"]), None)
        lines += [
            "",
            "## The earlier PyTorch port's network",
            "",
            "| image | MFLOP/pixel | time | GFLOP/s | % of ceiling | peak RSS "
            "| m6r6 Restorer, same image |",
            "|---|---|---|---|---|---|---|",
            f"| {old['edge']}² RGB | {old['flop_per_pixel'] / 1e6:.1f} | {old['median_s']:.1f} s "
            f"| {old_gflops:.0f} | {pct(old_gflops)} | {old['peak_rss_mb']:,.0f} MB | "
            + (
                f"{same['median_s']:.2f} s ({old['median_s'] / same['median_s']:.0f}× faster) |"
                if same
                else "— |"
            ),
        ]
    lines += [
        "",
        "- *GFLOP/s* counts the network's useful work (MFLOP per output pixel × output pixels);",
        "  tiles recompute their 74 px of context, shown as *computed / output pixels*; streamed",
        "  strips (memnet.inference.streaming) recompute nothing.",
        "- *peak RSS* is the whole process (Python, torch, image buffers) at its high-water mark.",
        "- The eager reference is not run at 1024²: whole, it needs over 11 GB of activations"
        + ("." if results["eager"] else "; in this run not at all (--without eager)."),
        "- Past the conv ceiling: the 3×3 convs as Winograd F(4×4, 3×3), measured in [winograd.md](winograd.md).",
        "",
    ]
    return "\n".join(lines)


def results_argument(parser: argparse.ArgumentParser, default: Path) -> None:
    """--results: where a benchmark writes its Markdown (and any .json beside it), so that a run
    on another machine can be kept beside the default file's."""
    parser.add_argument(
        "--results",
        type=Path,
        default=default,
        help=f"the Markdown file to write; default benchmarks/{default.name}",
    )


def results_flag(path: Path, default: Path) -> str:
    """The --results part of the command line that a results file quotes ("" for the default)."""
    if path.resolve() == default.resolve():
        return ""
    return f" --results {os.path.relpath(path, HERE.parent)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, print only")
    parser.add_argument(
        "--without",
        nargs="+",
        default=[],
        choices=["eager", "old_port"],
        help="leave out the slow reference rows (on a slower machine they take most of the run)",
    )
    results_argument(parser, RESULTS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    reps = 3
    edges = [128, 256] if args.quick else [256, 512, 1024]
    eager_edges = [] if "eager" in args.without else [128, 256] if args.quick else [256, 512]
    old_edge = 128 if args.quick else 512
    partial = args.results.with_suffix(".partial.json")
    command = "python benchmarks/speed.py" + (" --quick" if args.quick else "")
    if args.without:
        command += " --without " + " ".join(args.without)
    command += results_flag(args.results, RESULTS)

    def keep(results: dict[str, Any]) -> None:
        # Every finished row is kept at once, so a run cut short still shows what it measured.
        if not args.quick:
            partial.write_text(json.dumps(results, indent=1))

    results: dict[str, Any] = {
        "command": command,
        "suffix": args.results.stem.removeprefix("results"),
        "machine": machine(),
        "reps": reps,
        "ceiling": ceiling(reps),
        "kernels": kernels_line().removeprefix("memnet's kernels: "),
    }
    print(f"ceiling {results['ceiling']}", file=sys.stderr, flush=True)
    results["restorer"], results["eager"], results["tiled"] = [], [], []
    keep(results)
    for e in edges:
        results["restorer"].append(
            {"edge": e, **run_child({"kind": "restorer", "edge": e, "reps": reps})}
        )
        keep(results)
    # The same Restorer without row streaming, on the size where it has to tile.
    spec = {"kind": "restorer", "edge": edges[-1], "reps": reps, "stream": False}
    results["tiled"].append({"edge": edges[-1], **run_child(spec)})
    keep(results)
    for e in eager_edges:
        results["eager"].append(
            {"edge": e, **run_child({"kind": "eager", "edge": e, "reps": reps})}
        )
        keep(results)
    results["training"] = []
    for preset, recipe in TRAINING:
        spec = {"kind": "training", "preset": preset, "recipe": recipe, "reps": 1}
        before = adjacent_ceiling()
        row = run_child({**spec, "steps": 2 if args.quick else 15})
        row["ceiling_beside"] = (before + adjacent_ceiling()) / 2
        results["training"].append({"preset": preset, "recipe": recipe, **row})
        keep(results)
    keep(results)
    if "old_port" not in args.without:
        results["old_port"] = {
            "edge": old_edge,
            **run_child({"kind": "old_port", "edge": old_edge, "reps": reps}),
        }
    text = report(results)
    print(text)
    if not args.quick:
        args.results.write_text(text)
        args.results.with_suffix(".json").write_text(json.dumps(results, indent=1))
        partial.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
