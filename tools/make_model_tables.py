"""Write the released-model tables of README.md and docs/results.md from the zoo.

    python tools/make_model_tables.py           # rewrite the tables in place
    python tools/make_model_tables.py --check   # exit 1, naming the file, if one is stale

Each table sits between `<!-- zoo-table:NAME -->` and `<!-- /zoo-table -->`. What a model is
and how well it scores comes from the zoo (memnet.weights.zoo: the numbers `memnet eval`
measured) and its weights file (recipe, batch and patch size). The README's baseline and
published columns are read from the per-set tables of docs/results.md, which
docs/make_results.py makes from `memnet eval --out`; tests/test_model_tables.py checks that the
zoo's numbers are the ones in those tables, and that the committed tables are what this writes.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

from memnet.model import create_model, summarize
from memnet.tasks import make_task
from memnet.weights import zoo
from memnet.weights.files import META_RECIPE_YAML, read_metadata

ROOT = Path(__file__).resolve().parents[1]
# The titles of docs/results.md's tables, from the script that writes them.
sys.path.insert(0, str(ROOT / "docs"))
from make_results import BASELINE_TITLE, LEVEL_TITLE, PAPER_COLUMN  # noqa: E402

README = ROOT / "README.md"
RESULTS = ROOT / "docs" / "results.md"
BLOCK = re.compile(
    r"(<!-- zoo-table:(?P<name>[a-z-]+) -->\n)(?P<body>.*?)(<!-- /zoo-table -->)", re.S
)

# The README shows the defaults on the sets and levels the literature reports most.
README_ROWS: tuple[tuple[str, tuple[str, ...], tuple[float, ...]], ...] = (
    ("memnet-sr", ("Set5", "BSD100"), (2, 3, 4)),
    ("memnet-denoise", ("BSD68",), (15, 25, 50)),
    ("memnet-jpeg", ("Classic5", "LIVE1"), (10, 20)),
)
# The README's short name of each task's no-network column.
BASELINE_SHORT = {"sr": "bicubic", "denoise": "noisy", "jpeg": "JPEG"}
PAPER_PRESET = "m6r6"  # the network size of Tai et al. 2017


def results_cells(text: str) -> dict[tuple[str, str, str], str]:
    """(set, level title, column) → cell of every per-set table ('| set | level | …') in `text`."""
    cells: dict[tuple[str, str, str], str] = {}
    header: list[str] = []
    for line in text.splitlines():
        if not line.startswith("|"):
            header = []
            continue
        row = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if row[:2] == ["set", "level"]:
            header = row
        elif header and not set(line) <= set("|-"):
            for column, cell in zip(header[2:], row[2:], strict=True):
                cells[(row[0], row[1], column)] = cell
    return cells


def _psnr(cell: str) -> str:
    return cell.split("/")[0].strip() if cell else "—"


def _levels_text(task: str, levels: tuple[float, ...]) -> str:
    if task == "sr":
        return " / ".join(f"×{v:g}" for v in levels)
    if task == "denoise":
        return "σ " + " / ".join(f"{v:g}" for v in levels)
    return " / ".join(f"q{v:g}" for v in levels)


def readme_table(cells: dict[tuple[str, str, str], str]) -> str:
    """The README's table: the default models against their baseline and the paper (PSNR)."""
    entries = [zoo.get(name) for name, _, _ in README_ROWS]
    presets = {entry.preset for entry in entries}
    network = (
        f" ({entries[0].preset.upper()}, {round(entries[0].parameters / 1000)}k parameters)"
        if len(presets) == 1
        else ""
    )
    lines = [
        f"| model{network} | set | baseline | memnet | MemNet M6R6 (paper) |",
        "|---|---|---|---|---|",
    ]
    for (name, sets, levels), entry in zip(README_ROWS, entries, strict=True):
        blind = " (blind)" if entry.level_range is not None else ""
        column, short = BASELINE_TITLE[entry.task], BASELINE_SHORT[entry.task]
        for index, set_name in enumerate(sets):
            titles = [LEVEL_TITLE[entry.task].format(v) for v in levels]
            keys = [f"{set_name}/{make_task(entry.task, v).label}" for v in levels]
            ours = " / ".join(f"{entry.metrics[key].psnr:.2f}" for key in keys)
            base = " / ".join(_psnr(cells.get((set_name, t, column), "")) for t in titles)
            paper_cells = [cells.get((set_name, t, PAPER_COLUMN), "") for t in titles]
            paper = " / ".join(_psnr(c) for c in paper_cells) if any(paper_cells) else "—"
            first = index == 0
            model = f"`{name}`{blind} {_levels_text(entry.task, levels)}" if first else ""
            label = f" ({short})" if first else ""
            row = f"| {model} | {set_name} | {base}{label} | {ours} | {paper} |"
            lines.append(row.replace("|  |", "| |"))
    return "\n".join(lines)


def _task_text(entry: zoo.ZooEntry) -> str:
    if entry.task == "sr":
        return "SR " + "/".join(f"×{v:g}" for v in entry.levels) + ", one model"
    what = {"denoise": "Gaussian denoising", "jpeg": "JPEG deblocking"}[entry.task]
    symbol = {"denoise": "σ ", "jpeg": "q"}[entry.task]
    if entry.level_range is not None:
        low, high = entry.level_range
        return f"blind {what}, {symbol}{low:g}–{high:g}, one model"
    return f"{what} " + "/".join(f"{symbol.strip()}{v:g}" for v in entry.levels) + ", one model"


def releases_table() -> str:
    """docs/results.md's table of every released model: task, network, recipe, training."""
    lines = [
        "| model | task | network | recipe | iterations | training |",
        "|---|---|---|---|---|---|",
    ]
    described: set[str] = set()
    for entry in zoo.REGISTRY.values():
        chosen = (
            f"default for `--task {entry.task}`" if entry.default else f"`--model {entry.name}`"
        )
        network = entry.preset.upper()
        if entry.preset not in described:
            described.add(entry.preset)
            summary = summarize(create_model(entry.preset))
            size = ", the paper's size" if entry.preset == PAPER_PRESET else ""
            network += (
                f"{size} ({summary.parameters:,} parameters, "
                f"{summary.mflop_per_pixel:.2f} MFLOP/pixel)"
            )
        recipe = yaml.safe_load(read_metadata(zoo.verified_weights_path(entry))[META_RECIPE_YAML])
        patches = f"{recipe['train']['batch_size']} patches of {recipe['data']['patch_size']}²"
        lines.append(
            f"| `{entry.name}` ({chosen}) | {_task_text(entry)} | {network} | `{entry.recipe}` "
            f"| {entry.iterations:,} × {patches} | {entry.training_time} |"
        )
    return "\n".join(lines)


def rewrite(text: str, tables: dict[str, str]) -> str:
    """`text` with the body of every zoo-table block replaced by its table."""

    def body(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in tables:
            raise KeyError(f"unknown zoo-table {name!r}")
        return f"{match[1]}{tables[name]}\n{match[4]}"

    return BLOCK.sub(body, text)


def expected_texts() -> dict[Path, str]:
    """What README.md and docs/results.md hold with freshly written tables."""
    results = RESULTS.read_text(encoding="utf-8")
    tables = {"readme": readme_table(results_cells(results)), "releases": releases_table()}
    return {path: rewrite(path.read_text(encoding="utf-8"), tables) for path in (README, RESULTS)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale tables")
    args = parser.parse_args(argv)
    stale = []
    for path, text in expected_texts().items():
        if path.read_text(encoding="utf-8") != text:
            stale.append(path)
            if not args.check:
                path.write_text(text, encoding="utf-8")
    for path in stale:
        verb = "is stale" if args.check else "rewritten"
        print(f"{path.relative_to(ROOT)}: model tables {verb}", file=sys.stderr)
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
