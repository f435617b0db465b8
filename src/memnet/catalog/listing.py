"""The catalogue in words: the table of `memnet data list`, a set looked up by name with a
one-line error, fetches and checks reported one line per set."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from memnet.catalog import sets
from memnet.catalog.sets import CatalogSet
from memnet.errors import MemNetError

__all__ = ["catalog_table", "check_sets", "fetch_lines", "require_set"]


def require_set(name: str) -> CatalogSet:
    """The catalogued set `name`, or a MemNetError naming every known set."""
    # through the module, so that a replaced catalogue (sets.load_catalog) is the one read
    entry = sets.find_set(name)
    if entry is None:
        known = ", ".join(e.name for e in sets.load_catalog())
        raise MemNetError(f"unknown set {name!r}; known sets: {known}")
    return entry


def catalog_table(data_root: str | os.PathLike[str] | None = None) -> list[str]:
    """Every set with its task, size, colour, source and where it is found, as aligned lines."""
    from memnet.catalog.locate import search_roots

    roots = search_roots(data_root)
    rows = [("set", "for", "images", "colour", "source", "here")]
    purposes: list[list[str]] = [[]]
    for entry in sets.load_catalog():
        source = entry.source.describe() if entry.fetchable else "not fetchable (see below)"
        found = [str(root / entry.folder) for root in roots if (root / entry.folder).is_dir()]
        role = f"{entry.task} {entry.role}"
        rows.append(
            (entry.name, role, str(entry.images), entry.colour, source, found[0] if found else "-")
        )
        notes = [entry.purpose]
        if not entry.fetchable:
            notes.append(f"not fetchable: {entry.unavailable} ({entry.source.homepage})")
        purposes.append(notes)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines: list[str] = []
    for row, purpose in zip(rows, purposes, strict=True):
        cells = zip(row, widths, strict=True)
        lines.append("  ".join(cell.ljust(width) for cell, width in cells).rstrip())
        lines += [" " * (widths[0] + 2) + line for line in purpose]
    return lines


def fetch_lines(names: list[str], root: Path | None, *, progress: bool) -> Iterator[str]:
    """Fetch and verify the named sets (every name checked first), a line as each is in place."""
    from memnet.catalog.fetch import fetch_set
    from memnet.catalog.locate import fetch_root

    entries = [require_set(name) for name in names]  # every name is checked before any download
    for entry in entries:
        if not entry.fetchable:
            raise MemNetError(f"{entry.name} cannot be fetched by memnet: {entry.unavailable}")
    target = root if root is not None else fetch_root()
    for entry in entries:
        folder, downloaded = fetch_set(entry, target, progress=progress)
        state = "fetched and verified" if downloaded else "already there, verified"
        yield f"{entry.name}: {len(entry.files)} files {state}: {folder}"


def check_sets(folder: Path, set_name: str | None, say: Callable[[str], None]) -> bool:
    """Compare `folder` (a set, or a data root) with the catalogue, saying a line per set and per
    differing file; True when all files match. Without `set_name` the sets are told apart from
    the folder."""
    from memnet.catalog.check import check_folder, identify_sets

    if not folder.is_dir():
        raise MemNetError(f"{folder}: not a folder")
    targets = identify_sets(folder) if set_name is None else [(require_set(set_name), folder)]
    all_ok = True
    for entry, path in targets:
        report = check_folder(path, entry)
        total = len(entry.files)
        if report.ok:
            say(f"{entry.name}: {path}: all {total} files match the catalogue (decoded pixels)")
            continue
        all_ok = False
        say(
            f"{entry.name}: {path}: {report.matched} of {total} files match, "
            f"{len(report.differences)} differ:"
        )
        for difference in report.differences:
            say(f"  {difference.name}: {difference.problem}: {difference.detail}")
    return all_ok
