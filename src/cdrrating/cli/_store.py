"""The commands over the database: ``import-rates``, ``import-cdrs``, ``query``,
``export``, ``prune`` (private)."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import attrs

from cdrrating import repository
from cdrrating._progress import Progress
from cdrrating._storage import entities as storage_entities
from cdrrating.errors import Conflict, ValidationError
from cdrrating.formats import ParquetArchive
from cdrrating.plan import RatePlan
from cdrrating.rates import Rate
from cdrrating.rating import rate

from ._common import (
    EXIT_OK,
    EXIT_REJECTED_ROWS,
    EXIT_USAGE,
    InputError,
    RejectLog,
    SubParsers,
    UsageError,
    add_cdr_input_options,
    add_db_option,
    add_deck_options,
    add_format_option,
    add_text_options,
    cdr_reader,
    currency_code,
    emit,
    first_of_each_call,
    need_pyarrow,
    open_repository,
    read_deck,
    reject_stream,
    shown_db,
)
from ._rate import estimated_total

#: Every field of a stored CDR, in the storage layer's order (its own list, so that a
#: field it adds is exported too).
_RECORD_FIELDS = tuple(storage_entities.CDR_ENTITY.fields)

_TABLE_FIELDS = (
    "call_id", "started_at", "destination_number", "direction", "disposition", "billsec",
    "tenant", "cost_micros", "currency", "status",
)  # fmt: skip


# -- import-rates --------------------------------------------------------------------------


def content_id(rate_: Rate) -> str:
    """An id that is the same every time the same rate of the same tenant is imported,
    so that importing a deck twice is refused as a conflict instead of doubling it."""
    digest = hashlib.sha256(repr(rate_).encode()).hexdigest()[:20]
    return f"{rate_.prefix or 'any'}-{digest}"


def _import_rates(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with open_repository(args.db, "rates") as repo:
        rates, _ = read_deck(args.rates, args)
        rates = [attrs.evolve(r, tenant=args.tenant) for r in rates]
        rates = [r if r.id is not None else attrs.evolve(r, id=content_id(r)) for r in rates]
        # The deck must make a valid plan together with what the tenant has already:
        # two equally good rates for one call would make every later `rate` fail.
        existing = list(repo.load_plan(args.tenant, currency="XXX"))
        again = {r.id for r in existing} & {r.id for r in rates}
        if again:
            raise InputError(
                f"{args.rates}: {len(again)} of its {len(rates)} rates are already stored for "
                f"{tenant_words(args.tenant)} (same content, e.g. id {min(again)!r}): was this "
                "deck imported before? Nothing was stored"
            )
        try:
            RatePlan([*existing, *rates], currency="XXX")
        except ValidationError as error:
            raise InputError(
                f"{args.rates}: with the {len(existing)} rates already stored for "
                f"{tenant_words(args.tenant)}, the deck would make an invalid plan: {error}"
            ) from None
        try:
            added = repo.add_many(rates)  # one transaction: all of the deck or none of it
        except Conflict as error:
            raise InputError(
                f"{args.rates}: {error} (was this deck imported before? nothing was stored)"
            ) from None
    err.write(f"imported {added} rates for {tenant_words(args.tenant)} into {shown_db(args.db)}\n")
    emit([{"imported": added, "tenant": args.tenant}], args.format, out, csv_raw=args.csv_raw)
    return EXIT_OK


def tenant_words(tenant: str | None) -> str:
    return f"tenant {tenant!r}" if tenant is not None else "no tenant (the system deck)"


def add_import_rates(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "import-rates",
        help="store a rate deck in the database, all of it or nothing",
        description="Read a rate deck (CSV or a vendor rate notice) and store its rates for "
        "a tenant (default: none, the system deck). A deck with any unreadable row, or one "
        "that would conflict with the rates already stored, is refused whole. Importing "
        "the same deck twice is refused too: each rate gets an id made from its content.",
    )
    p.add_argument("rates", help="the rate deck ('-' for stdin)")
    p.add_argument("--tenant", help="the tenant whose deck this is (default: none)")
    add_deck_options(p)
    add_text_options(p, "dates in the deck", cdrs=False, deck=True)
    add_format_option(p, "table")
    add_db_option(p)
    p.set_defaults(handler=_import_rates)


# -- import-cdrs ---------------------------------------------------------------------------


def _import_cdrs(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.rate and args.currency is None:
        raise UsageError("--rate needs --currency: the stored rates do not record one")
    with open_repository(args.db) as repo, reject_stream(args.reject_file) as rejects:
        plan: RatePlan | None = None
        if args.rate:
            with open_repository(args.db, "rates") as rates:
                plan = rates.load_plan(args.rate_tenant, currency=args.currency)
            if not len(plan):
                raise InputError(
                    f"{shown_db(args.db)} holds no rates for {tenant_words(args.rate_tenant)}"
                )
        reader = cdr_reader(args.cdrs, args, rejects)
        log = RejectLog(err, args.max_rejects, rejects)
        progress = False if args.quiet else None
        bar = Progress(progress, estimated_total(args, progress), desc="importing")

        def records() -> Iterator[Any]:
            for _, cdr in first_of_each_call(reader, log, bar.step, tenant=args.tenant):
                if args.tenant is not None and cdr.tenant is None:
                    cdr = attrs.evolve(cdr, tenant=args.tenant)  # noqa: PLW2901
                yield rate(cdr, plan) if plan is not None else cdr

        try:
            # One transaction: a failure stores none of the file, never half of it.
            stored = repo.upsert_many(records())
        finally:
            bar.close()
        log.close()
    what = "rated CDRs" if plan is not None else "CDRs"
    err.write(f"stored {stored} {what} in {shown_db(args.db)}; {log.count} rejected\n")
    emit([{"stored": stored, "rejected": log.count}], args.format, out, csv_raw=args.csv_raw)
    return EXIT_REJECTED_ROWS if log.count else EXIT_OK


def add_import_cdrs(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "import-cdrs",
        help="store a file of CDRs in the database (optionally rated with stored rates)",
        description="Read CDRs in any supported format and store them (a call already "
        "stored is replaced: re-importing a file is safe). Rows that cannot be read are "
        "reported on stderr with their line numbers, and the rest are stored. With --rate, "
        "each call is rated first against the rates stored by import-rates.",
    )
    p.add_argument("cdrs", help="the CDR file ('-' for stdin)")
    add_cdr_input_options(p)
    p.add_argument("--tenant", help="tenant of the calls whose record names none")
    p.add_argument("--rate", action="store_true", help="rate each call with the stored rates")
    p.add_argument("--rate-tenant", help="whose stored deck --rate uses (default: none)")
    p.add_argument(
        "--currency", type=currency_code, help="currency of the stored deck (needed with --rate)"
    )
    add_format_option(p, "table")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_db_option(p)
    p.set_defaults(handler=_import_cdrs)


# -- query and export ----------------------------------------------------------------------


def _query_from(args: argparse.Namespace, **overrides: Any) -> Any:
    try:
        where = json.loads(args.where) if args.where is not None else None
    except json.JSONDecodeError as error:
        raise UsageError(f"--where is not JSON: {error}") from None
    options: dict[str, Any] = {
        "tenant": args.tenant,
        "search": args.search,
        "since": args.since,
        "until": args.until,
        "where": where,
        "sort": args.sort,
        "order": args.order,
        "fields": args.fields,
        "include_in_progress": not args.completed_only,
        **overrides,
    }
    try:
        return repository.Query(**options)
    except ValidationError as error:
        if error.field in ("since", "until"):
            # The option's words, not the library's (tzinfo, naive datetimes).
            raise UsageError(
                f"--{error.field}: got {error.value!r}, expected an instant with its UTC "
                "offset, such as 2026-10-01T00:00:00Z, or epoch milliseconds"
            ) from None
        raise UsageError(str(error)) from None


def _columns(args: argparse.Namespace, query: Any) -> Sequence[str]:
    if query.fields:
        return list(query.fields)
    return _TABLE_FIELDS if args.format == "table" else _RECORD_FIELDS


def _query_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    query = _query_from(args, limit=args.limit, cursor=args.cursor)
    with open_repository(args.db, must_exist=True) as repo:
        try:
            page = repo.query(query)
        except ValidationError as error:
            raise UsageError(str(error)) from None
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
    emit(records, args.format, out, columns=_columns(args, query), csv_raw=args.csv_raw)
    # stdout stays pure data; the cursors are for the next invocation.
    if page.next_cursor:
        err.write(f"next cursor: {page.next_cursor}\n")
    if page.previous_cursor:
        err.write(f"previous cursor: {page.previous_cursor}\n")
    return EXIT_OK


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--search", help="case-insensitive text in numbers, direction, disposition")
    p.add_argument("--since", help="started at or after: ISO 8601 or epoch milliseconds")
    p.add_argument("--until", help="started before: ISO 8601 or epoch milliseconds")
    p.add_argument("--tenant", help="only this tenant's calls")
    p.add_argument(
        "--where", help='a MongoDB-style filter as JSON, e.g. \'{"billsec": {"$gt": 60}}\''
    )
    p.add_argument("--sort", help="field to sort by (default started_at)")
    p.add_argument("--fields", help="comma-separated fields to output")
    p.add_argument("--completed-only", action="store_true", help="leave out calls in progress")


def add_query(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "query",
        help="list one page of stored CDRs, newest first",
        description="List stored CDRs (newest first) with search, time range and paging. "
        "Pass the printed cursor back with --cursor for the next page; `export` writes "
        "every page.",
    )
    add_db_option(p)
    _add_filters(p)
    p.add_argument("--order", choices=["desc", "asc"], default="desc")
    p.add_argument("--limit", type=int, default=1000, help="page size (default 1000, max 10000)")
    p.add_argument("--cursor", help="a cursor printed by the previous page")
    add_format_option(p, "json")
    p.set_defaults(handler=_query_command)


def _export_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    query = _query_from(args, limit=repository.MAX_LIMIT)
    with open_repository(args.db, must_exist=True) as repo, contextlib.ExitStack() as stack:
        target = out
        if args.output not in (None, "-"):
            try:
                target = stack.enter_context(
                    Path(args.output).open("w", encoding="utf-8", newline="")
                )
            except OSError as error:
                raise InputError(f"cannot write {args.output}: {error.strerror or error}") from None
        bar = Progress(False if args.quiet else None, None)

        def records() -> Iterator[dict[str, Any]]:
            # Keyset pages: memory stays at one page however large the table.
            page_query = query
            while True:
                page = repo.query(page_query)
                for record in page.to_records():
                    bar.step()
                    yield record
                if page.next_cursor is None:
                    return
                page_query = page_query.after(page.next_cursor)

        try:
            count = emit(
                records(),
                args.format,
                target,
                columns=_columns(args, query),
                csv_raw=args.csv_raw,
            )
        except ValidationError as error:
            raise UsageError(str(error)) from None
        finally:
            bar.close()
    where = f" to {args.output}" if args.output not in (None, "-") else ""
    err.write(f"exported {count} CDRs{where}\n")
    return EXIT_OK


def add_export(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "export",
        help="write every stored CDR that matches, as CSV, JSON Lines, JSON or a table",
        description="Write all stored CDRs matching the filters (oldest first unless "
        "--order desc), page after page with constant memory. CSV follows RFC 4180 "
        "(CRLF, quoting); a cell starting with = + - @ gets a ' first so that a "
        "spreadsheet shows it instead of running it (--csv-raw: as stored). "
        "JSON is {ok, count, rows}.",
    )
    add_db_option(p)
    _add_filters(p)
    p.add_argument("--order", choices=["asc", "desc"], default="asc")
    add_format_option(p, "csv")
    p.add_argument("-o", "--output", metavar="FILE", help="write there instead of stdout")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=_export_command)


# -- prune ---------------------------------------------------------------------------------

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
    given = [args.archive is not None, args.archive_parquet is not None, args.no_archive]
    if sum(given) != 1:
        err.write(
            "cdrrating prune: error: give one of --archive FILE (JSON Lines) or "
            "--archive-parquet DIR to keep what is deleted, or --no-archive to delete "
            "without a copy\n"
        )
        return EXIT_USAGE
    if args.archive_parquet is not None:
        return _prune_to_parquet(args, err)
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
        with open_repository(args.db, must_exist=True) as repo:
            deleted: int = repo.prune(
                cutoff,
                archive=archive if handle is not None else None,
                tenant=args.tenant,
                batch_size=args.batch_size,
            )
    except OSError as error:
        raise InputError(f"cannot write {args.archive}: {error.strerror or error}") from None
    return deleted


def _prune_to_parquet(args: argparse.Namespace, err: TextIO) -> int:
    directory = args.archive_parquet
    need_pyarrow(directory)
    if Path(directory).exists() and not Path(directory).is_dir():
        raise InputError(f"--archive-parquet {directory}: not a directory")
    archive = ParquetArchive(directory)
    cutoff = datetime.now(UTC) - args.older_than
    try:
        with open_repository(args.db, must_exist=True) as repo:
            deleted: int = repo.prune(
                cutoff, archive=archive, tenant=args.tenant, batch_size=args.batch_size
            )
    except OSError as error:
        # Raised while archiving, so nothing was deleted.
        raise InputError(
            f"cannot write {error.filename or directory}: {error.strerror or error}; "
            "nothing was deleted"
        ) from None
    err.write(
        f"pruned {deleted} CDRs that started before {cutoff.isoformat()}; archived to the "
        f"Parquet dataset {directory} (partitioned by day=YYYY-MM-DD, the UTC day each "
        "call started)\n"
    )
    return EXIT_OK


def add_prune(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "prune",
        help="delete stored CDRs older than an age, archiving them first",
        description="Delete CDRs that started more than --older-than ago. Every batch is "
        "archived first, and nothing is deleted unless all of them were: appended to the "
        "--archive file (JSON Lines, flushed to disk), or written into the "
        "--archive-parquet dataset (one directory day=YYYY-MM-DD per UTC day the calls "
        "started; a call archived again replaces its row).",
    )
    add_db_option(p)
    p.add_argument("--older-than", type=_age, required=True, help="an age: 30d, 12h, 2w, ...")
    p.add_argument("--archive", metavar="FILE", help="JSON Lines file to append to ('-': stdout)")
    p.add_argument(
        "--archive-parquet",
        metavar="DIR",
        help="Parquet dataset to write into, partitioned by day (needs pyarrow)",
    )
    p.add_argument("--no-archive", action="store_true", help="delete without keeping a copy")
    p.add_argument("--tenant", help="only this tenant's calls")
    p.add_argument("--batch-size", type=int, default=10_000, help=argparse.SUPPRESS)
    p.set_defaults(handler=_prune_command)
