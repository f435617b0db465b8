"""Peak memory of `memnet restore` on videos of growing length: it must not grow with the length.

    python benchmarks/video_memory.py            # writes video-memory-results.md
    python benchmarks/video_memory.py --quick    # the two shortest clips, prints only

Each case is one `python -m memnet restore -i clip.mp4 -o out.mp4` process on a clip made here
(H.264 with an AAC track, a moving colour pattern); its peak resident memory is the kernel's
high-water mark of that process (`os.wait4`'s ru_maxrss), so the whole stream counts: demuxing,
decoding, restoring, encoding (x264's look-ahead included), muxing, the copied audio. The same
frame size at 10× and 40–50× the frame count shows whether anything accumulates per frame: the
claim is that the peak is the same whatever the length. `--method identity` runs the pipeline
without the network, so the long clips take seconds; the `tiny` rows run a small untrained
network through the same engine (memory does not depend on the weights' values), and the
released `memnet-denoise` runs on short clips (a frame's memory is an image's, bounded by the
budget: benchmarks/memory-results.md).
This driver imports neither numpy nor torch before it starts a case, so the child's peak is
its own.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
from datetime import date
from fractions import Fraction
from pathlib import Path

from child_peak import run_child

RESULTS = Path(__file__).with_name("video-memory-results.md")
RATE = Fraction(25)
SAMPLE_RATE = 44_100

# (label, frame width, frame height, frame counts, network: "none", "tiny" or "released")
CASES = (
    ("pipeline, no network (`--method identity`)", 640, 360, (50, 500, 2500), "none"),
    ("`tiny` network (untrained)", 320, 180, (25, 250, 1000), "tiny"),
    ("memnet-denoise σ25", 160, 96, (25, 100), "released"),
)
TINY_WEIGHTS = """
import sys, torch
from memnet.model import create_model
from memnet.weights.files import save_weights
torch.manual_seed(0)
save_weights(create_model("tiny", identity_init=True), sys.argv[1], {"task": "denoise"})
"""


def make_clip(path: Path, width: int, height: int, frames: int) -> None:
    """H.264 (crf 23) with a mono AAC sine track of the same duration."""
    import av
    import numpy as np

    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=RATE, options={"crf": "23"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = out.add_stream("aac", rate=SAMPLE_RATE)
        samples_total = SAMPLE_RATE * frames // int(RATE)
        rng = np.random.default_rng(0)
        audio_done = 0
        for index in range(frames):
            phase = index / 10
            rgb = np.stack(
                [
                    128 + 100 * np.sin(x / 23 + phase) * np.cos(y / 17),
                    128 + 100 * np.cos(x / 31 - phase),
                    128 + 100 * np.sin((x + y) / 41 + 2 * phase),
                ],
                axis=-1,
            )
            rgb += rng.normal(0, 12, rgb.shape)
            frame = av.VideoFrame.from_ndarray(np.clip(rgb, 0, 255).astype(np.uint8), "rgb24")
            frame.pts = index
            out.mux(video.encode(frame))
            # Audio interleaved with the video, as a camera writes it.
            audio_due = min(samples_total, (index + 1) * SAMPLE_RATE // int(RATE))
            while audio_done + 1024 <= audio_due:
                t = (audio_done + np.arange(1024)) / SAMPLE_RATE
                tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
                chunk = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = SAMPLE_RATE, audio_done
                out.mux(audio.encode(chunk))
                audio_done += 1024
        out.mux(video.encode(None))
        out.mux(audio.encode(None))


def run_case(workdir: Path, width: int, height: int, frames: int, network: str) -> dict[str, float]:
    source = workdir / f"clip-{width}x{height}-{frames}.mp4"
    if not source.exists():
        make_clip(source, width, height, frames)
    target = workdir / "out.mp4"
    command = [sys.executable, "-m", "memnet", "restore", "-i", str(source), "-o", str(target)]
    command += ["--task", "denoise", "--sigma", "25", "--device", "cpu", "--overwrite", "--quiet"]
    if network == "none":
        command += ["--method", "identity"]
    elif network == "tiny":
        weights = workdir / "tiny-denoise.safetensors"
        if not weights.exists():
            subprocess.run([sys.executable, "-c", TINY_WEIGHTS, str(weights)], check=True)
        command += ["--weights", str(weights)]
    run = run_child(command)
    if run.exit_code != 0:
        raise SystemExit(f"{frames} frames of {width}×{height} failed: {run.stderr}")
    return {
        "frames": frames,
        "output_frames": count_frames(target),
        "peak_mb": run.peak_mb,
        "seconds": run.seconds,
    }


def count_frames(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def section(rows: list[tuple[str, int, int, dict[str, float]]]) -> str:
    lines = [
        "| run | frame | frames in | frames out | peak RSS | peak − shortest clip's | time |",
        "|---|---|---|---|---|---|---|",
    ]
    first: dict[str, float] = {}
    for label, width, height, r in rows:
        first.setdefault(label, r["peak_mb"])
        lines.append(
            f"| {label} | {width}×{height} | {r['frames']:,.0f} | {r['output_frames']:,.0f} | "
            f"{r['peak_mb']:,.0f} MB | {r['peak_mb'] - first[label]:+,.0f} MB | "
            f"{r['seconds']:.0f} s |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="two shortest clips, print only")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="memnet-video-memory-") as tmp:
        for label, width, height, counts, network in CASES:
            for frames in counts[:2] if args.quick else counts:
                result = run_case(Path(tmp), width, height, frames, network)
                print(f"{label} {width}×{height} {frames} frames: {result}", flush=True)
                rows.append((label, width, height, result))
    text = section(rows)
    print(text)
    if args.quick:
        return 0
    import torch

    RESULTS.write_text(
        "# Peak memory of `memnet restore` on videos of growing length\n\n"
        f"Measured by `python benchmarks/video_memory.py` on {date.today().isoformat()}: "
        f"{platform.machine()}, {os.cpu_count()} CPU cores (shared), Python "
        f"{platform.python_version()}, torch {torch.__version__}. Each row is one "
        "`memnet restore` process on an H.264 clip with an AAC track, made by the benchmark, "
        "written as H.264 (crf 18) with the audio copied; *peak RSS* is the process's "
        "high-water mark (ru_maxrss). The same frame size at 10× and 40–50× the length shows "
        "what accumulates per frame.\n\n" + text + "\n",
        encoding="utf-8",
    )
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
