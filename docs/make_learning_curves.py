"""Learning curves of released runs: validation PSNR against iterations and training time.

    python docs/make_learning_curves.py training/memnet-sr training/memnet-jpeg ...

Reads each run's `metrics.jsonl` (as `memnet train` writes it) and prints one markdown table per
run: every validation point with its iteration, minutes of training steps and PSNR per set/level.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def records(run: Path) -> list[dict]:
    """Every complete record of a run's metrics log (a line cut short by a kill is skipped)."""
    parsed = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return parsed


def validation_points(log: list[dict]) -> list[dict]:
    """The validation records, in order, one per iteration (the latest wins)."""
    by_iteration = {int(r["iteration"]): r for r in log if r.get("kind") == "val"}
    return [by_iteration[i] for i in sorted(by_iteration)]


def patches_per_second(log: list[dict]) -> float:
    """Median training throughput over the run's log lines."""
    rates = sorted(float(r["patches_per_s"]) for r in log if r.get("kind") == "train")
    return rates[len(rates) // 2] if rates else 0.0


def table(run: Path) -> str:
    log = records(run)
    points = validation_points(log)
    keys: list[str] = []
    for point in points:
        keys += [k for k in point["psnr"] if k not in keys]
    # CPU hours where the log has them (runs before `cpu_s` existed have wall minutes only)
    cpu = any("cpu_s" in point for point in points)
    header = ["iteration", "minutes", *(["CPU hours"] if cpu else []), *(f"{k} dB" for k in keys)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for point in points:
        cells = [f"{point['iteration']:,}", f"{point['elapsed_s'] / 60:.0f}"]
        if cpu:
            cells.append(f"{point['cpu_s'] / 3600:.1f}" if "cpu_s" in point else "")
        cells += [f"{point['psnr'][k]:.2f}" if k in point["psnr"] else "" for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    rate = patches_per_second(log)
    return f"**{run.name}** (median {rate:.0f} patches/s)\n\n" + "\n".join(lines)


def main(runs: list[str]) -> int:
    if not runs:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for run in runs:
        print(table(Path(run)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
