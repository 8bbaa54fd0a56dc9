"""Rating one Arrow table into the added columns, on one thread or several (private)."""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information

from cdrrating.errors import ValidationError
from cdrrating.frame._columns import _read_columns
from cdrrating.frame._engine import chains_of, rate_columns
from cdrrating.frame._options import Options
from cdrrating.frame._output import _from_arrow, _Result, output_fields

#: Rows rated in one pass: larger tables are rated in slices of about this many rows.
CHUNK_ROWS = 131_072


def rate_arrow(
    table: pa.Table,
    plan_or_rater: Any,
    options: Options,
    *,
    pool: Executor | None = None,
    offset: int = 0,
    scope: str = "in all",
) -> pa.Table:
    """The added columns for ``table``, one row per row.

    A table of more than ``CHUNK_ROWS`` rows is rated in slices of at most that many;
    with a pool, in at least ``options.threads`` slices, that many at once. The slices'
    results are joined before the columns are made, once: the very columns of one call
    on the whole. ``offset`` is the table's first row's position in what the
    caller rates (a stream), for the message of ``errors="raise"``.
    """
    n = table.num_rows
    threads = 1 if pool is None else options.threads
    # A large table is rated in slices of at most CHUNK_ROWS rows, one after another on
    # one thread: a slice's arrays stay in the CPU's caches, and sorting its keys costs
    # less a row (a 1,000,000-row table: 13 % less CPU). Results do not depend on it.
    parts = min(n, max(threads, -(-n // CHUNK_ROWS)))
    if parts <= 1:
        result = _rate(table, plan_or_rater, options)
    else:
        starts = [n * k // parts for k in range(parts)]
        ends = [*starts[1:], n]
        slices = [table.slice(start, end - start) for start, end in zip(starts, ends, strict=True)]
        if pool is None or threads <= 1:
            result = _Result.concat([_rate(part, plan_or_rater, options) for part in slices])
        else:
            futures = [pool.submit(_rate, part, plan_or_rater, options) for part in slices]
            # In order: the first slice that raised (a problem with the table as a
            # whole) raises, as one call on the whole table would.
            result = _Result.concat([future.result() for future in futures])
    if options.errors == "raise" and result.error_rows.size:
        position = offset + int(result.error_rows[0])
        field, value, expected = result.error_details[0]
        raise ValidationError(
            f"row {position}: {field}",
            value,
            f"{expected} ({result.error_rows.size} bad row(s) {scope}; "
            "errors='report' marks each one with status ERROR)",
        )
    return result.to_arrow(options.columns, options.strings)


def _rate(table: pa.Table, plan_or_rater: Any, options: Options) -> _Result:
    # Each slice its own chains: a Rater's chain index is built as tenants are met.
    chains, tenant_of = chains_of(plan_or_rater)
    return rate_columns(_read_columns(table, options.assume_tz), chains, tenant_of)


def output_schema_of(
    input_schema: pa.Schema, options_columns: tuple[str, ...], strings: str
) -> pa.Schema:
    """What ``_from_arrow`` makes of a table of ``input_schema`` and the added columns."""
    fields = output_fields(options_columns, strings)
    added = pa.schema(fields).empty_table()
    return _from_arrow("arrow", input_schema.empty_table(), added).schema
