"""The ``cdrrating`` command line: a thin layer over the Python API.

Data goes to stdout, messages to stderr. Exit codes:

* 0: done; every record was rated or reported as unanswered/unrated.
* 1: done, but some input records were rejected (each reported on stderr).
* 2: usage error (bad options).
* 3: an input could not be used at all (unreadable file, invalid rate deck).
* 4: storage is unavailable: SQLAlchemy (the ``[sql]`` extra) or a database driver is
  not installed, or the database cannot be reached.

Each subcommand is one ``_add_<name>`` function that registers its parser and handler,
so later commands slot in without touching the others.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cdrrating import __version__
from cdrrating.errors import ValidationError
from cdrrating.money import Rounding, format_micros
from cdrrating.plan import RatePlan
from cdrrating.rates import Rate
from cdrrating.rating import BatchResult, Rater

EXIT_OK = 0
EXIT_REJECTED_ROWS = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3
EXIT_UNAVAILABLE = 4


class InputError(Exception):
    """An input the command cannot use at all; reported on stderr with exit code 3."""


# -- shared helpers ------------------------------------------------------------------------


def _open_text(path: str) -> TextIO:
    if path == "-":
        return sys.stdin
    try:
        # utf-8-sig: spreadsheets often write a BOM, which would otherwise glue itself
        # to the first column name.
        return Path(path).open(encoding="utf-8-sig", newline="")
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror or error}") from None


def _csv_rows(path: str) -> Iterator[dict[str, str]]:
    handle = _open_text(path)
    try:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise InputError(f"{path}: empty file, expected a header row")
        yield from reader
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except csv.Error as error:
        raise InputError(f"{path}: malformed CSV: {error}") from None
    finally:
        if handle is not sys.stdin:
            handle.close()


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise argparse.ArgumentTypeError(
            f"unknown time zone {name!r} (an IANA name such as UTC or Europe/Berlin)"
        ) from None


def load_rate_deck(
    path: str,
    *,
    decimal_separator: str = ".",
    dayfirst: bool = False,
    default_tz: tzinfo | None = None,
) -> list[Rate]:
    """Every rate of a CSV deck; an :class:`InputError` listing every bad row otherwise.

    A deck with bad rows is refused whole: rating against part of a deck would price
    calls with the wrong (shorter-prefix) rates without saying so.
    """
    rates: list[Rate] = []
    problems: list[str] = []
    extra: dict[str, Any] = {} if default_tz is None else {"default_tz": default_tz}
    for line, row in enumerate(_csv_rows(path), start=2):
        try:
            rates.append(
                Rate.parse(row, decimal_separator=decimal_separator, dayfirst=dayfirst, **extra)
            )
        except ValidationError as error:
            problems.append(f"{path}:{line}: {error}")
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise InputError(f"the rate deck has {len(problems)} invalid row(s):\n  {shown}{more}")
    if not rates:
        raise InputError(f"{path}: the rate deck has no rates")
    return rates


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _write_table(out: TextIO, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    numeric = [i > 0 for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(cells, widths, numeric, strict=True)
        ).rstrip()

    out.write(line(header) + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in rows:
        out.write(line(row) + "\n")


# -- rate ----------------------------------------------------------------------------------


def summarise(result: BatchResult) -> list[dict[str, Any]]:
    """Per-destination rows of a batch: calls, answered, billed minutes, cost; costliest first."""
    rows: list[dict[str, Any]] = []
    for (currency, destination), total in result.by_destination.items():
        rows.append(
            {
                "destination": destination or "(no rate)",
                "currency": currency,
                "calls": total.calls,
                "answered": total.answered,
                "billed_minutes": f"{total.billed_seconds / 60:.2f}",
                "cost_micros": total.cost_micros,
                "cost": format_micros(total.cost_micros),
            }
        )
    rows.sort(key=lambda r: (-r["cost_micros"], r["destination"]))
    return rows


def _print_summary(result: BatchResult, fmt: str, out: TextIO) -> None:
    rows = summarise(result)
    if fmt == "json":
        json.dump(
            {
                "destinations": rows,
                "status_counts": dict(sorted(result.by_status.items())),
                "reason_counts": dict(sorted(result.by_reason.items())),
                "totals_micros": dict(sorted(result.totals.items())),
                "rejected": len(result.errors),
            },
            out,
            indent=2,
        )
        out.write("\n")
        return
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["destination"])
        writer.writeheader()
        writer.writerows(rows)
        return
    _write_table(
        out,
        ["Destination", "Calls", "Answered", "Billed min", "Cost"],
        [
            [
                _clip(r["destination"], 40),
                str(r["calls"]),
                str(r["answered"]),
                r["billed_minutes"],
                format_micros(r["cost_micros"], r["currency"] or None, places=6),
            ]
            for r in rows
        ],
    )
    out.write("\n")
    _write_table(
        out, ["Status", "Calls"], [[k, str(v)] for k, v in sorted(result.by_status.items())]
    )
    if result.by_reason:
        out.write("\n")
        _write_table(
            out,
            ["Unrated reason", "Calls"],
            [[k, str(v)] for k, v in sorted(result.by_reason.items())],
        )
    totals = ", ".join(format_micros(v, k) for k, v in sorted(result.totals.items()))
    out.write(f"\nTotal: {totals or '0'}; {len(result)} records, {len(result.errors)} rejected\n")


def _plan_from_args(args: argparse.Namespace) -> RatePlan:
    rates = load_rate_deck(
        args.rates,
        decimal_separator="," if args.decimal_comma else ".",
        dayfirst=args.dayfirst,
        default_tz=args.default_tz,
    )
    try:
        return RatePlan(
            rates,
            currency=args.currency,
            rounding=args.rounding,
            quantum_micros=args.quantum_micros,
            access_prefixes=tuple(args.access_prefix or ("00",)),
            name=Path(args.rates).stem,
        )
    except ValidationError as error:
        raise InputError(f"{args.rates}: {error}") from None


def rate_command(
    args: argparse.Namespace, *, stdout: TextIO, stderr: TextIO
) -> tuple[int, BatchResult]:
    """Rate a CDR CSV against a deck and print the summary; returns the exit code and the
    batch, so that storage-aware callers can keep what was rated."""
    plan = _plan_from_args(args)
    result = Rater(default=plan).rate_many(
        _csv_rows(args.cdrs), progress=False if args.quiet else None, default_tz=args.default_tz
    )
    for err in result.errors:
        # position counts records from 0; +2 makes it the file's line (header is line 1).
        stderr.write(f"{args.cdrs}:{err.position + 2}: rejected: {err.error}\n")
    _print_summary(result, args.format, stdout)
    return (EXIT_REJECTED_ROWS if result.errors else EXIT_OK), result


def _add_rate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "rate",
        help="rate a CSV of CDRs against a CSV rate deck and print a per-destination summary",
        description="Rate a CSV of CDRs against a CSV rate deck. Columns are matched by name "
        "(see docs/cli.md); rejected rows are reported on stderr with their line numbers.",
    )
    p.add_argument("cdrs", help="CSV file of CDRs ('-' for stdin)")
    p.add_argument("--rates", required=True, help="CSV rate deck")
    p.add_argument("--currency", required=True, help="ISO 4217 currency of the deck, e.g. EUR")
    p.add_argument("--rounding", default="up", choices=[m.value for m in Rounding])
    p.add_argument(
        "--quantum-micros",
        type=int,
        default=1,
        help="round costs to a multiple of this (10000 = cents)",
    )
    p.add_argument(
        "--access-prefix",
        action="append",
        help="international access prefix to strip (default 00; repeatable)",
    )
    p.add_argument(
        "--decimal-comma",
        action="store_true",
        help="prices in the deck use ',' as the decimal separator",
    )
    p.add_argument(
        "--dayfirst", action="store_true", help="dates in the deck are day first (23/09/2026)"
    )
    p.add_argument(
        "--default-tz",
        type=_zone,
        default=ZoneInfo("UTC"),
        help="time zone of naive timestamps (default UTC)",
    )
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_db_option(p)
    p.add_argument("--no-store", action="store_true", help="only print the summary; store nothing")
    p.set_defaults(handler=_rate_and_store)


# -- storage: rate --db, query, prune ------------------------------------------------------

#: The database ``rate`` writes to and ``query``/``prune`` read, unless ``--db`` or
#: ``$CDRRATING_DB`` names another (the same file as ``cdrrating.sql.DEFAULT_URL``).
DEFAULT_DB = "sqlite:///cdrrating.sqlite3"


class StorageUnavailable(Exception):
    """Storage cannot be used here; reported on stderr with exit code 4."""


def _add_db_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        metavar="URL",
        default=os.environ.get("CDRRATING_DB", DEFAULT_DB),
        help="database URL (SQLAlchemy form, e.g. postgresql+psycopg://user@host/db) or a "
        f"SQLite file path; default $CDRRATING_DB or {DEFAULT_DB}",
    )


def _db_url(value: str) -> str:
    return value if "://" in value else f"sqlite:///{value}"


@contextlib.contextmanager
def _open_cdrs(db: str) -> Iterator[Any]:
    """The CDR repository at ``db``, its tables created if missing."""
    url = _db_url(db)
    try:
        from cdrrating.sql import SQLCDRRepository  # noqa: PLC0415 - the optional [sql] extra
    except ImportError as error:
        raise StorageUnavailable(f"{error} (or pass --no-store to rate without storing)") from None
    # Cursors must survive between invocations, so the CLI cannot use a random key;
    # whoever runs it can read the database anyway, so a key derived from the URL is
    # enough unless $CDRRATING_CURSOR_KEY names a secret.
    key = (
        os.environ.get("CDRRATING_CURSOR_KEY")
        or hashlib.sha256(b"cdrrating-cli\0" + url.encode()).hexdigest()
    )
    try:
        repo = SQLCDRRepository(url, create=True, cursor_key=key)
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


def _rate_and_store(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.no_store:
        return rate_command(args, stdout=out, stderr=err)[0]
    # The database is opened first: a missing extra or an unreachable server is reported
    # before minutes of rating, not after.
    with _open_cdrs(args.db) as repo:
        code, result = rate_command(args, stdout=out, stderr=err)
        # Upsert: rating the same file again re-rates its calls instead of failing.
        stored = repo.upsert_many(charge for charge in result if charge is not None)
        err.write(f"stored {stored} rated CDRs in {_db_url(args.db)}\n")
    return code


_RECORD_FIELDS = (
    "call_id", "started_at", "answered_at", "ended_at", "caller_number",
    "destination_number", "direction", "disposition", "billsec", "duration", "tenant",
    "extension", "currency", "cost_micros", "status", "reason", "hangup_cause", "queue_id",
    "agent_id", "in_progress", "created_at", "updated_at", "extra",
)  # fmt: skip


def _query_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from cdrrating.repository import Query  # noqa: PLC0415 - keeps `cdrrating rate` startup lean

    try:
        where = json.loads(args.where) if args.where is not None else None
    except json.JSONDecodeError as error:
        err.write(f"cdrrating query: error: --where is not JSON: {error}\n")
        return EXIT_USAGE
    with _open_cdrs(args.db) as repo:
        try:
            query = Query(
                tenant=args.tenant,
                search=args.search,
                since=args.since,
                until=args.until,
                where=where,
                sort=args.sort,
                order=args.order,
                limit=args.limit,
                cursor=args.cursor,
                fields=args.fields,
                include_in_progress=not args.completed_only,
            )
            page = repo.query(query)
        except ValidationError as error:
            err.write(f"cdrrating query: error: {error}\n")
            return EXIT_USAGE
    records = page.to_records()
    if args.format == "json":
        json.dump(
            {
                "items": records,
                "next_cursor": page.next_cursor,
                "previous_cursor": page.previous_cursor,
            },
            out,
            indent=2,
            ensure_ascii=False,
        )
        out.write("\n")
        return EXIT_OK
    if args.format == "jsonl":
        for record in records:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        fields = list(query.fields or _RECORD_FIELDS)
        writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for record in records:
            if "extra" in record:
                record["extra"] = json.dumps(record["extra"], ensure_ascii=False)
            writer.writerow(record)
    # stdout stays pure CSV/JSON Lines; the cursors are for the next invocation.
    if page.next_cursor:
        err.write(f"next cursor: {page.next_cursor}\n")
    if page.previous_cursor:
        err.write(f"previous cursor: {page.previous_cursor}\n")
    return EXIT_OK


def _add_query(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "query",
        help="list stored CDRs, newest first, as JSON or CSV",
        description="List stored CDRs (newest first) with search, time range and paging. "
        "Pass the printed cursor back with --cursor for the next page.",
    )
    _add_db_option(p)
    p.add_argument("--search", help="case-insensitive text in numbers, direction, disposition")
    p.add_argument("--since", help="started at or after: ISO 8601 or epoch milliseconds")
    p.add_argument("--until", help="started before: ISO 8601 or epoch milliseconds")
    p.add_argument("--tenant", help="only this tenant's calls")
    p.add_argument(
        "--where", help='a MongoDB-style filter as JSON, e.g. \'{"billsec": {"$gt": 60}}\''
    )
    p.add_argument("--sort", help="field to sort by (default started_at)")
    p.add_argument("--order", choices=["desc", "asc"], default="desc")
    p.add_argument("--limit", type=int, default=1000, help="page size (default 1000, max 10000)")
    p.add_argument("--cursor", help="a cursor printed by the previous page")
    p.add_argument("--fields", help="comma-separated fields to output")
    p.add_argument("--completed-only", action="store_true", help="leave out calls in progress")
    p.add_argument("--format", choices=["json", "jsonl", "csv"], default="json")
    p.set_defaults(handler=_query_command)


_AGE = re.compile(r"\s*(\d+)\s*([smhdw])\s*")
_AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _age(text: str) -> timedelta:
    match = _AGE.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"invalid age {text!r}: a number and a unit s, m, h, d or w, e.g. 30d"
        )
    return timedelta(**{_AGE_UNITS[match.group(2)]: int(match.group(1))})


def _prune_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.archive is None and not args.no_archive:
        err.write(
            "cdrrating prune: error: give --archive FILE (JSON Lines) to keep what is "
            "deleted, or --no-archive to delete without a copy\n"
        )
        return EXIT_USAGE
    cutoff = datetime.now(UTC) - args.older_than
    with contextlib.ExitStack() as stack:
        handle: TextIO | None = None
        if args.archive == "-":
            handle = out
        elif args.archive is not None:
            try:
                # Opened before anything is deleted: an unwritable archive deletes nothing.
                handle = stack.enter_context(Path(args.archive).open("a", encoding="utf-8"))
            except OSError as error:
                raise InputError(
                    f"cannot write {args.archive}: {error.strerror or error}"
                ) from None
        deleted = _prune_into(args, cutoff, handle, out)
    where = f"; archived to {args.archive}" if args.archive not in (None, "-") else ""
    err.write(f"pruned {deleted} CDRs that started before {cutoff.isoformat()}{where}\n")
    return EXIT_OK


def _prune_into(
    args: argparse.Namespace, cutoff: datetime, handle: TextIO | None, out: TextIO
) -> int:
    def archive(rows: Sequence[Any]) -> None:
        assert handle is not None
        for row in rows:
            handle.write(json.dumps(row.to_mapping(), ensure_ascii=False) + "\n")
        handle.flush()
        if handle is not out:
            # On disk before the rows are deleted: a crash must not lose both copies.
            os.fsync(handle.fileno())

    try:
        with _open_cdrs(args.db) as repo:
            deleted: int = repo.prune(
                cutoff,
                archive=archive if handle is not None else None,
                tenant=args.tenant,
                batch_size=args.batch_size,
            )
    except OSError as error:
        raise InputError(f"cannot write {args.archive}: {error.strerror or error}") from None
    return deleted


def _add_prune(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "prune",
        help="delete stored CDRs older than an age, archiving them first",
        description="Delete CDRs that started more than --older-than ago. Each batch is "
        "appended to the --archive file (JSON Lines, flushed to disk) before it is "
        "deleted; if writing fails, that batch and later ones are kept.",
    )
    _add_db_option(p)
    p.add_argument("--older-than", type=_age, required=True, help="an age: 30d, 12h, 2w, ...")
    p.add_argument("--archive", metavar="FILE", help="JSON Lines file to append to ('-': stdout)")
    p.add_argument("--no-archive", action="store_true", help="delete without keeping a copy")
    p.add_argument("--tenant", help="only this tenant's calls")
    p.add_argument("--batch-size", type=int, default=10_000, help=argparse.SUPPRESS)
    p.set_defaults(handler=_prune_command)


# -- entry point ---------------------------------------------------------------------------

_COMMANDS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _add_rate,
    _add_query,
    _add_prune,
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
    except InputError as error:
        err.write(f"cdrrating: error: {error}\n")
        return EXIT_BAD_INPUT
    except StorageUnavailable as error:
        err.write(f"cdrrating: error: {error}\n")
        return EXIT_UNAVAILABLE
    except BrokenPipeError:  # `cdrrating ... | head` closed our stdout: not an error
        return EXIT_OK
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
