"""`memnet data`: list the catalogued image sets, fetch them, and check a copy against them."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from memnet.errors import MemNetError

if TYPE_CHECKING:
    from memnet.catalog import CatalogSet

EPILOG = """\
examples:
  memnet data list
  memnet data fetch Set5 Set14 BSD100
  memnet data fetch BSD68 --root /data/memnet
  memnet data check ~/datasets/Set14 --set Set14

Sets are downloaded from public repositories pinned to one commit and verified against the
SHA-256 of every file in the catalogue shipped with memnet. The default root is
$MEMNET_DATA_ROOT, else $XDG_DATA_HOME/memnet/datasets (~/.local/share/memnet/datasets);
`memnet eval` and `memnet train` find sets there by name. $MEMNET_DATA_MIRROR replaces
https://raw.githubusercontent.com with a server of the same layout. An interrupted fetch keeps
its files in a hidden .NAME.partial folder and resumes from there when run again.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="list, fetch and verify the benchmark and training sets",
        description="The image sets memnet evaluates and trains on: where each comes from, "
        "a verified download, and a pixel-exact check of your own copy.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="every set memnet knows, with its source")
    listing.add_argument("--data-root", metavar="DIR", help="also show whether each set is in DIR")
    listing.set_defaults(handler=run_list)

    fetch = actions.add_parser(
        "fetch",
        help="download sets, verify every file, put each in place when complete",
        description="Download catalogued sets and verify each file's SHA-256.",
    )
    fetch.add_argument(
        "names", nargs="+", metavar="NAME", help="set names (see 'memnet data list')"
    )
    fetch.add_argument(
        "--root",
        type=Path,
        metavar="DIR",
        help="data root to put the sets in (default: $MEMNET_DATA_ROOT, else "
        "$XDG_DATA_HOME/memnet/datasets)",
    )
    fetch.add_argument("--quiet", action="store_true", help="no progress bar")
    fetch.set_defaults(handler=run_fetch)

    check = actions.add_parser(
        "check",
        help="compare a folder's decoded pixels with a catalogued set",
        description="Tell whether a folder holds the catalogued set, comparing decoded pixels "
        "(a lossless re-encoding such as BMP -> PNG matches) and naming every file that "
        "differs. Exit code 0 when everything matches, 1 otherwise.",
    )
    check.add_argument(
        "folder", type=Path, metavar="DIR", help="a set's folder, or a data root with several"
    )
    check.add_argument(
        "--set",
        dest="set_name",
        metavar="NAME",
        help="the set DIR should hold (default: from the folder's name, a data root's layout "
        "or the images themselves)",
    )
    check.set_defaults(handler=run_check)


def _entry(name: str) -> CatalogSet:
    from memnet.catalog import find_set, load_catalog

    entry = find_set(name)
    if entry is None:
        known = ", ".join(e.name for e in load_catalog())
        raise MemNetError(f"unknown set {name!r}; known sets: {known}")
    return entry


def run_list(args: argparse.Namespace) -> int:
    from memnet.catalog import load_catalog
    from memnet.catalog.locate import search_roots

    roots = search_roots(args.data_root)
    rows = [("set", "for", "images", "colour", "source", "here")]
    purposes: list[list[str]] = [[]]
    for entry in load_catalog():
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
    for row, purpose in zip(rows, purposes, strict=True):
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
        for line in purpose:
            print(" " * (widths[0] + 2) + line)
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from memnet.catalog.fetch import fetch_set
    from memnet.catalog.locate import fetch_root

    entries = [_entry(name) for name in args.names]  # every name is checked before any download
    for entry in entries:
        if not entry.fetchable:
            raise MemNetError(f"{entry.name} cannot be fetched by memnet: {entry.unavailable}")
    root = args.root if args.root is not None else fetch_root()
    for entry in entries:
        folder, downloaded = fetch_set(entry, root, progress=not args.quiet)
        state = "fetched and verified" if downloaded else "already there, verified"
        print(f"{entry.name}: {len(entry.files)} files {state}: {folder}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from memnet.catalog.check import check_folder, identify_sets

    folder: Path = args.folder
    if not folder.is_dir():
        raise MemNetError(f"{folder}: not a folder")
    if args.set_name is not None:
        targets = [(_entry(args.set_name), folder)]
    else:
        targets = identify_sets(folder)
    all_ok = True
    for entry, path in targets:
        report = check_folder(path, entry)
        total = len(entry.files)
        if report.ok:
            print(f"{entry.name}: {path}: all {total} files match the catalogue (decoded pixels)")
            continue
        all_ok = False
        print(
            f"{entry.name}: {path}: {report.matched} of {total} files match, "
            f"{len(report.differences)} differ:"
        )
        for difference in report.differences:
            print(f"  {difference.name}: {difference.problem}: {difference.detail}")
    return 0 if all_ok else 1
