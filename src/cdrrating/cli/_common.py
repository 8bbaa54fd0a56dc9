"""What every command shares: exit codes, errors, inputs, outputs, the database (private)."""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import os
import re
import sqlite3
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from cdrrating import repository
from cdrrating.errors import CdrRatingError
from cdrrating.formats import (
    CDR_FORMATS,
    RATE_FORMATS,
    FormatError,
    Reader,
    read_cdrs,
    read_rates,
    write_records,
)
from cdrrating.formats.parquet import is_parquet_path, require_pyarrow
from cdrrating.money import format_micros

EXIT_OK = 0
EXIT_REJECTED_ROWS = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_UNAVAILABLE = 4
#: Standard output was closed before everything was printed (``cdrrating … | head``):
#: what a shell reports for a program stopped by SIGPIPE. What was to be stored is stored.
EXIT_OUTPUT_CLOSED = 141

#: Rejected rows printed on stderr unless ``--max-rejects`` says otherwise.
DEFAULT_MAX_REJECTS = 20

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


# -- the user's words ----------------------------------------------------------------------

# The library's messages name its Python keywords and micro-unit fields; on the command
# line the user wrote options and decimal prices. Each pair: what the library says, what
# the user should read instead.
_OPTION_WORDS = (
    (re.compile(r"use decimal_separator=','"), "use --decimal-comma"),
    (
        re.compile(r"\(the decimal separator is '\.' here, not ','\)"),
        "(the decimal separator is '.' unless --decimal-comma is given)",
    ),
    (re.compile(r"pass encoding=[^)]*\)"), "pass --cdr-encoding or --rates-encoding, e.g. cp1252)"),
    (re.compile(r"\(pass encoding='[^']*'\)"), "(pass --cdr-encoding or --rates-encoding)"),
    (re.compile(r"price_unit=\"second\""), "--per-second"),
)
_MICROS_FIELD = re.compile(r"\b(\w+)_micros: got (-?\d+), expected an int >= 0")
_MONEY_NAMES = {
    "per_minute": "price per minute",
    "connection_fee": "connection fee",
    "minimum_charge": "minimum charge",
    "maximum_charge": "maximum charge",
}


def user_words(message: str) -> str:
    """``message`` in the words of the command line: options instead of Python keywords,
    decimal prices instead of micro-units."""
    for pattern, replacement in _OPTION_WORDS:
        message = pattern.sub(replacement, message)

    def price(match: re.Match[str]) -> str:
        name = _MONEY_NAMES.get(match.group(1), match.group(1).replace("_", " "))
        return f"{name}: got {format_micros(int(match.group(2)))}, expected 0 or more"

    return _MICROS_FIELD.sub(price, message)


# -- options -------------------------------------------------------------------------------


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(
            f"unknown time zone {name!r} (an IANA name such as UTC or Europe/Berlin)"
        ) from None


_CURRENCY = re.compile(r"[A-Za-z]{3}")


def currency_code(text: str) -> str:
    """An ISO 4217 code; written in any case (``eur`` is ``EUR``: codes are letters only,
    so upper-casing changes nothing but the spelling)."""
    if _CURRENCY.fullmatch(text) is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a currency code: expected three letters of ISO 4217, e.g. EUR"
        )
    return text.upper()


def count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of 0 or more, got {text!r}")
    return value


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


def add_format_option(p: argparse.ArgumentParser, default: str) -> None:
    """``--format`` and ``--csv-raw``, which every command that prints records takes."""
    p.add_argument("--format", choices=RECORD_FORMATS, default=default)
    p.add_argument(
        "--csv-raw",
        action="store_true",
        help="CSV cells exactly as stored: no ' before text starting with = + - @ "
        "(by default it is added, so that a spreadsheet does not run a cell as a formula)",
    )


def add_text_options(p: argparse.ArgumentParser, times: str, *, cdrs: bool, deck: bool) -> None:
    """The encodings of the inputs a command reads, and ``--default-tz``."""
    p.add_argument("--encoding", help="of every input file (default utf-8; a byte-order mark wins)")
    if cdrs:
        p.add_argument("--cdr-encoding", help="of the CDR file (default: --encoding)")
    if deck:
        p.add_argument("--rates-encoding", help="of the rate deck (default: --encoding)")
    p.add_argument(
        "--default-tz",
        type=zone,
        default=ZoneInfo("UTC"),
        help=f"time zone of {times} written without an offset (default UTC)",
    )


def add_reject_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--reject-file", metavar="FILE", help="also write rejected rows there (CSV with line)"
    )
    p.add_argument(
        "--max-rejects",
        type=count,
        default=DEFAULT_MAX_REJECTS,
        metavar="N",
        help=f"print at most N rejected rows on stderr, then how many more "
        f"(default {DEFAULT_MAX_REJECTS}; --reject-file gets them all)",
    )


def add_cdr_input_options(p: argparse.ArgumentParser, *, deck: bool = False) -> None:
    p.add_argument(
        "--cdr-format",
        choices=list(CDR_FORMATS),
        help="the CDR file's format (default: parquet for a file named *.parquet or *.pq, "
        "else csv: named columns; see docs/formats/)",
    )
    p.add_argument(
        "--mapping",
        type=json_mapping,
        help="JSON object renaming CDR columns, for the csv, json and parquet formats",
    )
    add_text_options(p, "timestamps", cdrs=True, deck=deck)
    add_reject_options(p)


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


def encoding(args: argparse.Namespace, which: str) -> str:
    """The encoding of the ``which`` input (``cdr`` or ``rates``)."""
    own: str | None = getattr(args, f"{which}_encoding", None)
    return own or args.encoding or "utf-8"


# -- inputs --------------------------------------------------------------------------------


def source(path: str) -> Any:
    """What a reader reads: the path, or standard input's bytes for ``-``."""
    return sys.stdin.buffer if path == "-" else path


def cdr_format(args: argparse.Namespace) -> str:
    """The CDR file's format: ``--cdr-format``, else told by the file name (``*.parquet``
    and ``*.pq`` are Parquet), else csv."""
    given: str | None = args.cdr_format
    if given is not None:
        return given
    return "parquet" if args.cdrs != "-" and is_parquet_path(args.cdrs) else "csv"


def need_pyarrow(what: str) -> None:
    """Fail now, before anything is read or stored, when Parquet cannot be used here."""
    try:
        require_pyarrow()
    except ImportError as error:
        raise InputError(f"{what}: {error}") from None


def cdr_reader(
    path: str, args: argparse.Namespace, reject_file: IO[str] | None = None
) -> Reader[Any]:
    fmt = cdr_format(args)
    options: dict[str, Any] = {
        "encoding": encoding(args, "cdr"),
        "default_tz": args.default_tz,
        "reject_file": reject_file,
    }
    if args.mapping is not None:
        if fmt not in ("csv", "json", "parquet"):
            raise UsageError(
                f"--mapping applies to the csv and json formats and to parquet, not {fmt}"
            )
        options["mapping"] = args.mapping
    if fmt == "parquet":
        if path == "-":
            raise UsageError(
                "a Parquet file cannot be read from stdin (its index is at its end): give its path"
            )
        need_pyarrow(path)
        row_group_size = getattr(args, "row_group_size", None)
        if row_group_size is not None:
            options["batch_size"] = row_group_size
    return read_cdrs(source(path), fmt, **options)


def read_deck(path: str, args: argparse.Namespace) -> tuple[list[Any], Reader[Any]]:
    """Every rate of a deck, or an :class:`InputError` listing every bad row.

    A deck with bad rows is refused whole: rating against part of a deck would price
    calls with the wrong (shorter-prefix) rates without saying so.
    """
    options: dict[str, Any] = {
        "encoding": encoding(args, "rates"),
        "decimal_separator": "," if args.decimal_comma else ".",
        "price_unit": "second" if args.per_second else "minute",
        "default_tz": args.default_tz,
    }
    if args.dayfirst:
        options["dayfirst"] = True
    reader = read_rates(source(path), args.rate_format, **options)
    rates = list(guarded(reader, "--rates-encoding"))
    if reader.rejects:
        shown = "\n  ".join(f"{path}:{r.line}: {user_words(r.reason)}" for r in reader.rejects[:20])
        more = f"\n  ... and {len(reader.rejects) - 20} more" if len(reader.rejects) > 20 else ""
        raise InputError(
            f"the rate deck has {len(reader.rejects)} invalid row(s):\n  {shown}{more}"
        )
    if not rates:
        raise InputError(f"{path}: the rate deck has no rates")
    return rates, reader


def guarded(records: Iterable[Any], encoding_option: str = "--cdr-encoding") -> Iterator[Any]:
    """``records``, with file-level failures (unreadable, wrong header, not the encoding
    given) turned into an :class:`InputError` that names the file and line."""
    name = getattr(records, "name", "input")
    try:
        yield from records
    except FormatError as error:
        message = str(error)
        if error.field == "encoding":
            # The reader's advice names its Python keyword; here it is an option.
            message = re.sub(r"[;,]?\s*\(?pass encoding=.*$", "", message)
            message += f" (give the file's encoding with {encoding_option}, e.g. cp1252)"
        raise InputError(f"{name}: {user_words(message)}") from None
    except OSError as error:
        if error.filename is None:
            # Not the file failing but a value of a row making the system give up:
            # say where reading stopped, not that the file cannot be read.
            line = getattr(records, "rows", 0) + getattr(records, "skipped", 0)
            raise InputError(
                f"{name}: reading stopped after {line} rows: {error.strerror or error}"
            ) from None
        raise InputError(f"cannot read {name}: {error.strerror or error}") from None


class RejectLog:
    """Rejected rows as they happen: the first ``limit`` on stderr, every one counted and,
    with ``--reject-file``, every one written there (the reader writes its own; the
    command adds the records it refuses itself, such as a repeated call_id)."""

    def __init__(self, err: TextIO, limit: int, reject_file: IO[str] | None = None) -> None:
        self._err = err
        self._limit = limit
        self._file = reject_file
        self.count = 0

    def add(self, where: str, reason: str) -> None:
        self.count += 1
        if self.count <= self._limit:
            self._err.write(f"{where}: rejected: {user_words(reason)}\n")

    def add_own(self, where: Where, field: str, reason: str, raw: str) -> None:
        """A record the command refused itself (the reader had accepted it)."""
        self.add(where.text(), reason)
        if self._file is not None:
            csv.writer(self._file, lineterminator="\r\n").writerow(
                (where.source, where.line or "", field, reason, raw)
            )

    def close(self) -> None:
        hidden = self.count - self._limit
        if hidden > 0:
            where = " (all of them are in the --reject-file)" if self._file is not None else ""
            self._err.write(
                f"... and {hidden} more rejected row(s) not shown (--max-rejects "
                f"{self._limit}){where}\n"
            )


@attrs.frozen
class Where:
    """Where a record was in its input: the line when the reader tells it, else the
    number of the row of data (a header not counted)."""

    source: str
    line: int | None
    row: int

    def text(self) -> str:
        return f"{self.source}:{self.line}" if self.line else f"{self.source}: row {self.row}"


def _where(reader: Reader[Any]) -> Where:
    # A reader that tells the line of the record it handed out last says it as ``line``;
    # a Parquet file has rows, not lines.
    line = getattr(reader, "line", None)
    if reader.format == "parquet":
        line = None
    return Where(reader.name, line if isinstance(line, int) else None, reader.rows)


def _reject_place(reader: Reader[Any], line: int) -> str:
    return f"{reader.name}: row {line}" if reader.format == "parquet" else f"{reader.name}:{line}"


def first_of_each_call(
    reader: Reader[Any],
    log: RejectLog,
    step: Callable[[], None] | None = None,
    *,
    tenant: str | None = None,
) -> Iterator[tuple[Where, Any]]:
    """``(where, cdr)`` for each record ``reader`` reads, with every reject of the reader
    logged as it happens, and a call read before in this input left out and rejected:
    the first record of a call is kept, so that what is printed and what is stored are
    the same calls. A call is a call_id of a tenant (``tenant`` for records that name
    none), as storage keys them."""
    seen: set[tuple[str | None, str]] = set()
    logged = 0

    def log_reader_rejects() -> None:
        nonlocal logged
        for reject in reader.rejects[logged:]:
            log.add(_reject_place(reader, reject.line), reject.reason)
        logged = len(reader.rejects)

    for cdr in guarded(reader):
        log_reader_rejects()
        if step is not None:
            step()
        where = _where(reader)
        key = (cdr.tenant if cdr.tenant is not None else tenant, cdr.call_id)
        if key in seen:
            log.add_own(
                where,
                "call_id",
                f"call_id {cdr.call_id!r} was read before in this input "
                "(the first record of a call is kept)",
                cdr.call_id,
            )
            continue
        seen.add(key)
        yield where, cdr
    log_reader_rejects()


@contextlib.contextmanager
def reject_stream(path: str | None) -> Iterator[IO[str] | None]:
    """The ``--reject-file``, opened before any row is read."""
    if path is None:
        yield None
        return
    with contextlib.ExitStack() as stack:
        try:
            handle = stack.enter_context(Path(path).open("w", encoding="utf-8", newline=""))
        except OSError as error:
            raise InputError(f"cannot write {path}: {error.strerror or error}") from None
        yield handle


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
    csv_raw: bool = False,
) -> int:
    """Write records to stdout as csv, json, jsonl (streamed) or an aligned table (which
    must see every row to size its columns, so it holds them all: use it for reading,
    the others for files and pipes). CSV is spreadsheet-safe unless ``csv_raw``.
    Returns the number of records."""
    if fmt != "table":
        return write_records(
            records, out, format=fmt, columns=columns, spreadsheet_safe=not csv_raw
        )
    rows = list(records)
    header = list(columns) if columns is not None else (list(rows[0]) if rows else [])
    write_table(out, header, [[_table_cell(r.get(c), cell_width) for c in header] for r in rows])
    return len(rows)


# -- the database --------------------------------------------------------------------------


def db_url(value: str) -> str:
    return value if "://" in value else f"sqlite:///{value}"


_PASSWORD = re.compile(r"(://[^:/@]*):[^@/]*@")


def shown_db(value: str) -> str:
    """The database URL as messages show it: a password in it is left out."""
    return _PASSWORD.sub(r"\1:***@", db_url(value))


def _sqlite_file(url: str) -> str | None:
    """The file of a SQLite URL (None for other databases and in-memory ones)."""
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[1] if ":///" in url else ""
    path = path.split("?", 1)[0]
    return None if path in ("", ":memory:") or path.startswith("file:") else path


def storage_message(error: BaseException) -> str:
    """One line about a database failure, without the statement or the row values that
    SQLAlchemy's own message carries (they may be customers' numbers)."""
    # The storage layer's own error keeps the driver's as its cause.
    cause: BaseException = error.__cause__ or error if _is_storage_error(error) else error
    cause = getattr(cause, "orig", None) or cause
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    hints = {
        "readonly": "the database is read-only here",
        "locked": "another program holds the database; try again when it is done",
        "not a database": "the file is not a SQLite database (or it is damaged)",
        "malformed": "the database file is damaged",
        "no such table": "the database holds no cdrrating tables: was it written by cdrrating?",
        "unable to open": "the database file cannot be opened here",
    }
    hint = next((h for key, h in hints.items() if key in text.lower()), None)
    return f"{text} ({hint})" if hint else text


def _is_storage_error(error: BaseException) -> bool:
    # repository.StorageError: the database failed (unreachable, locked past the
    # retries, read-only, damaged). Looked up by name: older versions do not have it.
    kind = getattr(repository, "StorageError", None)
    return isinstance(kind, type) and isinstance(error, kind)


@contextlib.contextmanager
def open_repository(db: str, kind: str = "cdrs", *, must_exist: bool = False) -> Iterator[Any]:
    """The CDR (or, with ``kind="rates"``, rate) repository at ``db``.

    A command that writes creates the tables if missing; a read-only one refuses a
    database file that does not exist (a typo in --db must not leave an empty database
    behind). Any database failure while the repository is in use ends the command with
    one line and exit code 4 (:class:`StorageUnavailable`).
    """
    url = db_url(db)
    shown = shown_db(db)
    try:
        from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415 - the same extra

        from cdrrating import sql  # noqa: PLC0415 - the optional [sql] extra
    except ImportError as error:
        raise StorageUnavailable(
            f"{error}; pip install 'cdrrating[sql]' (or pass --no-store where offered)"
        ) from None
    file = _sqlite_file(url)
    if must_exist and file is not None and not Path(file).exists():
        raise StorageUnavailable(
            f"no database at {file}: this command only reads, and creates none "
            "(check --db or $CDRRATING_DB)"
        )
    # Cursors must survive between invocations, so the CLI cannot use a random key;
    # whoever runs it can read the database anyway, so a key derived from the URL is
    # enough unless $CDRRATING_CURSOR_KEY names a secret.
    key = (
        os.environ.get("CDRRATING_CURSOR_KEY")
        or hashlib.sha256(b"cdrrating-cli\0" + url.encode()).hexdigest()
    )
    cls = {"rates": sql.SQLRateRepository, "sessions": sql.SQLSessionRepository}.get(
        kind, sql.SQLCDRRepository
    )
    try:
        repo: Any = cls(url, create=not must_exist, cursor_key=key)
    except ImportError as error:  # a driver (psycopg, pymysql) is missing
        raise StorageUnavailable(f"{shown}: {error}; pip install 'cdrrating[sql]'") from None
    except (SQLAlchemyError, ValueError, OSError, CdrRatingError) as error:
        if isinstance(error, CdrRatingError) and not _is_storage_error(error):
            raise
        raise StorageUnavailable(f"cannot open {shown}: {storage_message(error)}") from None
    try:
        yield repo
    # sqlite3's own errors too: one raised where the storage layer talks to the driver
    # directly (its BEGIN) is not wrapped by SQLAlchemy.
    except (SQLAlchemyError, sqlite3.Error, CdrRatingError) as error:
        if isinstance(error, CdrRatingError) and not _is_storage_error(error):
            raise
        raise StorageUnavailable(f"{shown}: {storage_message(error)}") from None
    finally:
        with contextlib.suppress(SQLAlchemyError):
            repo.engine.dispose()
