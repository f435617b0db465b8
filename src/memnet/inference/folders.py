"""Restore many files safely: find the inputs, plan every output first, then restore one by one.

Nothing is written before the whole plan is known to be safe: an output never replaces an
input (whatever the options), never replaces an existing file unless `overwrite` is set, and two
inputs never share an output. Each image is restored independently: a bad one gets a one-line
reason and the others go on. Outputs are written atomically, so a failure leaves no partial file.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from memnet.errors import MemNetError
from memnet.imaging.formats import FORMAT_BY_SUFFIX
from memnet.video.files import VIDEO_SUFFIXES, is_video

__all__ = ["BatchReport", "Job", "collect_inputs", "plan_outputs", "read_manifest", "run_jobs"]

EXTENSIONS = ("auto", "png", "jpg", "webp", "tiff")
GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Job:
    """One image to restore: where it comes from and where its result goes."""

    source: Path
    target: Path


@dataclass
class BatchReport:
    """What a batch did: outputs written, failures with their reasons, time and pixels."""

    written: list[Job] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # said of files restored elsewhere (Ray)
    seconds: float = 0.0
    megapixels: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        rate = self.megapixels / self.seconds if self.seconds > 0 else 0.0
        return (
            f"{self._what_was_written()} restored, {len(self.failed)} failed, "
            f"{self.seconds:.1f} s, {rate:.2f} Mpix/s"
        )

    def _what_was_written(self) -> str:
        def count(n: int, noun: str) -> str:
            return f"{n} {noun}{'' if n == 1 else 's'}"

        videos = sum(is_video(job.source) for job in self.written)
        images = len(self.written) - videos
        if videos == 0 or images == 0:
            return count(videos, "video") if videos else count(images, "image")
        return f"{count(len(self.written), 'file')} ({count(videos, 'video')}, {count(images, 'image')})"


def _is_candidate(path: Path) -> bool:
    # Hidden files are not pictures people restore (and our own temporary files are hidden).
    return path.is_file() and not path.name.startswith(".")


def collect_inputs(spec: str, *, recursive: bool = False) -> tuple[list[Path], Path]:
    """The files named by a file, folder or glob, and the folder their relative paths start at.

    Every regular, non-hidden file of a folder is taken, whatever its extension, so that a file
    that is not an image is reported rather than silently skipped. `@FILE` reads a manifest:
    one path per line (relative to the manifest's folder; blank lines and `#` comments skipped).
    """
    if spec.startswith("@"):
        return read_manifest(Path(spec[1:]))
    path = Path(spec)
    if path.is_file():
        return [path], path.parent
    if path.is_dir():
        found = path.rglob("*") if recursive else path.iterdir()
        files = sorted(p for p in found if _is_candidate(p) and not _hidden_parts(p, path))
        if not files:
            raise MemNetError(
                f"{path}: no files found{' (searched recursively)' if recursive else ''}"
            )
        return files, path
    if GLOB_CHARS & set(spec):
        files = sorted(
            Path(p) for p in glob.glob(spec, recursive=recursive) if _is_candidate(Path(p))
        )
        if not files:
            raise MemNetError(f"{spec}: no files match")
        return files, _glob_base(spec)
    raise MemNetError(f"{spec}: no such file or folder")


def read_manifest(manifest: Path) -> tuple[list[Path], Path]:
    """The files a manifest lists (one a line) and the folder they all lie under.

    Listed files that are missing are kept, so that each is reported as failed, never dropped.
    """
    try:
        lines = manifest.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise MemNetError(f"{manifest}: cannot read the manifest ({error})") from None
    folder = manifest.parent
    files: list[Path] = []
    for line in lines:
        entry = line.strip()
        if entry and not entry.startswith("#"):
            files.append(Path(entry) if Path(entry).is_absolute() else folder / entry)
    if not files:
        raise MemNetError(f"{manifest}: the manifest lists no files")
    if len(set(files)) != len(files):
        raise MemNetError(f"{manifest}: a file is listed twice")
    base = Path(os.path.commonpath([str(p.parent.absolute()) for p in files]))
    if base == folder.absolute():
        return files, folder
    return [p.absolute() for p in files], base


def _hidden_parts(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts[:-1])


def _glob_base(spec: str) -> Path:
    parts = Path(spec).parts
    fixed = [p for p in parts[: next(i for i, p in enumerate(parts) if GLOB_CHARS & set(p))]]
    return Path(*fixed) if fixed else Path(".")


def output_suffix(source: Path, ext: str, default_ext: str | None = None) -> str:
    """The output file extension: the chosen one, or (auto) the input's if memnet can write it.

    A video keeps its own container whatever `ext` says (`ext` is an image format).
    """
    if is_video(source):
        return source.suffix.lower()
    if ext != "auto":
        if ext not in EXTENSIONS:
            raise MemNetError(f"unknown output extension {ext!r}; use {', '.join(EXTENSIONS)}")
        return "." + ext
    if default_ext is not None:
        return "." + default_ext
    suffix = source.suffix.lower()
    return suffix if suffix in FORMAT_BY_SUFFIX else ".png"


def plan_outputs(
    sources: list[Path],
    base: Path,
    output: str,
    *,
    suffix: str,
    ext: str = "auto",
    default_ext: str | None = None,
    overwrite: bool = False,
    single_file_input: bool = False,
) -> list[Job]:
    """Pair every input with its output path and refuse any plan that could lose data."""
    out = Path(output)
    to_file = single_file_input and len(sources) == 1 and out.suffix != "" and not out.is_dir()
    if to_file:
        if is_video(sources[0]) != is_video(out):
            kind = "a video" if is_video(sources[0]) else "an image"
            wanted = VIDEO_SUFFIXES if is_video(sources[0]) else FORMAT_BY_SUFFIX
            raise MemNetError(
                f"{out}: the input is {kind}, so the output needs one of {', '.join(wanted)}"
            )
        if not is_video(out) and out.suffix.lower() not in FORMAT_BY_SUFFIX:
            raise MemNetError(
                f"{out}: unsupported output extension {out.suffix!r}; use one of {', '.join(FORMAT_BY_SUFFIX)}"
            )
        jobs = [Job(sources[0], out)]
    else:
        if out.exists() and not out.is_dir():
            raise MemNetError(f"{out}: is a file; several inputs need an output folder")
        if not out.exists() and (out.suffix.lower() in FORMAT_BY_SUFFIX or is_video(out)):
            # a folder called "x.png" is almost always a mistake; an existing one is taken as is
            raise MemNetError(
                f"{out}: looks like an image file name, but the input is a folder or glob "
                f"({len(sources)} file{'' if len(sources) == 1 else 's'}); give an output folder"
            )
        jobs = []
        for source in sources:
            relative = (
                source.relative_to(base) if source.is_relative_to(base) else Path(source.name)
            )
            name = f"{source.stem}{suffix}{output_suffix(source, ext, default_ext)}"
            jobs.append(Job(source, out / relative.parent / name))
    _check_plan(jobs, sources, overwrite=overwrite)
    return jobs


def _check_plan(jobs: list[Job], sources: list[Path], *, overwrite: bool) -> None:
    inputs = {source.resolve() for source in sources}
    seen: dict[Path, Path] = {}
    existing: list[Path] = []
    for job in jobs:
        target = job.target.resolve()
        if target in inputs:
            raise MemNetError(
                f"{job.target}: refusing to overwrite an input image (even with --overwrite); "
                "choose another output or a --suffix"
            )
        if target in seen:
            raise MemNetError(
                f"{seen[target]} and {job.source} would both be written to {job.target}; "
                "use --ext or --suffix to tell them apart"
            )
        seen[target] = job.source
        if job.target.exists():
            existing.append(job.target)
    if existing and not overwrite:
        more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
        raise MemNetError(
            f"{existing[0]}{more} already exist{'s' if len(existing) == 1 else ''}; "
            "pass --overwrite to replace, or choose another output or --suffix"
        )
    for job in jobs:
        if job.target.is_dir():
            raise MemNetError(f"{job.target}: is a folder, cannot write the output there")


def _one_line(error: BaseException, source: Path) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if str(source) in text else f"{source}: {text}"


def run_jobs(
    jobs: list[Job],
    restore_one: Callable[[Job], float],
    *,
    on_done: Callable[[Job], None] | None = None,
    on_error: Callable[[Path, str], None] | None = None,
) -> BatchReport:
    """Run `restore_one(job)` (returns output megapixels) for every job, collecting failures."""
    report = BatchReport()
    start = time.perf_counter()
    for job in jobs:
        try:
            try:
                job.target.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise MemNetError(
                    f"{job.target.parent}: cannot create the output folder ({error.strerror or error})"
                ) from None
            report.megapixels += restore_one(job)
        except (MemNetError, ValueError, OSError) as error:
            reason = _one_line(error, job.source)
        except MemoryError:
            reason = f"{job.source}: out of memory (try a smaller --tile)"
        except RuntimeError as error:  # e.g. a device running out of memory
            first_line = (str(error).strip().splitlines() or [""])[0]
            reason = f"{job.source}: {type(error).__name__}: {first_line}"
        except Exception as error:  # a decoder's or encoder's own bug: this file fails alone
            first_line = (str(error).strip().splitlines() or [""])[0]
            reason = f"{job.source}: internal error: {type(error).__name__}: {first_line}"
        else:
            report.written.append(job)
            if on_done is not None:
                on_done(job)
            continue
        report.failed.append((job.source, reason))
        if on_error is not None:
            on_error(job.source, reason)
    report.seconds = time.perf_counter() - start
    return report
