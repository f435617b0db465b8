"""The result of a benchmark run: per-image and per-set scores, as CSV, JSON and a table.

`memnet eval --out` writes them atomically; training's validation reads the per-set means.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memnet import __version__
from memnet.errors import MemNetError
from memnet.fsutil import atomic_write_text
from memnet.tasks import task_class

if TYPE_CHECKING:  # the sets are only named here; benchmark.py builds the report
    from memnet.evaluation.benchmark import BenchmarkSet

__all__ = ["CSV_FIELDS", "EvalReport", "ImageScore", "SetScore"]


@dataclass(frozen=True)
class ImageScore:
    """The scores of one restored image (one row of the CSV)."""

    set: str
    level: float
    label: str
    image: str
    height: int
    width: int
    psnr: float
    ssim: float
    seconds: float


@dataclass(frozen=True)
class SetScore:
    """The mean scores of one set at one level (one cell of the table)."""

    set: str
    level: float
    label: str
    images: int
    psnr: float
    ssim: float


CSV_FIELDS = tuple(ImageScore.__dataclass_fields__)


def _finite_or_none(value: float) -> float | None:
    # JSON has no infinity; identical images (PSNR = +inf) are written as null.
    return value if math.isfinite(value) else None


@dataclass
class EvalReport:
    """Everything one evaluation produced: per-image rows, per-set means and how they were made."""

    task: str
    method: str
    levels: list[float]
    sets: list[BenchmarkSet]
    protocol: str
    scoring: str
    seed: int
    images: list[ImageScore]
    summary: list[SetScore]
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)

    def score(self, set_name: str, level: float) -> SetScore:
        """The mean scores of one set at one level."""
        for row in self.summary:
            if row.set == set_name and row.level == level:
                return row
        raise KeyError((set_name, level))

    def markdown(self) -> str:
        """A markdown table, sets × levels, cells 'PSNR/SSIM', with a caption line."""
        cls = task_class(self.task)
        header = (
            "| set | " + " | ".join(cls.column_title.format(level) for level in self.levels) + " |"
        )
        lines = [
            f"PSNR (dB) / SSIM — {self.task}, {self.method} ({self.scoring}"
            + (f", noise seed {self.seed})" if cls.seeded else ")"),
            "",
            header,
            "|---" * (len(self.levels) + 1) + "|",
        ]
        for bench in self.sets:
            cells = []
            for level in self.levels:
                row = self.score(bench.name, level)
                cells.append(f"{row.psnr:.2f}/{row.ssim:.4f}")
            lines.append(f"| {bench.name} | " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        """Per-image rows as CSV text."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        for row in self.images:
            values = asdict(row)
            values["psnr"] = f"{row.psnr:.6f}" if math.isfinite(row.psnr) else "inf"
            values["ssim"] = f"{row.ssim:.6f}"
            values["seconds"] = f"{row.seconds:.4f}"
            values["level"] = f"{row.level:g}"
            writer.writerow(values)
        return buffer.getvalue()

    def to_json(self) -> dict[str, Any]:
        """The summary as a JSON-ready dict (PSNR of identical images, +inf, becomes null)."""
        return {
            "memnet_version": __version__,
            "task": self.task,
            "method": self.method,
            **self.details,
            "protocol": self.protocol,
            "seed": self.seed,
            "levels": self.levels,
            "sets": [
                {"name": b.name, "folder": str(b.folder), "images": len(b)} for b in self.sets
            ],
            "results": [{**asdict(row), "psnr": _finite_or_none(row.psnr)} for row in self.summary],
            "seconds": round(self.seconds, 3),
        }

    def write(self, out_dir: Path, stem: str) -> list[Path]:
        """Write STEM.csv (per image), STEM.json (summary) and STEM.md (table) atomically."""
        files = [out_dir / f"{stem}.csv", out_dir / f"{stem}.json", out_dir / f"{stem}.md"]
        text = json.dumps(self.to_json(), indent=2, allow_nan=False)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(files[0], self.csv())
            atomic_write_text(files[1], text + "\n")
            atomic_write_text(files[2], self.markdown())
        except OSError as error:
            raise MemNetError(
                f"cannot write results to {out_dir}: {error.strerror or error}"
            ) from None
        return files
