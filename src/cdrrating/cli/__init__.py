"""The ``cdrrating`` command line: a thin layer over the Python API.

Data goes to stdout, messages to stderr. Exit codes:

* 0: done; every record was rated or reported as unanswered/unrated (``check-plan``: the
  deck has no findings).
* 1: done, but some input records were rejected, each reported on stderr with its line
  (``check-plan``: the deck has findings).
* 2: usage error (bad or conflicting options).
* 3: an input could not be used at all (unreadable file, wrong header or encoding, an
  invalid rate deck, a deck imported twice).
* 4: storage is unavailable: SQLAlchemy (the ``[sql]`` extra) or a database driver is
  not installed, or the database cannot be reached.

Each subcommand is one ``add_<name>`` function that registers its parser and handler.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

from cdrrating import __version__

from ._common import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_REJECTED_ROWS,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    InputError,
    StorageUnavailable,
    SubParsers,
    UsageError,
)
from ._rate import add_check_plan, add_rate, rate_command, summarise
from ._store import add_export, add_import_cdrs, add_import_rates, add_prune, add_query

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_OK",
    "EXIT_REJECTED_ROWS",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "build_parser",
    "main",
    "rate_command",
    "summarise",
]

_COMMANDS: list[Callable[[SubParsers[argparse.ArgumentParser]], None]] = [
    add_rate,
    add_check_plan,
    add_import_rates,
    add_import_cdrs,
    add_query,
    add_export,
    add_prune,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cdrrating", description="Rate call detail records exactly, and explain every cost."
    )
    parser.add_argument("--version", action="version", version=f"cdrrating {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _COMMANDS:
        add(sub)
    return parser


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args, out, err)
    except UsageError as error:
        err.write(f"cdrrating {args.command}: error: {error}\n")
        return EXIT_USAGE
    except InputError as error:
        err.write(f"cdrrating: error: {error}\n")
        return EXIT_BAD_INPUT
    except StorageUnavailable as error:
        err.write(f"cdrrating: error: {error}\n")
        return EXIT_UNAVAILABLE
    except BrokenPipeError:  # `cdrrating ... | head` closed our stdout: not an error
        return EXIT_OK
    return code
