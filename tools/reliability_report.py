"""Run memnet's reliability tests and write docs/reliability.md: what was tried, and what happened.

    python tools/reliability_report.py                  # CI-sized fuzzing (fixed seed)
    python tools/reliability_report.py --examples 5000  # a longer fuzz search (fresh examples)

It runs the format matrix, the API property tests, the fuzz targets and the training fault
trials with pytest in this process, counts every case by outcome (restored, refused with a
reason, known failure, lost) and writes the tables. Test files of other reliability checks
(full disk during `memnet restore`, memory bounds) are run too when they exist.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
OUTPUT = ROOT / "docs" / "reliability.md"
OWN = {
    "test_format_matrix.py": "Images: format × mode × ICC/EXIF × task × --ext (`memnet restore`)",
    "test_api_properties.py": "API: sizes, layouts, PIL modes, levels (hypothesis)",
    "test_fuzz.py": "Fuzzing: mutated image bytes and recipe YAML (hypothesis)",
    "test_train_faults.py": "Training faults: SIGKILL, full disk, read-only run folder",
}
# Reliability checks kept in other test files; each row appears when its file exists.
OTHERS = {
    "Full disk during `memnet restore`": ("test_restore_full_disk.py", "test_restore_faults.py"),
    "Memory bounded by the budget": ("test_memory.py", "test_memory_budget.py"),
    "Concurrent use of the API": ("test_concurrency.py", "test_api_threads.py"),
    "Output streams (stdout/stderr)": ("test_output_streams.py", "test_cli_streams.py"),
}
FINDINGS = (
    "a damaged float TIFF decoded by tifffile to an array of unexpected shape: IndexError "
    "(`test_regression_a_tiff_with_any_layout_is_read_or_refused`)",
    "a TIFF claiming 0 rows decoded to an empty picture "
    "(`test_regression_a_tiff_of_zero_pixels_is_refused`)",
    "tifffile's log records and Pillow's warnings for damaged files were printed beside "
    "memnet's one line per file (`test_regression_damaged_files_print_one_memnet_line_each`)",
    "uncompressed L/P/RGBA TIFFs with an EXIF orientation came out unrotated: Pillow memory-maps "
    "them and drops the orientation (`test_every_format_mode_task_and_extension[tiff-L-meta...]`)",
    "a mode-I (int32) TIFF holding 16-bit values came out black (divided by 2^31); such samples "
    "now use the 16-bit scale of Pillow's mode I, and values outside it, or NaN floats, are "
    "refused (`test_what_cannot_be_restored_is_refused_with_a_reason_that_says_what_to_do`)",
    "a full disk during a checkpoint gave `internal error: RuntimeError: [enforce fail at "
    "inline_container.cc:672]`, a read-only run folder `internal error: OSError` "
    "(`test_a_full_disk_during_a_checkpoint_keeps_the_last_one`, "
    "`test_a_read_only_run_folder_is_a_one_line_error_and_loses_nothing`)",
)
LABEL = {"passed": "passed", "failed": "FAILED", "skipped": "skipped", "xfailed": "known failure",
         "xpassed": "known failure, now passing"}  # fmt: skip


class Collector:
    """A pytest plugin that keeps every test's outcome by file and test function."""

    def __init__(self) -> None:
        self.outcomes: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        self.reasons: dict[tuple[str, str], set[str]] = defaultdict(set)

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            path, _, name = report.nodeid.partition("::")
            key = (Path(path).name, name.split("[")[0])
            outcome = report.outcome
            if hasattr(report, "wasxfail"):
                outcome = "xfailed" if report.outcome == "skipped" else "xpassed"
                self.reasons[key].add(report.wasxfail)
            elif report.outcome == "skipped" and isinstance(report.longrepr, tuple):
                self.reasons[key].add(str(report.longrepr[2]).removeprefix("Skipped: "))
            self.outcomes[key][outcome] += 1


def run(files: list[Path], collector: Collector) -> int:
    args = ["-q", "-p", "no:cacheprovider", "-W", "ignore", "--no-header", "-rN"]
    return int(pytest.main([*args, *map(str, files)], plugins=[collector]))


def summary(counts: Counter[str]) -> str:
    return ", ".join(f"{n} {LABEL.get(k, k)}" for k, n in sorted(counts.items()))


def matrix_inputs() -> list[str]:
    sys.path.insert(0, str(TESTS))
    from image_cases import sources
    from test_format_matrix import EXTS, TASKS

    per_format = Counter(s.fmt for s in sources())
    modes = sorted({s.mode for s in sources()})
    return [
        f"{len(sources())} source files: "
        + ", ".join(f"{fmt} {n}" for fmt, n in per_format.items())
        + f" (modes {', '.join(modes)}; each without and, where the format keeps them, with an "
        "ICC profile and an EXIF rotation)",
        f"tasks: {', '.join(TASKS)}; --ext: {', '.join(EXTS)}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=0, help="fuzz examples per target")
    parser.add_argument("--out", type=Path, default=OUTPUT, help="the markdown file to write")
    args = parser.parse_args()
    if args.examples:
        os.environ["MEMNET_FUZZ_EXAMPLES"] = str(args.examples)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    others = {
        row: [TESTS / n for n in names if (TESTS / n).is_file()] for row, names in OTHERS.items()
    }
    files = [TESTS / name for name in OWN] + [f for found in others.values() for f in found]
    collector = Collector()
    started = time.monotonic()
    code = run(files, collector)
    seconds = time.monotonic() - started
    import test_fuzz  # imported by the run above; its targets counted what they saw

    lines = [
        "# Reliability: what was tried, and what happened",
        "",
        "Produced by `python tools/reliability_report.py"
        + (f" --examples {args.examples}" if args.examples else "")
        + f"` ({seconds:.0f} s on {platform.machine()}, Python {platform.python_version()}). "
        "Every row is a test in `tests/`; *restored* means the output had the right size, mode, "
        "bit depth, profile and (for lossless outputs) pixels; *refused* means a one-line "
        "reason naming the file, exit code 1, and no output; *lost* counts inputs, outputs or "
        "checkpoints damaged or left partial — an assertion in every test, so a loss shows as "
        "FAILED.",
        "",
        "## Inputs",
        "",
        *(f"- {line}" for line in matrix_inputs()),
        "",
        "| check | cases | result | lost |",
        "|---|---|---|---|",
    ]
    for (file, test), counts in sorted(collector.outcomes.items()):
        if file not in OWN or file == "test_train_faults.py":
            continue
        result = summary(counts)
        known = "; ".join(sorted(collector.reasons[file, test]))
        lines.append(
            f"| `{file}::{test}` | {sum(counts.values())} | {result}"
            + (f" ({known})" if known else "")
            + f" | {0 if not counts['failed'] else 'see FAILED'} |"
        )
    lines += [
        "",
        "## Fuzzing",
        "",
        "Mutations: bit flips, random bytes, header fields set to extremes, insertions, deletions, "
        "truncations and splices of PNG, JPEG, WebP, TIFF, BMP and GIF seed files; recipe YAML "
        "edited as text (YAML syntax characters) and as data (any value anywhere), `--set` values.",
        "",
        "| target | examples seen | outcome |",
        "|---|---|---|",
    ]
    names = {
        "decode": "image files decoded (both image targets)",
        "restore": "image files in `memnet restore` folder runs",
        "recipe": "recipe files",
        "--set": "`--set` overrides",
    }
    for target in names:
        seen = {
            k.split(": ", 1)[1]: n
            for k, n in test_fuzz.OUTCOMES.items()
            if k.startswith(target + ":")
        }
        lines.append(
            f"| {names[target]} | {sum(seen.values())} | "
            + ", ".join(f"{n} {k}" for k, n in sorted(seen.items()))
            + ", 0 tracebacks |"
        )
    lines += [
        "",
        "A hypothesis test counts as one case above; it ran the examples counted here (CI: a fixed "
        "seed; `--examples N` or `MEMNET_FUZZ_EXAMPLES=N` searches afresh).",
        "",
        "Found by these searches and the format matrix, fixed, and kept as regression tests "
        "(each fails without its fix):",
        "",
        *(f"- {finding}" for finding in FINDINGS),
        "",
        "## Faults during training",
        "",
        "A short recipe (`configs/smoke.yaml` with the `tiny` network, 8 iterations, a checkpoint "
        "every 2); each trial is resumed with `--resume auto` and its final weights are compared "
        "bit for bit with an uninterrupted run.",
        "",
        "| fault | trials | result | lost |",
        "|---|---|---|---|",
    ]
    for (file, test), counts in sorted(collector.outcomes.items()):
        if file == "test_train_faults.py":
            reasons = "; ".join(sorted(collector.reasons[file, test]))
            lines.append(
                f"| `{test}` | {sum(counts.values())} | {summary(counts)}"
                + (f" ({reasons})" if reasons else "")
                + f" | {0 if not counts['failed'] else 'see FAILED'} |"
            )
    lines += [
        "",
        "## Other reliability checks",
        "",
        "<!-- Rows for checks kept in other test files (full disk during `memnet restore`, memory "
        "bounds, ...): tools/reliability_report.py runs each file listed in OTHERS when it exists. -->",
        "",
        "| check | test file | result |",
        "|---|---|---|",
    ]
    for row, found in others.items():
        if not found:
            lines.append(f"| {row} | (not in this tree yet) | — |")
            continue
        for path in found:
            counts = Counter()
            for (file, _test), c in collector.outcomes.items():
                if file == path.name:
                    counts.update(c)
            lines.append(f"| {row} | `{path.name}` | {summary(counts)} |")
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out} (pytest exit code {code})")
    return code


if __name__ == "__main__":
    sys.exit(main())
