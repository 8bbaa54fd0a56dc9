"""Vectorised rating of CDR tables: pandas, pyarrow and polars (extra ``[frame]``).

``rate_table(data, plan_or_rater)`` rates every row of a table of CDRs and returns the
same kind of table with the input columns plus ``cost_micros``, ``currency``,
``billed_seconds``, ``status``, ``reason``, ``prefix`` and ``error``. Row for row, the
result equals what :func:`cdrrating.rate` / :meth:`cdrrating.Rater.rate` give for the
CDR that ``CDR.from_mapping`` builds from the row (its non-null cells); a row that
``CDR.from_mapping`` would refuse gets status ``ERROR`` and a message in ``error``.

For pipelines: ``rate_batches`` / ``rate_reader`` rate a stream of Arrow record batches
one batch at a time, ``output_schema`` gives the result's schema before any row is
rated, and the options ``columns=``, ``strings="plain"`` and ``threads=`` choose the
added columns, plain strings instead of dictionaries, and threads to rate on.

How it is fast, and why it cannot disagree with ``rate()``: the plan is compiled once
(cached on the plan) into the form both engines read; this module looks numbers up in
its numpy arrays (a direct-address table over the first six digits, then one
``searchsorted`` per longer prefix length) and prices them with the same rule functions
``rate()`` uses, applied to int64 arrays. The few calls arrays cannot carry exactly
(sums near 2**61, calls that cross a schedule band) are priced by ``rate()``'s own
functions, one by one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal, TypeVar, cast

try:
    import numpy  # noqa: F401  # imported here so that a missing one names the extra
    import pandas  # noqa: F401  # (same)
    import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
    import pyarrow.compute as pc  # type: ignore[import-untyped]  # (same)
except ImportError as _error:  # pragma: no cover - exercised by the import test in a subprocess
    raise ImportError(
        f"cdrrating.frame needs numpy, pandas and pyarrow ({_error.name} is missing): "
        "pip install 'cdrrating[frame]'"
    ) from _error

from cdrrating.errors import ValidationError
from cdrrating.frame._columns import INPUT_COLUMNS, REQUIRED_COLUMNS, _as_arrow_array, _to_arrow
from cdrrating.frame._driver import output_schema_of, rate_arrow
from cdrrating.frame._engine import chains_of
from cdrrating.frame._options import check_strings, options, output_columns
from cdrrating.frame._output import ALL_OUTPUT_COLUMNS, OUTPUT_COLUMNS, STRINGS, _from_arrow
from cdrrating.frame._stream import rate_batches, rate_reader
from cdrrating.money import MICROS_PER_UNIT, to_micros
from cdrrating.plan import RatePlan
from cdrrating.rating import Rater

__all__ = [
    "ALL_OUTPUT_COLUMNS",
    "INPUT_COLUMNS",
    "OUTPUT_COLUMNS",
    "REQUIRED_COLUMNS",
    "STRINGS",
    "micros_column",
    "output_schema",
    "rate_batches",
    "rate_reader",
    "rate_table",
]

TableT = TypeVar("TableT")


# -- public API ----------------------------------------------------------------------------


def rate_table(
    data: TableT,
    plan_or_rater: RatePlan | Sequence[RatePlan] | Rater | None,
    *,
    errors: Literal["report", "raise"] = "report",
    assume_tz: str | None = None,
    destination: bool = False,
    columns: Iterable[str] | None = None,
    strings: Literal["dictionary", "plain"] = "dictionary",
    threads: int = 1,
) -> TableT:
    """Rate a table of CDRs: a pandas DataFrame, a pyarrow Table or a polars DataFrame.

    ``plan_or_rater`` is a :class:`~cdrrating.RatePlan`, a fallback chain of plans (tried
    in order, as :class:`~cdrrating.Rater` does), a :class:`~cdrrating.Rater` (the
    ``tenant`` column picks the chain) or None (every billable call is ``UNRATED``,
    ``NO_PLAN``).

    Every plan ``rate()`` accepts is accepted: schedules in the plan's time zone, both
    band policies, holidays, validity windows, priorities, every direction, fallback
    chains, amounts up to the library's limits.

    Columns are named as the CDR fields. Required: ``call_id`` (str or int),
    ``started_at``, ``destination_number`` (str or int). Optional: ``direction`` (str,
    default outbound), ``disposition`` (str, default ANSWERED), ``billsec`` and
    ``duration`` (integers), ``answered_at`` and ``ended_at``, ``tenant`` (str or int),
    ``caller_number`` (text is checked for length; a column of another type is
    ignored). Timestamps are timestamp columns of any unit in any zone, or ISO 8601 text
    with an offset (``"2025-06-01T12:00:00+02:00"``); naive timestamps (a naive column,
    or text without an offset) are read in ``assume_tz`` when it is given and refused
    otherwise, and a wall-clock time the zone skips or repeats is a bad row. Any other
    column is passed through untouched and not read. Null cells mean "not given", as a
    missing key does for ``CDR.from_mapping``: a null ``billsec`` is derived from
    ``answered_at`` and ``ended_at`` (rounded up to whole seconds) or is 0; a null
    ``direction`` is outbound. A table with neither a ``billsec`` column nor both
    ``answered_at`` and ``ended_at`` is refused: it could only ever be "unanswered".

    Returns the same kind of table: the input columns, then ``cost_micros`` (nullable
    int64: null exactly when the call is UNRATED or the row is bad), ``currency``,
    ``billed_seconds`` (nullable int64, null only for bad rows), ``status`` (RATED,
    UNANSWERED, UNRATED, DIRECTION_NOT_RATED or ERROR), ``reason`` (NO_RATE, NO_PLAN,
    INVALID_NUMBER or null), ``prefix`` (the prefix of the rate that won, or null),
    with ``destination=True`` ``destination`` (the winning rate's destination label),
    and ``error`` (why a row is ERROR, naming the field; null otherwise). Input columns with
    these names are replaced (re-rating overwrites an old ``cost_micros``).

    Bad rows (an unknown disposition or direction, negative seconds, billsec greater
    than duration, timestamps out of order, an empty call_id, a number longer than 50
    characters, ...) are never dropped and never priced: with ``errors="report"`` (the
    default) they get status ``ERROR`` and a message; with ``errors="raise"`` the first
    one raises :class:`~cdrrating.ValidationError` naming its 0-based position. A table
    whose columns are unusable as a whole (a missing required column, naive timestamps
    without ``assume_tz``, float seconds) raises at once, whatever ``errors`` says. A
    call ``rate()`` would refuse (a step in a schedule gap) is a bad row here.

    Options for pipelines: ``columns`` names the output columns to add (out of
    ``ALL_OUTPUT_COLUMNS``; they come in that order whatever order they are named in;
    input columns are always passed through and only the added ones replace input
    columns of their names). ``strings="plain"`` gives plain string columns instead of
    dictionary-encoded ones (Spark's Arrow readers take no dictionaries); a dictionary
    holds only the values its rows use, in the order they first use them.
    ``threads=n`` rates n slices of the table at once on n threads; the result is the
    same table as with one, and ``errors="raise"`` still names the first bad row.
    :func:`output_schema` gives the schema of the result for an Arrow input.
    """
    opts = options(
        errors=errors,
        assume_tz=assume_tz,
        destination=destination,
        columns=columns,
        strings=strings,
        threads=threads,
    )
    kind, table = _to_arrow(data)
    chains_of(plan_or_rater)  # a bad plan argument is refused before any work
    if opts.threads == 1 or table.num_rows < 2:
        out = rate_arrow(table, plan_or_rater, opts)
    else:
        with ThreadPoolExecutor(opts.threads, thread_name_prefix="cdrrating") as pool:
            out = rate_arrow(table, plan_or_rater, opts, pool=pool)
    return cast(TableT, _from_arrow(kind, data, out))


def output_schema(
    input_schema: pa.Schema,
    *,
    columns: Iterable[str] | None = None,
    strings: Literal["dictionary", "plain"] = "dictionary",
    destination: bool = False,
) -> pa.Schema:
    """The schema of what :func:`rate_table` and :func:`rate_batches` return for Arrow
    input of ``input_schema``, with the same ``columns``, ``strings`` and
    ``destination`` options: a pipeline can declare its output before rating.

    The input fields come first, in their order (those named as an added column are
    dropped), then the added columns, every one nullable: ``cost_micros`` and
    ``billed_seconds`` int64, the text columns ``dictionary<values=string,
    indices=int32>`` (or ``string`` with ``strings="plain"``). The schema's metadata is
    the input's. The input schema itself is not checked here; rating checks it.
    """
    if not isinstance(input_schema, pa.Schema):
        raise ValidationError("input_schema", input_schema, "a pyarrow Schema")
    check_strings(strings)
    return output_schema_of(input_schema, output_columns(columns, destination), strings)


def micros_column(values: Any, *, field: str = "amount") -> pa.Array:
    """Convert a column of decimal amounts in currency units to an int64 array of micros.

    Integer columns are whole units; decimal (``decimal128``) and string columns convert
    exactly and a value with more than six decimal places is refused, as
    :func:`cdrrating.to_micros` does. **Float columns are converted through their
    shortest decimal text** (``0.1`` is read as ``"0.1"``, not as the binary value
    0.1000000000000000055...) **and rounded half-even to a micro** (rating-rules §1).
    Nulls stay null. Accepts a pandas Series, a pyarrow Array or ChunkedArray, a polars
    Series or a numpy array.
    """
    array = _as_arrow_array(values)
    kind = array.type
    if pa.types.is_null(kind):
        return pa.nulls(len(array), pa.int64())
    if pa.types.is_boolean(kind):
        raise ValidationError(field, "a bool column", "a column of decimal amounts")
    if pa.types.is_integer(kind):
        ints = array.cast(pa.int64())
        return pc.multiply_checked(ints, pa.scalar(MICROS_PER_UNIT, pa.int64()))
    if pa.types.is_floating(kind):

        def convert(value: Any) -> int:
            if not math.isfinite(value):
                raise ValidationError(field, value, "a finite amount")
            exact = Decimal(repr(value)).quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN)
            return int(exact * MICROS_PER_UNIT)

    elif pa.types.is_decimal(kind) or pa.types.is_string(kind) or pa.types.is_large_string(kind):

        def convert(value: Any) -> int:
            return to_micros(value.strip() if isinstance(value, str) else value, field=field)

    else:
        raise ValidationError(field, f"a {kind} column", "integers, decimals, floats or text")
    dictionary = pc.unique(array.drop_null())
    micros = pa.array([convert(v) for v in dictionary.to_pylist()], pa.int64())
    return pc.take(micros, pc.index_in(array, dictionary))
