"""Merge `memnet eval --out` summaries into the side-by-side tables of docs/results.md.

    python docs/make_results.py eval-out/        # prints markdown to stdout

Every number in our columns comes from the JSON files `memnet eval` wrote into the folder
(one per task and method); the published columns are the papers' own numbers (MemNet, Tai et
al. 2017, Tables 4-6; baselines as quoted there), kept here for comparison only.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# (set, level) → "PSNR/SSIM" as published for MemNet M6R6.
PAPER_MEMNET: dict[str, dict[tuple[str, float], str]] = {
    "sr": {
        ("Set5", 2): "37.78/0.9597",
        ("Set5", 3): "34.09/0.9248",
        ("Set5", 4): "31.74/0.8893",
        ("Set14", 2): "33.28/0.9142",
        ("Set14", 3): "30.00/0.8350",
        ("Set14", 4): "28.26/0.7723",
        ("BSD100", 2): "32.08/0.8978",
        ("BSD100", 3): "28.96/0.8001",
        ("BSD100", 4): "27.40/0.7281",
    },
    "jpeg": {
        ("Classic5", 10): "29.69/0.8107",
        ("Classic5", 20): "31.90/0.8658",
        ("LIVE1", 10): "29.45/0.8193",
        ("LIVE1", 20): "31.83/0.8846",
    },
    "denoise": {},
}
# Other published methods quoted for orientation.
PAPER_OTHERS: dict[str, tuple[str, dict[tuple[str, float], str]]] = {
    "sr": (
        "VDSR",
        {("Set5", 2): "37.53/0.9587", ("Set14", 2): "33.03/0.9124", ("BSD100", 2): "31.90/0.8960"},
    ),
    "jpeg": (
        "ARCNN",
        {
            ("Classic5", 10): "29.03/0.7929",
            ("Classic5", 20): "31.15/0.8517",
            ("LIVE1", 10): "28.96/0.8076",
            ("LIVE1", 20): "31.29/0.8733",
        },
    ),
    "denoise": (
        "DnCNN-S / BM3D (PSNR)",
        {
            ("BSD68", 15): "31.73 / 31.07",
            ("BSD68", 25): "29.23 / 28.57",
            ("BSD68", 50): "26.23 / 25.62",
        },
    ),
}
# How a level is titled, what the no-network column is called and the paper's column: read by
# tools/make_model_tables.py, which takes the numbers of the README's table from these tables.
LEVEL_TITLE = {"sr": "×{:g}", "denoise": "σ {:g}", "jpeg": "q {:g}"}
BASELINE_TITLE = {"sr": "bicubic", "denoise": "noisy input", "jpeg": "JPEG"}
PAPER_COLUMN = "MemNet M6R6 (paper)"


def load(folder: Path) -> list[dict]:
    """The reports in `folder`, one per task and method: a weights file whose SHA-256 is a
    released model's is that model (the same bytes, evaluated before it was installed), and
    reports of one method on different sets are merged."""
    from memnet.weights import zoo

    released = {entry.sha256: name for name, entry in zoo.REGISTRY.items()}
    merged: dict[tuple[str, str], dict] = {}
    for path in sorted(folder.glob("*.json")):
        report = json.loads(path.read_text())
        report["method"] = released.get(report.get("sha256") or "", report["method"])
        key = (report["task"], report["method"])
        if key not in merged:
            merged[key] = report
            continue
        kept = merged[key]
        known = {entry["name"] for entry in kept["sets"]}
        kept["sets"] += [entry for entry in report["sets"] if entry["name"] not in known]
        kept["results"] += [row for row in report["results"] if row["set"] not in known]
    return list(merged.values())


def table(task: str, reports: list[dict]) -> str:
    ours = [r for r in reports if r["task"] == task]
    if not ours:
        return ""
    baseline = [r for r in ours if r["method"] in ("bicubic", "identity")]
    models = [r for r in ours if r not in baseline]
    columns = [
        (BASELINE_TITLE[task] if r["method"] == "identity" else r["method"], r)
        for r in baseline + models
    ]
    other_name, others = PAPER_OTHERS[task]
    header = [
        "set",
        "level",
        *[name for name, _ in columns],
        f"{other_name} (paper)",
        PAPER_COLUMN,
    ]
    rows = []
    keys = sorted(
        {(row["set"], row["level"]) for _, r in columns for row in r["results"]},
        key=lambda k: (_set_order(ours, k[0]), k[1]),
    )
    for set_name, level in keys:
        cells = [set_name, LEVEL_TITLE[task].format(level)]
        for _, report in columns:
            match = [
                row for row in report["results"] if row["set"] == set_name and row["level"] == level
            ]
            cells.append(f"{match[0]['psnr']:.2f}/{match[0]['ssim']:.4f}" if match else "")
        cells.append(others.get((set_name, level), ""))
        cells.append(PAPER_MEMNET[task].get((set_name, level), ""))
        rows.append(cells)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines)


def _set_order(reports: list[dict], name: str) -> int:
    for report in reports:
        for i, entry in enumerate(report["sets"]):
            if entry["name"] == name:
                return i
    return 99


def main(folder: str) -> int:
    reports = load(Path(folder))
    for task in ("sr", "denoise", "jpeg"):
        text = table(task, reports)
        if text:
            print(f"### {task}\n\n{text}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "eval-out"))
