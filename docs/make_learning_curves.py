"""Learning curves of released runs: validation PSNR against iterations and training time.

    python docs/make_learning_curves.py training/memnet-sr training/memnet-jpeg ...

Reads each run's `metrics.jsonl` (as `memnet train` writes it) and prints one markdown table per
run: every validation point with its iteration, minutes of training steps and PSNR per set/level.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def validation_points(run: Path) -> list[dict]:
    """The validation records of a run, in order, one per iteration (the latest wins)."""
    by_iteration: dict[int, dict] = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill
        if record.get("kind") == "val":
            by_iteration[int(record["iteration"])] = record
    return [by_iteration[i] for i in sorted(by_iteration)]


def patches_per_second(run: Path) -> float:
    rates = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("kind") == "train":
            rates.append(float(record["patches_per_s"]))
    return sorted(rates)[len(rates) // 2] if rates else 0.0


def table(run: Path) -> str:
    points = validation_points(run)
    keys: list[str] = []
    for point in points:
        keys += [k for k in point["psnr"] if k not in keys]
    header = ["iteration", "minutes", *(f"{k} dB" for k in keys)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for point in points:
        cells = [f"{point['iteration']:,}", f"{point['elapsed_s'] / 60:.0f}"]
        cells += [f"{point['psnr'][k]:.2f}" if k in point["psnr"] else "" for k in keys]
        lines.append("| " + " | ".join(cells) + " |")
    rate = patches_per_second(run)
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
