"""`memnet data`: list the catalogued image sets, fetch them, and check a copy against them."""

from __future__ import annotations

import argparse
from pathlib import Path

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


def run_list(args: argparse.Namespace) -> int:
    from memnet.catalog.listing import catalog_table

    for line in catalog_table(args.data_root):
        print(line)
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from memnet.catalog.listing import fetch_lines

    for line in fetch_lines(args.names, args.root, progress=not args.quiet):
        print(line)
    return 0


def run_check(args: argparse.Namespace) -> int:
    from memnet.catalog.listing import check_sets

    return 0 if check_sets(args.folder, args.set_name, print) else 1
