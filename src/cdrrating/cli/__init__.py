"""The ``cdrrating`` command line: a thin layer over the Python API.

Data goes to stdout, messages to stderr. Exit codes:

* 0: done; every record was rated or reported as unanswered/unrated (``check-plan``: the
  deck has no findings).
* 1: done, but some input records were rejected, each reported on stderr with its line
  (``check-plan``: the deck has findings; ``explain``: the stored charge differs).
* 2: usage error (bad or conflicting options).
* 3: an input could not be used at all (unreadable file, wrong header or encoding, an
  invalid rate deck, a deck imported twice, a call that is not stored).
* 4: storage is unavailable: SQLAlchemy (the ``[sql]`` extra) or a database driver is
  not installed, the database cannot be reached or used (read-only, locked, damaged),
  or a command that only reads was pointed at a database file that does not exist.
* 141: standard output was closed early (``cdrrating … | head``); what was to be stored
  was stored first.

Each subcommand is one ``add_<name>`` function that registers its parser and handler.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

import cdrrating
from cdrrating.errors import CdrRatingError

from ._common import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_OUTPUT_CLOSED,
    EXIT_REJECTED_ROWS,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    InputError,
    StorageUnavailable,
    SubParsers,
    UsageError,
    user_words,
)
from ._deck import add_rates
from ._explain import add_explain
from ._rate import add_check_plan, add_rate, summarise
from ._sessions import add_sessions
from ._store import add_export, add_import_cdrs, add_import_rates, add_prune, add_query

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_OK",
    "EXIT_OUTPUT_CLOSED",
    "EXIT_REJECTED_ROWS",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "build_parser",
    "main",
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
    add_rates,
    add_explain,
    add_sessions,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cdrrating", description="Rate call detail records exactly, and explain every cost."
    )
    parser.add_argument("--version", action="version", version=f"cdrrating {cdrrating.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _COMMANDS:
        add(sub)
    return parser


def _silence_stdout() -> None:
    # Python flushes stdout once more at exit; on a closed pipe that flush would print
    # "Exception ignored ... BrokenPipeError". Pointing the descriptor at /dev/null
    # keeps the exit quiet and its code ours.
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args, out, err)
        out.flush()
    except UsageError as error:
        err.write(f"cdrrating {args.command}: error: {error}\n")
        return EXIT_USAGE
    except InputError as error:
        err.write(f"cdrrating: error: {error}\n")
        return EXIT_BAD_INPUT
    except StorageUnavailable as error:
        err.write(f"cdrrating: error: {error}\n")
        return EXIT_UNAVAILABLE
    except BrokenPipeError:
        # `cdrrating ... | head` closed stdout. Whatever was to be stored is stored
        # (commands print last), but not everything was printed: not a success.
        if out is sys.stdout:
            _silence_stdout()
        return EXIT_OUTPUT_CLOSED
    except CdrRatingError as error:
        # A value the command passed on unchecked: still one line, never a traceback.
        err.write(f"cdrrating: error: {user_words(str(error))}\n")
        return EXIT_BAD_INPUT
    return code
