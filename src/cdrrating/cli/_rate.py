"""``cdrrating rate`` and ``cdrrating check-plan`` (private)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from cdrrating._validate import parse_timestamp
from cdrrating.errors import ValidationError
from cdrrating.formats import CHARGE_COLUMNS, charge_record
from cdrrating.money import Rounding, format_micros
from cdrrating.plan import RatePlan
from cdrrating.rates import RateStatus
from cdrrating.rating import BatchResult, Rater

from ._common import (
    EXIT_OK,
    EXIT_REJECTED_ROWS,
    RECORD_FORMATS,
    InputError,
    SubParsers,
    UsageError,
    add_cdr_input_options,
    add_db_option,
    add_deck_options,
    add_text_options,
    cdr_reader,
    clip,
    db_url,
    emit,
    guarded,
    open_repository,
    read_deck,
    report_rejects,
    write_table,
)

# -- the plan --------------------------------------------------------------------------------


def _add_plan_options(p: argparse.ArgumentParser, *, currency_required: bool = True) -> None:
    p.add_argument(
        "--currency",
        help="ISO 4217 currency of the deck, e.g. EUR"
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
        raise InputError(f"{args.rates}: {error}") from None
    return plan, len(rates)


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


def _print_summary(result: BatchResult, rejected: int, fmt: str, out: TextIO) -> None:
    rows = summarise(result)
    if fmt == "json":
        json.dump(
            {
                "destinations": rows,
                "status_counts": dict(sorted(result.by_status.items())),
                "reason_counts": dict(sorted(result.by_reason.items())),
                "totals_micros": dict(sorted(result.totals.items())),
                "rejected": rejected,
            },
            out,
            indent=2,
        )
        out.write("\n")
        return
    if fmt in ("csv", "jsonl"):
        emit(rows, fmt, out, columns=list(rows[0]) if rows else ["destination"])
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
        out, ["Status", "Calls"], [[k, str(v)] for k, v in sorted(result.by_status.items())]
    )
    if result.by_reason:
        out.write("\n")
        write_table(
            out,
            ["Unrated reason", "Calls"],
            [[k, str(v)] for k, v in sorted(result.by_reason.items())],
        )
    totals = ", ".join(format_micros(v, k) for k, v in sorted(result.totals.items()))
    out.write(f"\nTotal: {totals or '0'}; {len(result)} records, {rejected} rejected\n")


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


def rate_command(
    args: argparse.Namespace, *, stdout: TextIO, stderr: TextIO
) -> tuple[int, BatchResult]:
    """Rate a CDR file against a deck and print the summary (or, with ``--charges``, every
    call); returns the exit code and the batch, so that the caller can store it."""
    plan, _ = plan_from_args(args)
    reader = cdr_reader(args.cdrs, args)
    result = Rater(default=plan).rate_many(guarded(reader), progress=False if args.quiet else None)
    rejected = report_rejects(reader, stderr)
    if args.charges:
        columns = _CHARGE_TABLE if args.format == "table" else CHARGE_COLUMNS
        emit(
            (charge_record(c) for c in result if c is not None),
            args.format,
            stdout,
            columns=columns,
        )
    else:
        _print_summary(result, rejected, args.format, stdout)
    return (EXIT_REJECTED_ROWS if rejected else EXIT_OK), result


def _rate_and_store(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.no_store:
        return rate_command(args, stdout=out, stderr=err)[0]
    # The database is opened first: a missing extra or an unreachable server is reported
    # before minutes of rating, not after.
    with open_repository(args.db) as repo:
        code, result = rate_command(args, stdout=out, stderr=err)
        # Upsert: rating the same file again re-rates its calls instead of failing.
        stored = repo.upsert_many(charge for charge in result if charge is not None)
        err.write(f"stored {stored} rated CDRs in {db_url(args.db)}\n")
    return code


def add_rate(sub: SubParsers[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "rate",
        help="rate a file of CDRs against a rate deck, store the result and print a summary",
        description="Rate a file of CDRs against a rate deck. Columns are matched by name "
        "(see docs/cli.md); rejected rows are reported on stderr with their line numbers. "
        "The rated calls are stored in --db unless --no-store is given.",
    )
    p.add_argument("cdrs", help="the CDR file ('-' for stdin)")
    p.add_argument("--rates", required=True, help="the rate deck (CSV or a rate notice)")
    _add_plan_options(p)
    add_deck_options(p)
    add_cdr_input_options(p)
    p.add_argument(
        "--charges",
        action="store_true",
        help="print every rated call instead of the per-destination summary",
    )
    p.add_argument("--format", choices=RECORD_FORMATS, default="table")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_db_option(p)
    p.add_argument("--no-store", action="store_true", help="only print; store nothing")
    p.set_defaults(handler=_rate_and_store)


# -- check-plan ----------------------------------------------------------------------------


def _check_plan(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    # Checking needs no money: without a currency the plan is built in XXX, ISO 4217's
    # "no currency", rather than refusing to look at the deck.
    plan, count = plan_from_args(args, fallback_currency="XXX")
    at = parse_timestamp("--at", args.at) if args.at is not None else datetime.now(UTC)
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
    emit(rows, args.format, out, columns=("code", "rates", "message"), cell_width=1_000)
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
    _add_plan_options(p, currency_required=False)
    add_deck_options(p)
    add_text_options(p, "dates in the deck")
    p.add_argument("--at", help="judge expiry and gaps as of this instant (default now)")
    p.add_argument("--format", choices=RECORD_FORMATS, default="table")
    p.set_defaults(handler=_check_plan)
