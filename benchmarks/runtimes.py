"""The MemNet network under every CPU runtime installed here, against memnet, in one run.

    python benchmarks/runtimes.py            # 1024² (1 Mpx); writes runtimes-results.md (~15 min)
    python benchmarks/runtimes.py --edge 512 # another size
    python benchmarks/runtimes.py --quick    # 128², prints the table only (~2 min)

For the default model (`memnet-sr`, M4R4C32) and the released paper-size `memnet-sr-m6r6`
(M6R6C64), one gray plane of the size given (the network's input: for SR the bicubic-upscaled Y
plane at output size) runs through:

- memnet: `memnet.Restorer`, what `memnet restore` and the Python API use (the optimised
  network, streamed over strips where the budget needs it, its 3×3 convs as Winograd F(4×4)
  where memnet.inference.winograd measured that faster), and the same with direct convs only;
- PyTorch eager: the plain `MemNet` module under `torch.inference_mode`, channels_last;
- `torch.compile`: the plain module compiled by Inductor for this size (the compile itself is
  timed apart, as *first call*);
- ONNX Runtime: the file `memnet export` writes, CPU provider, every graph optimisation on,
  as many intra-op threads as torch uses;
- OpenVINO: the same ONNX file compiled for its CPU plugin with a latency hint and as many
  threads (`pip install -c constraints.txt -e ".[onnx,bench]"`).

A runtime that is not installed is reported as such. Each row runs in a fresh process (so its
peak RSS is its own) after one warm-up call, and times the median of the repetitions. The
conv ceiling is measured in the same run (benchmarks/speed.py's), and every rate counts the
network's useful work only: MFLOP per pixel × pixels.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from memory import peak_rss_mb
from speed import ceiling, kernels_line, machine, peak_line, results_argument, results_flag, timed

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "runtimes-results.md"
MODELS = (
    ("memnet-sr", "default model memnet-sr (M4R4C32)"),
    ("memnet-sr-m6r6", "paper size memnet-sr-m6r6 (M6R6C64)"),
)
RUNTIMES = (
    ("memnet", "memnet Restorer"),
    ("memnet-avx2", "memnet Restorer, its AVX2 kernels (MEMNET_ISA=avx2)"),
    ("memnet-direct", "memnet Restorer, direct convs only (MEMNET_WINOGRAD=0)"),
    ("eager", "PyTorch eager (plain module)"),
    ("compile", "torch.compile (Inductor)"),
    ("onnxruntime", "ONNX Runtime"),
    ("openvino", "OpenVINO, fp32"),
    ("openvino-default", "OpenVINO, its default precision for this CPU"),
)


def network(name: str) -> Any:
    """The released model `name`, or an untrained preset (speed does not depend on weights)."""
    import torch

    from memnet.model import create_model
    from memnet.weights.loading import load_model

    torch.manual_seed(0)
    if name.startswith("memnet-"):
        released = load_model(name).network
        assert released is not None  # a model name, never a baseline method
        return released.eval()
    return create_model(name).eval()


def plane(edge: int) -> np.ndarray:
    rng = np.random.default_rng(edge)
    yy, xx = np.mgrid[0:edge, 0:edge] / edge
    values = 0.4 + 0.3 * xx * yy + rng.normal(0, 0.05, (edge, edge))
    return np.clip(values, 0, 1).astype(np.float32)


def onnx_file(model: Any, folder: str) -> str:
    from memnet.interop.export import export_model

    return str(export_model(model, Path(folder) / "net.onnx", "onnx"))


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """One runtime on one model, in this fresh process: a callable, warmed up, then timed."""
    import torch

    from memnet.model import summarize

    runtime, edge, reps = spec["runtime"], spec["edge"], spec["reps"]
    model = network(spec["model"])
    threads = torch.get_num_threads()
    image = plane(edge)
    x = torch.from_numpy(image)[None, None]
    folder = tempfile.mkdtemp(prefix="memnet-runtimes-")
    precision = "fp32"
    if runtime.startswith("memnet"):
        from memnet.cpu_settings import retain_freed_memory
        from memnet.inference.engine import Restorer

        retain_freed_memory()  # as the memnet command does
        restorer = Restorer(model, device="cpu")

        def run() -> Any:
            return restorer(image)
    elif runtime in ("eager", "compile"):
        module = model.to(memory_format=torch.channels_last)
        xc = x.contiguous(memory_format=torch.channels_last)
        if runtime == "compile":
            module = torch.compile(module, dynamic=False)

        def run() -> Any:
            with torch.inference_mode():
                return module(xc)
    elif runtime == "onnxruntime":
        try:
            import onnxruntime as ort
        except ImportError:
            return {"missing": "pip install onnxruntime"}
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(
            onnx_file(model, folder), options, providers=["CPUExecutionProvider"]
        )
        feed = {"input": x.numpy()}

        def run() -> Any:
            return session.run(None, feed)
    elif runtime.startswith("openvino"):
        try:
            import openvino as ov
        except ImportError:
            return {"missing": "pip install openvino"}
        core = ov.Core()
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
        if runtime == "openvino":  # where the CPU has bf16 instructions, OpenVINO's default is bf16
            config["INFERENCE_PRECISION_HINT"] = "f32"
        compiled = core.compile_model(core.read_model(onnx_file(model, folder)), "CPU", config)
        # An element type, printed as "<Type: 'float32'>": keep the name only.
        precision = str(compiled.get_property("INFERENCE_PRECISION_HINT")).split("'")[-2]
        request = compiled.create_infer_request()
        feed_ov = x.numpy()

        def run() -> Any:
            return request.infer({0: feed_ov})
    else:
        raise ValueError(runtime)
    start = time.perf_counter()
    output = run()  # warm-up: first-call setup (for torch.compile, the compilation)
    first_s = time.perf_counter() - start
    times = timed(run, reps)
    # Kept for the driver, which compares every runtime's output with memnet's.
    np.save(spec["output"], _as_array(output))
    return {
        "precision": precision,
        "flop_per_pixel": summarize(model).mflop_per_pixel * 1e6,
        "threads": threads,
        "first_s": first_s,
        "times": times,
        "median_s": float(np.median(times)),
        "peak_rss_mb": peak_rss_mb(),
    }


def _as_array(output: Any) -> np.ndarray:
    """The one output plane of any runtime's result, as float32 numpy."""
    if hasattr(output, "to_tuple"):  # OpenVINO's result: outputs by port
        output = output.to_tuple()
    if isinstance(output, (list, tuple)):
        output = output[0]
    if hasattr(output, "detach"):
        output = output.detach().float().numpy()
    return np.asarray(output, dtype=np.float32).reshape(-1)


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    env = dict(os.environ)
    if spec["runtime"] == "memnet-direct":
        env["MEMNET_WINOGRAD"] = "0"
    if spec["runtime"] == "memnet-avx2":  # what a CPU without AVX-512 runs
        env["MEMNET_ISA"] = "avx2"
    done = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
    )
    if done.returncode != 0:  # a runtime that fails on this model is a result, not a crash
        reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        if done.returncode == -9:  # SIGKILL with nothing said: the kernel's out-of-memory killer
            reason = "killed (SIGKILL: out of memory, most likely)"
        print(f"  {spec} failed: {reason}", file=sys.stderr, flush=True)
        return {"failed": reason[:200]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"  {spec} -> {result.get('median_s', result)}", file=sys.stderr, flush=True)
    return result


def report(results: dict[str, Any], command: str) -> str:
    peak = results["ceiling"]["conv_gflops"]
    edge = results["edge"]
    pixels = edge * edge
    lines = [
        "# memnet against other CPU runtimes: the network alone",
        "",
        f"Measured by `{command}` on {date.today().isoformat()}: {results['machine']}. "
        f"One {edge}×{edge} gray plane through the network, each row in a fresh process, "
        f"median of {results['reps']} repetitions after a warm-up call. Conv ceiling in the "
        f"same run: {peak:.0f} GFLOP/s (3×3 conv 64→64, channels_last). "
        f"{peak_line(results['ceiling'])}. {results['kernels']}.",
        "",
    ]
    for model, title in MODELS:
        rows = results["rows"][model]
        ours = rows.get("memnet", {}).get("median_s")
        lines += [
            f"## {title}",
            "",
            "| runtime | precision | time | GFLOP/s | % of ceiling | memnet is faster by | "
            "first call | peak RSS | max abs difference from memnet |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for runtime, label in RUNTIMES:
            row = rows[runtime]
            if "median_s" not in row:
                why = row.get("missing") or f"failed: {row.get('failed')}"
                lines.append(f"| {label} | | {why} | | | | | | |")
                continue
            gflops = row["flop_per_pixel"] * pixels / row["median_s"] / 1e9
            ratio = "—" if runtime == "memnet" or not ours else f"{row['median_s'] / ours:.2f}×"
            diff = "—" if runtime == "memnet" else f"{row.get('max_diff', float('nan')):.1e}"
            lines.append(
                f"| {label} | {row['precision']} | {row['median_s']:.2f} s | {gflops:.0f} | "
                f"{100 * gflops / peak:.0f} % | {ratio} | {row['first_s']:.1f} s | "
                f"{row['peak_rss_mb']:,.0f} MB | {diff} |"
            )
        lines.append("")
    lines += [
        "- *memnet is faster by*: the runtime's time over memnet's (above 1: memnet is faster).",
        "- *first call*: the warm-up call, not in the time; for torch.compile it holds the"
        " compilation.",
        "- *peak RSS*: the whole process at its high-water mark (VmHWM).",
        "- *max abs difference*: over the output plane (values on 0..1); fp32 runtimes differ"
        " only by float32 rounding, a bf16 one by bf16's 8-bit mantissa.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edge", type=int, default=1024, help="plane size in px (default 1024)")
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions (default 3)")
    parser.add_argument("--quick", action="store_true", help="128², 2 repetitions, print only")
    results_argument(parser, RESULTS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    edge, reps = (128, 2) if args.quick else (args.edge, args.reps)
    results: dict[str, Any] = {
        "machine": machine(),
        "edge": edge,
        "reps": reps,
        "ceiling": ceiling(reps),
        "kernels": kernels_line(),
        "rows": {},
    }
    print(f"ceiling {results['ceiling']}", file=sys.stderr, flush=True)
    outputs = Path(tempfile.mkdtemp(prefix="memnet-runtimes-"))
    for model, _ in MODELS:
        rows = results["rows"][model] = {}
        for runtime, _ in RUNTIMES:
            saved = outputs / f"{model}-{runtime}.npy"
            spec = {"runtime": runtime, "model": model, "edge": edge, "reps": reps}
            rows[runtime] = run_child({**spec, "output": str(saved)})
            if saved.exists() and (outputs / f"{model}-memnet.npy").exists():
                ours = np.load(outputs / f"{model}-memnet.npy")
                rows[runtime]["max_diff"] = float(np.abs(np.load(saved) - ours).max())
    command = "python benchmarks/runtimes.py" + (
        " --quick" if args.quick else "" if edge == 1024 else f" --edge {edge}"
    )
    if reps != 3 and not args.quick:
        command += f" --reps {reps}"
    command += results_flag(args.results, RESULTS)
    text = report(results, command)
    print(text)
    if not args.quick:
        args.results.write_text(text)
        args.results.with_suffix(".json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
