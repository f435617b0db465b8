"""The `memnet` command: argument parsing only; every subcommand calls the library modules."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from memnet.errors import MemNetError

__all__ = ["build_parser", "main"]

# One module per subcommand, each with `register(subparsers)` that sets `handler` on its parser.
COMMANDS = ("restore", "eval", "train", "export", "compare", "info", "data", "convert", "serve")


class _VersionAction(argparse.Action):
    """--version: the installed version is looked up only when it is asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        kwargs.update(nargs=0, default=argparse.SUPPRESS)
        super().__init__(
            option_strings, dest, help="show program's version number and exit", **kwargs
        )

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        from memnet import __version__

        sys.stdout.write(f"memnet {__version__}\n")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memnet",
        description="MemNet image restoration: super-resolution, denoising and JPEG deblocking.",
        epilog="Run 'memnet COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action=_VersionAction)
    parser.add_argument(
        "--debug", action="store_true", help="show full tracebacks instead of one-line errors"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"memnet.cli.{name}")
        except ModuleNotFoundError as error:
            if error.name == f"memnet.cli.{name}":
                continue  # command not part of this build
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    debug = args.debug or bool(os.environ.get("MEMNET_DEBUG"))
    # The command owns its process, so it sets what the library leaves to its caller.
    from memnet.cpu_settings import retain_freed_memory

    retain_freed_memory()
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("memnet: interrupted", file=sys.stderr)
        return 130
    except (MemNetError, ValueError, OSError) as error:  # OSError: a full disk, a read-only folder
        if debug:
            raise
        sys.stdout.flush()  # what the command printed comes out before its error line
        print(f"memnet {args.command}: error: {error}", file=sys.stderr)
        return 1
    except Exception as error:
        if debug:
            raise
        sys.stdout.flush()
        print(
            f"memnet {args.command}: internal error: {type(error).__name__}: {error} "
            "(re-run with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
