"""What every command shares: exit codes, errors, inputs, outputs, the database (private)."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cdrrating.formats import (
    CDR_FORMATS,
    RATE_FORMATS,
    FormatError,
    Reader,
    read_cdrs,
    read_rates,
    write_records,
)

EXIT_OK = 0
EXIT_REJECTED_ROWS = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_UNAVAILABLE = 4

#: The database ``rate`` and ``import-*`` write to and ``query``/``export``/``prune`` read,
#: unless ``--db`` or ``$CDRRATING_DB`` names another (``cdrrating.sql.DEFAULT_URL``).
DEFAULT_DB = "sqlite:///cdrrating.sqlite3"

#: ``--format`` choices of commands that print records.
RECORD_FORMATS = ("table", "csv", "json", "jsonl")

SubParsers = argparse._SubParsersAction


class InputError(Exception):
    """An input the command cannot use at all; reported on stderr with exit code 3."""


class StorageUnavailable(Exception):
    """Storage cannot be used here; reported on stderr with exit code 4."""


class UsageError(Exception):
    """Options that do not fit together; reported on stderr with exit code 2."""


# -- options -------------------------------------------------------------------------------


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(
            f"unknown time zone {name!r} (an IANA name such as UTC or Europe/Berlin)"
        ) from None


def json_mapping(text: str) -> dict[str, str]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise argparse.ArgumentTypeError(
            "expected a JSON object of column names, "
            'e.g. \'{"Called Number": "destination_number"}\''
        )
    return value


def add_db_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        metavar="URL",
        default=os.environ.get("CDRRATING_DB", DEFAULT_DB),
        help="database URL (SQLAlchemy form, e.g. postgresql+psycopg://user@host/db) or a "
        f"SQLite file path; default $CDRRATING_DB or {DEFAULT_DB}",
    )


def add_text_options(p: argparse.ArgumentParser, times: str) -> None:
    """``--encoding`` and ``--default-tz``, which every command that reads files takes."""
    p.add_argument("--encoding", default="utf-8", help="of the input files (default utf-8)")
    p.add_argument(
        "--default-tz",
        type=zone,
        default=ZoneInfo("UTC"),
        help=f"time zone of {times} written without an offset (default UTC)",
    )


def add_cdr_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cdr-format",
        choices=list(CDR_FORMATS),
        default="csv",
        help="the CDR file's format (default csv: named columns; see docs/formats/)",
    )
    p.add_argument(
        "--mapping",
        type=json_mapping,
        help="JSON object renaming CDR columns, for the csv and json formats",
    )
    add_text_options(p, "timestamps")
    p.add_argument(
        "--reject-file", metavar="FILE", help="also write rejected rows there (CSV with line)"
    )


def add_deck_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--rate-format",
        choices=list(RATE_FORMATS),
        default="csv",
        help="csv (a deck with a header) or notice (a vendor rate notice with a preamble, "
        "code lists and ranges)",
    )
    p.add_argument(
        "--decimal-comma",
        action="store_true",
        help="prices in the deck use ',' as the decimal separator",
    )
    p.add_argument(
        "--per-second",
        action="store_true",
        help="the deck's unlabelled price column is per second, not per minute",
    )
    p.add_argument(
        "--dayfirst", action="store_true", help="dates in the deck are day first (23/09/2026)"
    )


# -- inputs --------------------------------------------------------------------------------


def source(path: str) -> Any:
    """What a reader reads: the path, or standard input's bytes for ``-``."""
    return sys.stdin.buffer if path == "-" else path


def cdr_reader(path: str, args: argparse.Namespace) -> Reader[Any]:
    options: dict[str, Any] = {
        "encoding": args.encoding,
        "default_tz": args.default_tz,
        "reject_file": args.reject_file,
    }
    if args.mapping is not None:
        if args.cdr_format not in ("csv", "json"):
            raise UsageError(
                f"--mapping applies to the csv and json formats, not {args.cdr_format}"
            )
        options["mapping"] = args.mapping
    return read_cdrs(source(path), args.cdr_format, **options)


def read_deck(path: str, args: argparse.Namespace) -> tuple[list[Any], Reader[Any]]:
    """Every rate of a deck, or an :class:`InputError` listing every bad row.

    A deck with bad rows is refused whole: rating against part of a deck would price
    calls with the wrong (shorter-prefix) rates without saying so.
    """
    options: dict[str, Any] = {
        "encoding": args.encoding,
        "decimal_separator": "," if args.decimal_comma else ".",
        "price_unit": "second" if args.per_second else "minute",
        "default_tz": args.default_tz,
    }
    if args.dayfirst:
        options["dayfirst"] = True
    reader = read_rates(source(path), args.rate_format, **options)
    rates = list(guarded(reader))
    if reader.rejects:
        shown = "\n  ".join(f"{path}:{r.line}: {r.reason}" for r in reader.rejects[:20])
        more = f"\n  ... and {len(reader.rejects) - 20} more" if len(reader.rejects) > 20 else ""
        raise InputError(
            f"the rate deck has {len(reader.rejects)} invalid row(s):\n  {shown}{more}"
        )
    if not rates:
        raise InputError(f"{path}: the rate deck has no rates")
    return rates, reader


def guarded(records: Iterable[Any]) -> Iterator[Any]:
    """``records``, with file-level failures (unreadable, wrong header, not the encoding
    given) turned into an :class:`InputError` that names the file and line."""
    name = getattr(records, "name", "input")
    try:
        yield from records
    except FormatError as error:
        hint = ""
        if error.field == "encoding":
            # The reader's own advice names its Python keyword; here it is an option.
            hint = " (on the command line: --encoding, e.g. --encoding cp1252)"
        raise InputError(f"{name}: {error}{hint}") from None
    except OSError as error:
        raise InputError(f"cannot read {name}: {error.strerror or error}") from None


def report_rejects(reader: Reader[Any], err: TextIO) -> int:
    for reject in reader.rejects:
        err.write(f"{reader.name}:{reject.line}: rejected: {reject.reason}\n")
    return len(reader.rejects)


# -- outputs -------------------------------------------------------------------------------


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def write_table(out: TextIO, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """An aligned plain-text table; columns whose cells are all numbers align right."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    numeric = [bool(rows) and all(_numeric(r[i]) for r in rows) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    out.write(line(header) + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in rows:
        out.write(line(row) + "\n")


def _numeric(cell: str) -> bool:
    head = cell.split(" ", 1)[0]  # "4.041200 EUR" is a number with its currency
    return head.replace(".", "", 1).replace("-", "", 1).isdigit() or cell == ""


def _table_cell(value: Any, width: int) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping | list):
        return clip(json.dumps(value, ensure_ascii=False, default=str), width) if value else ""
    return clip(str(value), width)


def emit(
    records: Iterable[Mapping[str, Any]],
    fmt: str,
    out: TextIO,
    *,
    columns: Sequence[str] | None = None,
    cell_width: int = 40,
) -> int:
    """Write records to stdout as csv, json, jsonl (streamed) or an aligned table (which
    must see every row to size its columns, so it holds them all: use it for reading,
    the others for files and pipes). Returns the number of records."""
    if fmt != "table":
        return write_records(records, out, format=fmt, columns=columns)
    rows = list(records)
    header = list(columns) if columns is not None else (list(rows[0]) if rows else [])
    write_table(out, header, [[_table_cell(r.get(c), cell_width) for c in header] for r in rows])
    return len(rows)


# -- the database --------------------------------------------------------------------------


def db_url(value: str) -> str:
    return value if "://" in value else f"sqlite:///{value}"


@contextlib.contextmanager
def open_repository(db: str, kind: str = "cdrs") -> Iterator[Any]:
    """The CDR (or, with ``kind="rates"``, rate) repository at ``db``, its tables
    created if missing."""
    url = db_url(db)
    try:
        from cdrrating import sql  # noqa: PLC0415 - the optional [sql] extra
    except ImportError as error:
        raise StorageUnavailable(
            f"{error}; pip install 'cdrrating[sql]' (or pass --no-store where offered)"
        ) from None
    # Cursors must survive between invocations, so the CLI cannot use a random key;
    # whoever runs it can read the database anyway, so a key derived from the URL is
    # enough unless $CDRRATING_CURSOR_KEY names a secret.
    key = (
        os.environ.get("CDRRATING_CURSOR_KEY")
        or hashlib.sha256(b"cdrrating-cli\0" + url.encode()).hexdigest()
    )
    cls = sql.SQLRateRepository if kind == "rates" else sql.SQLCDRRepository
    try:
        repo: Any = cls(url, create=True, cursor_key=key)
    except ImportError as error:  # a driver (psycopg, pymysql) is missing
        raise StorageUnavailable(f"{url}: {error}; pip install 'cdrrating[sql]'") from None
    except Exception as error:
        from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415 - optional, as above

        if isinstance(error, SQLAlchemyError | ValueError):
            raise StorageUnavailable(f"cannot open {url}: {error}") from None
        raise
    try:
        yield repo
    finally:
        repo.engine.dispose()
