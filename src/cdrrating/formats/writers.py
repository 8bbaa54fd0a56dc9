"""Writers for CDRs, charges and rejects: CSV (RFC 4180), JSON Lines, and JSON for APIs.

All writers stream: rows are written as they come, so a month of charges never sits in
memory. ``out`` is a path (created, UTF-8) or a text stream; open a stream for CSV with
``newline=""`` so the CRLF line endings RFC 4180 asks for are written unchanged.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import IO, Any

import attrs

from cdrrating.cdr import CDR
from cdrrating.errors import ValidationError
from cdrrating.formats._reader import REJECT_COLUMNS, Reject, spreadsheet_cell
from cdrrating.money import format_micros
from cdrrating.rating import Charge, RowError

__all__ = [
    "CDR_COLUMNS",
    "CHARGE_COLUMNS",
    "OUTPUT_FORMATS",
    "cdr_record",
    "charge_record",
    "write_cdrs",
    "write_charges",
    "write_records",
    "write_rejects",
]

OUTPUT_FORMATS = ("csv", "jsonl", "json")
CDR_COLUMNS: tuple[str, ...] = tuple(f.name for f in attrs.fields(CDR))
CHARGE_COLUMNS: tuple[str, ...] = (
    *(c for c in CDR_COLUMNS if c != "extra"),
    "cost",
    "billed_seconds",
    "status",
    "reason",
    "prefix",
    "rate_destination",
    "connection_fee_micros",
    "extra",
)

Out = str | os.PathLike[str] | IO[str]


def cdr_record(cdr: CDR) -> dict[str, Any]:
    """A CDR as a flat, JSON-ready dict: ISO 8601 times, enum values, ``extra`` a dict."""
    return cdr.to_mapping()


def charge_record(charge: Charge) -> dict[str, Any]:
    """A rated call: the CDR's fields (``cost_micros``/``currency`` from the charge), then
    ``cost`` (exact decimal text), ``billed_seconds``, ``status``, ``reason``, ``prefix``
    (the matched prefix), ``rate_destination`` and ``connection_fee_micros``."""
    row = charge.cdr.to_mapping()
    extra = row.pop("extra")
    row["cost_micros"] = charge.cost_micros
    row["currency"] = charge.currency
    row["cost"] = format_micros(charge.cost_micros) if charge.cost_micros is not None else None
    row["billed_seconds"] = charge.billed_seconds
    row["status"] = charge.status.value
    row["reason"] = charge.reason.value if charge.reason is not None else None
    row["prefix"] = charge.prefix
    row["rate_destination"] = charge.rate.destination if charge.rate is not None else None
    row["connection_fee_micros"] = charge.connection_fee_micros
    row["extra"] = extra
    return row


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)  # exact; a JSON number would pass through a float in most readers
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)


def _cell(value: Any, spreadsheet_safe: bool) -> Any:
    if value is None:
        return ""
    if isinstance(value, Mapping):
        # Starts with "{": never taken for a formula.
        return (
            json.dumps(dict(value), default=_json_default, sort_keys=True, ensure_ascii=False)
            if value
            else ""
        )
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        value = value.value
    if spreadsheet_safe:
        # OWASP "CSV injection": a caller id of "=HYPERLINK(...)" must not run in Excel.
        # Only text is quoted: a number such as -5 is data to a spreadsheet, not a formula.
        return spreadsheet_cell(value)
    return value


@contextmanager
def _opened(out: Out, bom: bool) -> Iterator[IO[str]]:
    if isinstance(out, str | os.PathLike):
        try:
            stream = open(out, "w", encoding="utf-8-sig" if bom else "utf-8", newline="")  # noqa: SIM115
        except OSError as error:
            raise ValidationError(
                "out", os.fspath(out), f"a path that can be written ({error.strerror or error})"
            ) from None
        with stream:
            yield stream
    else:
        if bom:
            out.write("\ufeff")
        yield out


def write_records(
    records: Iterable[Mapping[str, Any]],
    out: Out,
    *,
    format: str = "csv",
    columns: Sequence[str] | None = None,
    errors: Iterable[Reject | RowError] | None = None,
    bom: bool = False,
    spreadsheet_safe: bool = False,
) -> int:
    """Write dict rows; returns how many rows were written.

    * ``csv``: RFC 4180 — a header, CRLF line ends, fields quoted when they hold a
      comma, quote or line break, UTF-8. ``columns`` fixes the columns (default: the
      first row's keys); a key outside them raises. ``bom=True`` starts the file with a
      UTF-8 byte-order mark, which Excel needs to read UTF-8 (BI tools do not).
      ``spreadsheet_safe=True`` prefixes ``'`` to every text cell (header included)
      starting with ``=``, ``+``, ``-``, ``@``, a tab, CR or LF, so a spreadsheet does not
      run it as a formula (OWASP "CSV injection"). It changes such values (``+4420...``
      becomes ``'+4420...``), so it is off by default and the CSV reads back exactly.
    * ``jsonl``: one JSON object a line.
    * ``json``: ``{"ok": ..., "count": ..., "rows": [...]}`` for API handlers, plus
      ``"errors"`` when ``errors`` is given (``ok`` is then false if there are any).
      ``count`` follows ``rows`` when ``records`` is not a sequence, so that the rows
      still stream.

    Amounts are integer micros; decimals are written as exact strings.
    """
    if format not in OUTPUT_FORMATS:
        raise ValidationError("format", format, "one of " + ", ".join(OUTPUT_FORMATS))
    with _opened(out, bom and format == "csv") as stream:
        if format == "csv":
            return _write_csv(records, stream, columns, spreadsheet_safe)
        if format == "jsonl":
            count = 0
            for record in records:
                stream.write(
                    json.dumps(_pick(record, columns), default=_json_default, ensure_ascii=False)
                )
                stream.write("\n")
                count += 1
            return count
        return _write_json(records, stream, columns, errors)


def _pick(record: Mapping[str, Any], columns: Sequence[str] | None) -> Mapping[str, Any]:
    if columns is None:
        return record
    return {c: record.get(c) for c in columns}


def _write_csv(
    records: Iterable[Mapping[str, Any]],
    stream: IO[str],
    columns: Sequence[str] | None,
    spreadsheet_safe: bool,
) -> int:
    writer = csv.writer(stream, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    count = 0
    header: Sequence[str] | None = columns
    if header is not None:
        writer.writerow([_cell(c, spreadsheet_safe) for c in header])
    for record in records:
        if header is None:
            header = list(record)
            writer.writerow([_cell(c, spreadsheet_safe) for c in header])
        unknown = [k for k in record if k not in header]
        if unknown:
            raise ValidationError("columns", unknown, f"only the columns {', '.join(header)}")
        writer.writerow([_cell(record.get(c), spreadsheet_safe) for c in header])
        count += 1
    return count


def _error_record(error: Reject | RowError) -> dict[str, Any]:
    if isinstance(error, Reject):
        return {
            "source": error.source,
            "line": error.line,
            "field": error.field,
            "reason": error.reason,
        }
    return {"position": error.position, "field": error.field, "reason": error.error}


def _write_json(
    records: Iterable[Mapping[str, Any]],
    stream: IO[str],
    columns: Sequence[str] | None,
    errors: Iterable[Reject | RowError] | None,
) -> int:
    error_rows = [_error_record(e) for e in errors] if errors is not None else None
    ok = not error_rows
    dumps = json.dumps
    known = len(records) if isinstance(records, Sequence) else None
    stream.write(f'{{"ok": {dumps(ok)}, ')
    if known is not None:
        stream.write(f'"count": {known}, ')
    stream.write('"rows": [')
    count = 0
    for record in records:
        stream.write(",\n" if count else "\n")
        stream.write(dumps(_pick(record, columns), default=_json_default, ensure_ascii=False))
        count += 1
    stream.write("\n]" if count else "]")
    if known is None:
        stream.write(f', "count": {count}')
    if error_rows is not None:
        stream.write(', "errors": ' + dumps(error_rows, default=_json_default, ensure_ascii=False))
    stream.write("}\n")
    return count


def write_cdrs(cdrs: Iterable[CDR], out: Out, *, format: str = "csv", **options: Any) -> int:
    """Write CDRs (columns :data:`CDR_COLUMNS`); options as :func:`write_records`."""
    rows: Iterable[Mapping[str, Any]]
    if isinstance(cdrs, Sequence):
        rows = [cdr_record(c) for c in cdrs]  # already in memory; lets JSON put count first
    else:
        rows = (cdr_record(c) for c in cdrs)
    return write_records(
        rows, out, format=format, columns=options.pop("columns", CDR_COLUMNS), **options
    )


def write_charges(
    charges: Iterable[Charge | None], out: Out, *, format: str = "csv", **options: Any
) -> int:
    """Write rated calls (columns :data:`CHARGE_COLUMNS`). ``None`` entries (the records a
    :class:`~cdrrating.BatchResult` could not rate) are skipped: pass
    ``errors=result.errors`` to list them in JSON output."""
    rows = (charge_record(c) for c in charges if c is not None)
    return write_records(
        rows, out, format=format, columns=options.pop("columns", CHARGE_COLUMNS), **options
    )


def write_rejects(rejects: Iterable[Reject], out: Out, **options: Any) -> int:
    """Rejected rows as CSV (``source,line,field,reason,raw``), the reject-file layout."""
    rows = ({c: getattr(r, c) for c in REJECT_COLUMNS} for r in rejects)
    return write_records(
        rows, out, format=options.pop("format", "csv"), columns=REJECT_COLUMNS, **options
    )
