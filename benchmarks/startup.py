"""Start-up cost: `import memnet`, `memnet --help` and `memnet restore --help`, as fresh processes.

    python benchmarks/startup.py            # 15 runs each, writes startup-results.md
    python benchmarks/startup.py --runs 5   # fewer runs, prints the table only

Each figure is the wall time of a whole new Python process (interpreter start included), so
it is what a user waits for before any work starts. `python -c pass` is measured in the same
run, interleaved with the others, as the floor no command can go below: on a loaded machine
compare the commands with it rather than across runs. The target is 0.5 s for each command
(PyTorch is imported only when work starts; tests/test_import.py checks which modules load).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

RESULTS = Path(__file__).with_name("startup-results.md")
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import memnet": [sys.executable, "-c", "import memnet"],
    "memnet --help": [sys.executable, "-m", "memnet", "--help"],
    "memnet restore --help": [sys.executable, "-m", "memnet", "restore", "--help"],
}
TARGET_S = 0.5


def _wall(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def measure(runs: int) -> dict[str, list[float]]:
    """Wall seconds of every command, `runs` times, interleaved so that load affects all alike."""
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for command in COMMANDS.values():  # one warm-up each: the page cache, not memnet, is cold
        _wall(command)
    for _ in range(runs):
        for name, command in COMMANDS.items():
            times[name].append(_wall(command))
    return times


def table(times: dict[str, list[float]]) -> str:
    """The results as a Markdown table: median, min, max, and the median above the floor."""
    floor = statistics.median(times["python -c pass"])
    lines = [
        "| command | median s | min s | max s | above `python -c pass` s | target |",
        "|---|---|---|---|---|---|",
    ]
    for name, values in times.items():
        median = statistics.median(values)
        target = "" if name == "python -c pass" else ("met" if median < TARGET_S else "missed")
        lines.append(
            f"| `{name}` | {median:.3f} | {min(values):.3f} | {max(values):.3f} "
            f"| {median - floor:.3f} | {target} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    times = measure(args.runs)
    text = table(times)
    print(text)
    if args.runs >= 15:
        header = (
            "# Start-up time\n\n"
            "Written by `python benchmarks/startup.py` (wall time of fresh processes, "
            f"{args.runs} runs each after a warm-up, interleaved) on {date.today()}, "
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}.\n\n"
        )
        RESULTS.write_text(header + text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
