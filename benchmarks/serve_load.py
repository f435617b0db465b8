"""Load on `memnet serve`: N concurrent clients on loopback, against `memnet restore` on the same images.

    python benchmarks/serve_load.py                  # prints the report
    python benchmarks/serve_load.py --write          # and writes benchmarks/serve-results.md

Needs the serve extra (`pip install -c constraints.txt -e ".[serve]"`). Steps:

1. K distinct pictures are made here (seeded), and `memnet restore` restores the folder once:
   its files are the reference bytes and its own timing the baseline throughput.
2. `memnet serve` starts in its own process on a free loopback port (W workers, a queue of Q).
3. N client threads send requests, each picking an image by turns, until R requests have been
   served or the time limit has passed. Every 200 must hold exactly the bytes `memnet restore`
   wrote for that very image (so no response can belong to another request); a 429 (queue
   full, intended when N > W + Q) waits its Retry-After and is counted; anything else is an
   error.
4. The report: requests served, p50/p95 latency, throughput beside the CLI's, 429s, errors,
   mismatches, and the server's peak RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx2
import numpy as np
from PIL import Image

RESULTS = Path(__file__).with_name("serve-results.md")


def synthetic_picture(edge: int, seed: int) -> Image.Image:
    """Gradients, a disc, ripples and grain, different for every seed: a stand-in for a photo."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:edge, 0:edge] / edge
    centre = rng.uniform(0.3, 0.7, 2)
    planes = []
    for k in range(3):
        base = 0.25 + 0.4 * xx * yy + 0.1 * np.sin((30 + 5 * k + seed) * xx) * np.cos(20 * yy)
        base = base + 0.25 * (((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) < 0.04)
        planes.append(base + rng.normal(0, 0.02, base.shape))
    return Image.fromarray((np.clip(np.stack(planes, -1), 0, 1) * 255 + 0.5).astype(np.uint8))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def peak_rss_mb(pid: int) -> float:
    """The process's high-water resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    return float("nan")


@dataclass
class Tally:
    """What the clients saw, added to under a lock."""

    latencies: list[float] = field(default_factory=list)
    served: int = 0
    busy: int = 0  # 429: the queue was full
    errors: list[str] = field(default_factory=list)
    mismatches: int = 0
    issued: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def run_cli(folder: Path, out: Path, cli_args: list[str]) -> tuple[float, float, float]:
    """`memnet restore` on the folder: (restore seconds it reports, wall seconds, peak RSS MB)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "memnet", "restore", "-i", str(folder), "-o", str(out), *cli_args],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    found = re.search(r"restored, 0 failed, ([\d.]+) s", done.stdout)
    if found is None:
        raise SystemExit(f"unexpected memnet restore output:\n{done.stdout}\n{done.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e6
    return float(found.group(1)), wall, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--queue", type=int, default=2)
    parser.add_argument("--requests", type=int, default=60, help="stop after this many served")
    parser.add_argument("--seconds", type=float, default=60.0, help="and at most this long")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--edge", type=int, default=96, help="input edge in pixels")
    parser.add_argument("--model", default="memnet-sr")
    parser.add_argument("--scale", default="2")
    parser.add_argument("--write", action="store_true", help=f"write {RESULTS.name}")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="memnet-serve-load-"))
    inputs, outputs = scratch / "in", scratch / "out"
    inputs.mkdir()
    payloads = []
    for index in range(args.images):
        path = inputs / f"img{index:02d}.png"
        synthetic_picture(args.edge, index).save(path)
        payloads.append((path.name, path.read_bytes()))
    options = ["--task", "sr", "--scale", args.scale, "--model", args.model]
    cli_seconds, cli_wall, cli_rss = run_cli(inputs, outputs, options)
    reference = [(outputs / name).read_bytes() for name, _ in payloads]
    out_edge = round(args.edge * float(args.scale))

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "memnet",
            "serve",
            "--port",
            str(port),
            "--model",
            args.model,
            "--workers",
            str(args.workers),
            "--queue",
            str(args.queue),
            "--log-level",
            "warning",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx2.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("memnet serve did not start")
            time.sleep(0.2)
        fields = {"task": "sr", "scale": args.scale, "model": args.model}

        # Warm-up: one request per worker, so each loads its model before the clock starts.
        warm_start = time.perf_counter()
        warmers = [
            threading.Thread(
                target=lambda i=i: httpx2.post(
                    base + "/v1/restore", files={"image": payloads[i]}, data=fields, timeout=120
                )
            )
            for i in range(args.workers)
        ]
        for thread in warmers:
            thread.start()
        for thread in warmers:
            thread.join()
        warm = time.perf_counter() - warm_start
        rss_warm = peak_rss_mb(server.pid)

        tally = Tally()
        stop_at = time.monotonic() + args.seconds

        def client(number: int) -> None:
            with httpx2.Client(base_url=base, timeout=120) as session:
                turn = number
                while time.monotonic() < stop_at:
                    with tally.lock:
                        if tally.issued >= args.requests:
                            return
                        tally.issued += 1
                    index = turn % len(payloads)
                    turn += args.clients
                    while True:
                        sent = time.perf_counter()
                        try:
                            answer = session.post(
                                "/v1/restore", files={"image": payloads[index]}, data=fields
                            )
                        except httpx2.HTTPError as error:
                            with tally.lock:
                                tally.errors.append(f"{type(error).__name__}: {error}")
                            break
                        took = time.perf_counter() - sent
                        if answer.status_code == 429:
                            with tally.lock:
                                tally.busy += 1
                            time.sleep(float(answer.headers.get("retry-after", "1")) / 5)
                            if time.monotonic() >= stop_at:
                                break
                            continue
                        with tally.lock:
                            if answer.status_code != 200:
                                tally.errors.append(f"{answer.status_code}: {answer.text[:100]}")
                            else:
                                tally.served += 1
                                tally.latencies.append(took)
                                tally.mismatches += answer.content != reference[index]
                        break

        start = time.perf_counter()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        rss_peak = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()

    latencies = np.array(tally.latencies) if tally.latencies else np.array([np.nan])
    served_rate = tally.served / elapsed
    cli_rate = args.images / cli_seconds
    mpix = out_edge * out_edge / 1e6
    lines = [
        "# `memnet serve` under load (CPU, loopback)",
        "",
        f"Measured by `python benchmarks/serve_load.py --write` on {date.today()}: "
        f"{platform.machine()}, {os.cpu_count()} CPU cores **shared with other jobs running at "
        f"the same time** (so the absolute times are indicative only), Python "
        f"{platform.python_version()}, torch {_torch_version()}, OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}. "
        f"{args.clients} client threads, `memnet serve --workers {args.workers} --queue "
        f"{args.queue} --model {args.model}`, SR ×{args.scale} of {args.images} distinct "
        f"synthetic {args.edge}×{args.edge} RGB PNGs ({out_edge}×{out_edge} out), at most "
        f"{args.requests} requests or {args.seconds:g} s.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| requests served (200) | {tally.served} in {elapsed:.1f} s |",
        f"| responses identical to `memnet restore`'s file for the same image | {tally.served - tally.mismatches} of {tally.served} |",
        f"| mismatched responses | {tally.mismatches} |",
        f"| 429 (queue full, retried after Retry-After/5) | {tally.busy} |",
        f"| other errors | {len(tally.errors)} |",
        f"| latency p50 / p95 (served, incl. upload and queueing) | {np.nanpercentile(latencies, 50) * 1e3:.0f} / {np.nanpercentile(latencies, 95) * 1e3:.0f} ms |",
        f"| server throughput | {served_rate:.2f} images/s ({served_rate * mpix:.3f} output Mpix/s) |",
        f"| `memnet restore` on the same {args.images} images, restore time only | {cli_rate:.2f} images/s ({cli_rate * mpix:.3f} output Mpix/s; {cli_seconds:.1f} s, {cli_wall:.1f} s wall with start-up) |",
        f"| server / CLI throughput | {served_rate / cli_rate:.2f} |",
        f"| warm-up ({args.workers} requests, one model load per worker) | {warm:.1f} s |",
        f"| server peak RSS (VmHWM) after warm-up / at the end | {rss_warm:.0f} / {rss_peak:.0f} MB |",
        f"| `memnet restore` peak RSS | {cli_rss:.0f} MB |",
    ]
    if tally.errors:
        lines += ["", "Errors:", *[f"- {e}" for e in tally.errors[:10]]]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.write:
        RESULTS.write_text(report)
        print(f"wrote {RESULTS}")
    if tally.errors or tally.mismatches:
        raise SystemExit(1)


def _torch_version() -> str:
    import torch

    return str(torch.__version__)


if __name__ == "__main__":
    main()
