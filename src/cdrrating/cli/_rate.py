"""``cdrrating rate`` and ``cdrrating check-plan`` (private)."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from cdrrating._progress import Progress, ProgressArg, shows_bar
from cdrrating._validate import parse_timestamp
from cdrrating.errors import ValidationError
from cdrrating.formats import CHARGE_COLUMNS, Reader, charge_record, write_records
from cdrrating.formats.parquet import (
    DEFAULT_ROW_GROUP_SIZE,
    is_parquet_path,
    require_pyarrow,
    write_charges_parquet,
)
from cdrrating.money import Rounding, format_micros
from cdrrating.plan import RatePlan
from cdrrating.rates import RateStatus
from cdrrating.rating import BatchResult, Charge, DestinationTotal, Rater

from ._common import (
    EXIT_OK,
    EXIT_REJECTED_ROWS,
    InputError,
    RejectLog,
    SubParsers,
    UsageError,
    add_cdr_input_options,
    add_db_option,
    add_deck_options,
    add_format_option,
    add_text_options,
    cdr_format,
    cdr_reader,
    clip,
    count,
    currency_code,
    emit,
    first_of_each_call,
    need_pyarrow,
    open_repository,
    read_deck,
    reject_stream,
    shown_db,
    user_words,
    write_table,
)

# -- the plan --------------------------------------------------------------------------------


def add_plan_options(p: argparse.ArgumentParser, *, currency_required: bool = True) -> None:
    p.add_argument(
        "--currency",
        type=currency_code,
        help="ISO 4217 currency of the deck, e.g. EUR (any case)"
        + (" (default: the one a rate notice names)" if currency_required else ""),
    )
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
    p.add_argument("--timezone", default="UTC", help="the plan's time zone, for schedules")


def plan_from_args(
    args: argparse.Namespace, *, fallback_currency: str | None = None
) -> tuple[RatePlan, int]:
    """The plan of ``--rates`` and the number of its rates."""
    rates, reader = read_deck(args.rates, args)
    currency = args.currency or getattr(reader, "currency", None) or fallback_currency
    if currency is None:
        raise UsageError(
            "give --currency: the deck does not name its currency, and a billing tool "
            "does not guess money"
        )
    try:
        plan = RatePlan(
            rates,
            currency=currency,
            rounding=args.rounding,
            quantum_micros=args.quantum_micros,
            access_prefixes=tuple(args.access_prefix or ("00",)),
            timezone=args.timezone,
            name=Path(args.rates).stem,
        )
    except ValidationError as error:
        if error.field == "timezone":
            raise UsageError(f"--timezone: {error.value!r} is not an IANA time zone") from None
        raise InputError(f"{args.rates}: {user_words(str(error))}") from None
    return plan, len(rates)


# -- rate ----------------------------------------------------------------------------------

#: CDRs rated per call of ``Rater.rate_many``: its counts are merged and its charges
#: passed on, so that memory holds one chunk, not the input.
_CHUNK = 2000

#: Formats with one record a line, and how many header lines they start with: for these
#: the bar's total is the file's line count (an estimate: a quoted field may span lines).
_LINE_FORMATS = {"csv": 1, "asterisk": 0, "freeswitch-csv": 0}


class RunTotals:
    """Counts and totals of a rating run, merged from the batches it was rated in; the
    attributes are those of :class:`~cdrrating.rating.BatchResult`, for the rated calls."""

    def __init__(self) -> None:
        self.records = 0
        self.by_status: Counter[str] = Counter()
        self.by_reason: Counter[str] = Counter()
        self.totals: dict[str, int] = {}
        self.by_destination: dict[tuple[str, str], DestinationTotal] = {}

    def merge(self, part: BatchResult) -> None:
        self.records += len(part) - len(part.errors)
        self.by_status.update(part.by_status)
        self.by_reason.update(part.by_reason)
        for currency, micros in part.totals.items():
            self.totals[currency] = self.totals.get(currency, 0) + micros
        for key, add in part.by_destination.items():
            old = self.by_destination.get(key) or DestinationTotal()
            self.by_destination[key] = DestinationTotal(
                old.calls + add.calls,
                old.answered + add.answered,
                old.billed_seconds + add.billed_seconds,
                old.cost_micros + add.cost_micros,
            )


def summarise(result: BatchResult | RunTotals) -> list[dict[str, Any]]:
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


def _print_summary(
    totals: RunTotals, rejected: int, stored: int | None, args: argparse.Namespace, out: TextIO
) -> None:
    rows = summarise(totals)
    fmt = args.format
    if fmt == "json":
        json.dump(
            {
                "destinations": rows,
                "status_counts": dict(sorted(totals.by_status.items())),
                "reason_counts": dict(sorted(totals.by_reason.items())),
                "totals_micros": dict(sorted(totals.totals.items())),
                "records": totals.records,
                "rejected": rejected,
                "stored": stored,
            },
            out,
            indent=2,
        )
        out.write("\n")
        return
    if fmt in ("csv", "jsonl"):
        columns = list(rows[0]) if rows else ["destination"]
        emit(rows, fmt, out, columns=columns, csv_raw=args.csv_raw)
        return
    write_table(
        out,
        ["Destination", "Calls", "Answered", "Billed min", "Cost"],
        [
            [
                clip(r["destination"], 40),
                str(r["calls"]),
                str(r["answered"]),
                r["billed_minutes"],
                format_micros(r["cost_micros"], r["currency"] or None, places=6),
            ]
            for r in rows
        ],
    )
    out.write("\n")
    write_table(
        out, ["Status", "Calls"], [[k, str(v)] for k, v in sorted(totals.by_status.items())]
    )
    if totals.by_reason:
        out.write("\n")
        write_table(
            out,
            ["Unrated reason", "Calls"],
            [[k, str(v)] for k, v in sorted(totals.by_reason.items())],
        )
    money = ", ".join(format_micros(v, k) for k, v in sorted(totals.totals.items()))
    out.write(f"\nTotal: {money or '0'}; {totals.records} records, {rejected} rejected\n")


_CHARGE_TABLE = (
    "call_id",
    "started_at",
    "destination_number",
    "billsec",
    "billed_seconds",
    "cost",
    "currency",
    "status",
    "reason",
    "prefix",
    "rate_destination",
)


def estimated_total(args: argparse.Namespace, progress: ProgressArg) -> int | None:
    """The number of records in the CDR file, when a bar will show it and the format
    tells it cheaply: a Parquet file's footer counts its rows; for a format with one
    record a line, counting lines costs a fast pass over the file."""
    fmt = cdr_format(args)
    if args.cdrs == "-" or not shows_bar(progress):
        return None
    if fmt == "parquet":
        return _parquet_rows(args.cdrs)
    header = _LINE_FORMATS.get(fmt)
    if header is None:
        return None
    try:
        with Path(args.cdrs).open("rb") as handle:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    except OSError:
        return None  # the reader reports it, with the words it uses for every input
    return max(lines - header, 0)


def _parquet_rows(path: str) -> int | None:
    try:
        _, pq = require_pyarrow()
        rows: int = pq.ParquetFile(path).metadata.num_rows
    except Exception:  # only a bar's total: the reader reports a bad file itself
        return None
    return rows


def _rated(
    reader: Reader[Any], plan: RatePlan, totals: RunTotals, log: RejectLog, bar: Progress
) -> Iterator[Charge]:
    """The charges of every record ``reader`` reads, in input order, as a stream.

    Every record read is either charged, or rejected in ``log``: a record the reader
    could not read (with its line), a call_id read before in this input (the first
    record of a call is kept, so that the totals printed are those stored), or a record
    the rater refused.
    """
    rater = Rater(default=plan)
    records = first_of_each_call(reader, log, bar.step)
    try:
        while chunk := list(itertools.islice(records, _CHUNK)):
            part = rater.rate_many([cdr for _, cdr in chunk], progress=False)
            totals.merge(part)
            errors = {e.position: e for e in part.errors}
            for i, ((where, cdr), charge) in enumerate(zip(chunk, part.charges, strict=True)):
                if charge is not None:
                    yield charge
                else:
                    log.add_own(where, errors[i].field or "", errors[i].error, cdr.call_id)
    finally:
        bar.close()


def _store(repo: Any, charges: list[Charge], progress: ProgressArg) -> int:
    bar = Progress(progress, len(charges), desc="storing")

    def counted() -> Iterator[Charge]:
        for charge in charges:
            bar.step()
            yield charge

    try:
        # One transaction; upsert: rating the same file again re-rates its calls.
        stored: int = repo.upsert_many(counted())
    finally:
        bar.close()
    return stored


def _print_charges(charges: Iterable[Charge], args: argparse.Namespace, out: TextIO) -> None:
    columns = _CHARGE_TABLE if args.format == "table" else CHARGE_COLUMNS
    emit(
        (charge_record(c) for c in charges),
        args.format,
        out,
        columns=columns,
        csv_raw=args.csv_raw,
    )


#: ``--output-format`` choices; without one the file name tells (``*.parquet``/``*.pq``,
#: ``*.jsonl``, ``*.json``), else csv.
CHARGE_FILE_FORMATS = ("csv", "jsonl", "json", "parquet")


def output_format(args: argparse.Namespace) -> str:
    """The format of the ``--output`` file."""
    given: str | None = args.output_format
    if given is not None:
        return given
    name = args.output.lower()
    if is_parquet_path(name):
        return "parquet"
    if name.endswith(".jsonl"):
        return "jsonl"
    return "json" if name.endswith(".json") else "csv"


def _write_charge_file(charges: Iterable[Charge], args: argparse.Namespace) -> int:
    """Write ``charges`` (consumed as they come) to ``--output``, whole or not at all: to
    a hidden file beside it, renamed when complete."""
    path = Path(args.output)
    fmt = output_format(args)
    try:
        if fmt == "parquet":
            return write_charges_parquet(charges, path, row_group_size=args.row_group_size)
        temp = path.with_name(f".{path.name}.tmp")
        try:
            with temp.open("w", encoding="utf-8", newline="") as handle:
                written = write_records(
                    (charge_record(c) for c in charges),
                    handle,
                    format=fmt,
                    columns=CHARGE_COLUMNS,
                    spreadsheet_safe=not args.csv_raw,
                )
            temp.replace(path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    except OSError as error:
        raise InputError(f"cannot write {args.output}: {error.strerror or error}") from None
    except ValidationError as error:
        if error.field != "path":
            raise
        raise InputError(f"cannot write {args.output}: {error.expected}") from None
    return written


def _check_files(args: argparse.Namespace) -> None:
    """Refuse, before anything is opened, read or stored, what cannot work: Parquet
    without pyarrow, or output options that do not fit."""
    if cdr_format(args) == "parquet" and args.cdrs != "-":
        need_pyarrow(args.cdrs)
    if args.output is None:
        return
    if args.charges:
        raise UsageError(
            "--charges prints the rated calls on stdout and --output writes them to a "
            "file: give one of them"
        )
    if args.output == "-":
        raise UsageError("--output names a file; leave it out to print on stdout")
    if output_format(args) == "parquet":
        need_pyarrow(args.output)


def _rate_and_store(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    progress: ProgressArg = False if args.quiet else None
    _check_files(args)
    with contextlib.ExitStack() as stack:
        # The database is opened first: a missing extra or an unreachable server is
        # reported before minutes of rating, not after.
        repo = None if args.no_store else stack.enter_context(open_repository(args.db))
        plan, _ = plan_from_args(args)
        rejects = stack.enter_context(reject_stream(args.reject_file))
        reader = cdr_reader(args.cdrs, args, rejects)
        log = RejectLog(err, args.max_rejects, rejects)
        totals = RunTotals()
        bar = Progress(progress, estimated_total(args, progress), desc="rating")
        charges = _rated(reader, plan, totals, log, bar)
        written: int | None = None
        if repo is None:
            # Nothing to store: the charges stream to stdout or the file as they are rated.
            if args.output is not None:
                written = _write_charge_file(charges, args)
            elif args.charges:
                _print_charges(charges, args, out)
            else:
                for _ in charges:
                    pass
            log.close()
            if not args.charges:
                _print_summary(totals, log.count, None, args, out)
        else:
            # Stored in one transaction, which holds the calls until it commits.
            held = list(charges)
            log.close()
            stored = _store(repo, held, progress)
            err.write(f"stored {stored} rated CDRs in {shown_db(args.db)}\n")
            if args.output is not None:
                written = _write_charge_file(held, args)
            # Printed only once stored: a reader that stops early (`| head`) costs no data.
            if args.charges:
                _print_charges(held, args, out)
            else:
                _print_summary(totals, log.count, stored, args, out)
        if written is not None:
            err.write(f"wrote {written} rated CDRs to {args.output}\n")
    return EXIT_REJECTED_ROWS if log.count else EXIT_OK


def add_rate(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "rate",
        help="rate a file of CDRs against a rate deck, store the result and print a summary",
        description="Rate a file of CDRs against a rate deck. Columns are matched by name "
        "(see docs/cli.md); rejected rows are reported on stderr with their line numbers. "
        "The rated calls are stored in --db unless --no-store is given; a call_id that "
        "appears again in the file is rejected (the first record is kept).",
    )
    p.add_argument("cdrs", help="the CDR file ('-' for stdin)")
    p.add_argument("--rates", required=True, help="the rate deck (CSV or a rate notice)")
    add_plan_options(p)
    add_deck_options(p)
    add_cdr_input_options(p, deck=True)
    p.add_argument(
        "--charges",
        action="store_true",
        help="print every rated call instead of the per-destination summary",
    )
    add_format_option(p, "table")
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="also write every rated call to FILE (the summary still goes to stdout); "
        "written whole or not at all",
    )
    p.add_argument(
        "--output-format",
        choices=CHARGE_FILE_FORMATS,
        help="format of --output (default: parquet for *.parquet or *.pq, jsonl for "
        "*.jsonl, json for *.json, else csv)",
    )
    p.add_argument(
        "--row-group-size",
        type=_positive,
        default=DEFAULT_ROW_GROUP_SIZE,
        metavar="N",
        help=f"Parquet: rows per batch read and per row group written "
        f"(default {DEFAULT_ROW_GROUP_SIZE:,})",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_db_option(p)
    p.add_argument("--no-store", action="store_true", help="only print; store nothing")
    p.set_defaults(handler=_rate_and_store)


def _positive(text: str) -> int:
    value = count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, got {text!r}")
    return value


# -- check-plan ----------------------------------------------------------------------------


def _check_plan(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    # Checking needs no money: without a currency the plan is built in XXX, ISO 4217's
    # "no currency", rather than refusing to look at the deck.
    plan, count = plan_from_args(args, fallback_currency="XXX")
    try:
        at = parse_timestamp("--at", args.at) if args.at is not None else datetime.now(UTC)
    except ValidationError as error:
        raise UsageError(str(error)) from None
    findings = plan.check(at=at)
    rows = [
        {
            "code": f.code,
            "message": f.message,
            "rates": ", ".join(r.id or f"{r.prefix}@{r.priority}" for r in f.rates),
        }
        for f in findings
    ]
    # The message is the finding: a table shows it whole, last, so that it can wrap.
    emit(
        rows,
        args.format,
        out,
        columns=("code", "rates", "message"),
        cell_width=1_000,
        csv_raw=args.csv_raw,
    )
    verdict = "no findings" if not findings else f"{len(findings)} finding(s)"
    prefixes = len({r.prefix for r in plan if r.status is RateStatus.ACTIVE})
    err.write(f"{args.rates}: {count} rates, {prefixes} active prefixes; {verdict}\n")
    return EXIT_REJECTED_ROWS if findings else EXIT_OK


def add_check_plan(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "check-plan",
        help="validate a rate deck and list what a deck editor should look at",
        description="Read a rate deck as `rate` would and report: rows that cannot be read "
        "(exit 3, each with its line), rates that can never win, expired rates, prefixes "
        "written with other characters, schedules that never match or leave gaps. Exit 1 "
        "when there are findings, 0 when the deck is clean.",
    )
    p.add_argument("rates", help="the rate deck (CSV or a rate notice)")
    add_plan_options(p, currency_required=False)
    add_deck_options(p)
    add_text_options(p, "dates in the deck", cdrs=False, deck=True)
    p.add_argument("--at", help="judge expiry and gaps as of this instant (default now)")
    add_format_option(p, "table")
    p.set_defaults(handler=_check_plan)
