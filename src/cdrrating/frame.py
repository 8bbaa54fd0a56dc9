"""Vectorised rating of CDR tables: pandas, pyarrow and polars (extra ``[frame]``).

``rate_table(data, plan_or_rater)`` rates every row of a table of CDRs and returns the
same kind of table with the input columns plus ``cost_micros``, ``currency``,
``billed_seconds``, ``status``, ``reason``, ``prefix`` and ``error``. Row for row, the
result equals what :func:`cdrrating.rate` / :meth:`cdrrating.Rater.rate` give for the
CDR that ``CDR.from_mapping`` builds from the row (its non-null cells); a row that
``CDR.from_mapping`` would refuse gets status ``ERROR`` and a message in ``error``.

How it is fast: the plan is compiled once (cached per plan) into a digit trie whose
first level is a direct-address table over the first six digits and whose deeper levels
have ten entries per node; a lookup is one gather per digit beyond the sixth, over
numpy arrays, for all rows at once. Prices are integer numpy arithmetic on int64, with
every row whose exact sum could come near 2**62 priced by the object path instead.
Plans that use a feature this module does not vectorise are refused (see
:func:`rate_table`), never rated differently.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal, TypeVar, cast
from weakref import WeakKeyDictionary

try:
    import numpy as np
    import pandas as pd
    import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
    import pyarrow.compute as pc  # type: ignore[import-untyped]  # (same)
except ImportError as _error:  # pragma: no cover - exercised by the import test in a subprocess
    raise ImportError(
        f"cdrrating.frame needs numpy, pandas and pyarrow ({_error.name} is missing): "
        "pip install 'cdrrating[frame]'"
    ) from _error

import attrs

from cdrrating._pricing import price
from cdrrating.cdr import MAX_NUMBER_LEN, Direction, Disposition
from cdrrating.errors import ValidationError
from cdrrating.money import MICROS_PER_UNIT, Rounding, _round_ratio, to_micros
from cdrrating.plan import RatePlan
from cdrrating.rates import Rate, RateStatus, Tier
from cdrrating.rating import Rater

__all__ = [
    "INPUT_COLUMNS",
    "OUTPUT_COLUMNS",
    "REQUIRED_COLUMNS",
    "micros_column",
    "rate_table",
]

NDArray = Any  # numpy arrays; kept loose so that mypy --strict works without numpy stubs per dtype
TableT = TypeVar("TableT")

#: Columns a table must have.
REQUIRED_COLUMNS = ("call_id", "started_at", "destination_number")
#: Every column ``rate_table`` reads (named as the CDR fields); any other column is
#: passed through untouched and not validated.
INPUT_COLUMNS = (
    *REQUIRED_COLUMNS,
    "direction",
    "disposition",
    "billsec",
    "duration",
    "answered_at",
    "ended_at",
    "tenant",
    "caller_number",
)
#: Columns ``rate_table`` adds (replacing input columns of the same name).
OUTPUT_COLUMNS = (
    "cost_micros",
    "currency",
    "billed_seconds",
    "status",
    "reason",
    "prefix",
    "error",
)

_STATUS = ("RATED", "UNANSWERED", "UNRATED", "DIRECTION_NOT_RATED", "ERROR")
_RATED, _UNANSWERED, _UNRATED, _NOT_RATED, _ERROR = range(5)
_REASON = ("NO_RATE", "NO_PLAN", "INVALID_NUMBER")
_NO_RATE, _NO_PLAN, _INVALID = range(3)
_DIRECTIONS = (Direction.OUTBOUND, Direction.INBOUND, Direction.INTERNAL)

_I64_MIN = np.iinfo(np.int64).min
_I64_MAX = np.iinfo(np.int64).max
_SAFE_INT = 2**61  # exact sums are kept below this in int64; larger rows use Python ints
_WIDTH = 18  # digits of a number that the vectorised lookup keys on (fits a uint64)
_ROOT_DIGITS = 6  # digits of the direct-address first level of the trie
_POW10 = np.array([10**k for k in range(_WIDTH + 1)], dtype=np.uint64)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_STRIP = r"[ \-.()\t]"  # what plan.normalise_number removes (its translate table)

# Fields of the domain types this module knows how to vectorise. A field added later
# (a schedule, a band policy, a plan time zone, ...) that holds a non-default value makes
# rate_table refuse the plan with a clear message instead of rating it differently.
_KNOWN_RATE_FIELDS = frozenset(
    {
        "prefix",
        "per_minute_micros",
        "connection_fee_micros",
        "initial_seconds",
        "increment_seconds",
        "tiers",
        "grace_seconds",
        "minimum_charge_micros",
        "maximum_charge_micros",
        "priority",
        "status",
        "direction",
        "valid_from",
        "valid_until",
        "destination",
        "id",
        "tenant",
        "source_prefix",
    }
)
_KNOWN_TIER_FIELDS = frozenset({"after_seconds", "per_minute_micros", "increment_seconds"})
_KNOWN_PLAN_FIELDS = frozenset(
    {"rates", "currency", "rounding", "quantum_micros", "access_prefixes", "name"}
)


# -- public API ----------------------------------------------------------------------------


def rate_table(
    data: TableT,
    plan_or_rater: RatePlan | Sequence[RatePlan] | Rater | None,
    *,
    errors: Literal["report", "raise"] = "report",
) -> TableT:
    """Rate a table of CDRs: a pandas DataFrame, a pyarrow Table or a polars DataFrame.

    ``plan_or_rater`` is a :class:`~cdrrating.RatePlan`, a fallback chain of plans (tried
    in order, as :class:`~cdrrating.Rater` does), a :class:`~cdrrating.Rater` (the
    ``tenant`` column picks the chain) or None (every billable call is ``UNRATED``,
    ``NO_PLAN``).

    Columns are named as the CDR fields. Required: ``call_id`` (str or int),
    ``started_at`` (a timezone-aware timestamp), ``destination_number`` (str or int).
    Optional: ``direction`` (str, default outbound), ``disposition`` (str, default
    ANSWERED), ``billsec`` and ``duration`` (integers), ``answered_at`` and ``ended_at``
    (timezone-aware timestamps), ``tenant`` (str or int), ``caller_number`` (str, only
    checked for length). Null cells mean "not given", as a missing key does for
    ``CDR.from_mapping``: a null ``billsec`` is derived from ``answered_at`` and
    ``ended_at`` (rounded up to whole seconds) or is 0; a null ``direction`` is
    outbound. A table with neither a ``billsec`` column nor both ``answered_at`` and
    ``ended_at`` is refused: it could only ever be "unanswered".

    Returns the same kind of table: the input columns, then ``cost_micros`` (nullable
    int64: null exactly when the call is UNRATED or the row is bad), ``currency``,
    ``billed_seconds`` (nullable int64, null only for bad rows), ``status`` (RATED,
    UNANSWERED, UNRATED, DIRECTION_NOT_RATED or ERROR), ``reason`` (NO_RATE, NO_PLAN,
    INVALID_NUMBER or null), ``prefix`` (the prefix of the rate that won, or null) and
    ``error`` (why a row is ERROR, naming the field; null otherwise). Input columns with
    these names are replaced (re-rating overwrites an old ``cost_micros``).

    Bad rows (an unknown disposition or direction, negative seconds, billsec greater
    than duration, timestamps out of order, an empty call_id, a number longer than 50
    characters, ...) are never dropped and never priced: with ``errors="report"`` (the
    default) they get status ``ERROR`` and a message; with ``errors="raise"`` the first
    one raises :class:`~cdrrating.ValidationError` naming its 0-based position. A table
    whose columns are unusable as a whole (a missing required column, naive timestamps,
    float seconds) raises at once, whatever ``errors`` says.

    Plans that use a feature this path does not vectorise (a prefix longer than 18
    digits, and any Rate or RatePlan field added after this module, such as schedules)
    raise :class:`~cdrrating.ValidationError`: rate those with ``Rater.rate_many``.
    """
    if errors not in ("report", "raise"):
        raise ValidationError("errors", errors, "'report' or 'raise'")
    kind, table = _to_arrow(data)
    chains, tenant_of = _chains(plan_or_rater)
    for chain in chains:
        for plan in chain:
            _compiled(plan)  # refuses unsupported plans before any work on the rows
    columns = _read_columns(table)
    result = _rate_columns(columns, chains, tenant_of)
    if errors == "raise" and result.error_rows.size:
        position = int(result.error_rows[0])
        field, value, expected = result.error_details[0]
        raise ValidationError(
            f"row {position}: {field}",
            value,
            f"{expected} ({result.error_rows.size} bad row(s) in all; "
            "errors='report' marks each one with status ERROR)",
        )
    out = result.to_arrow()
    return cast(TableT, _from_arrow(kind, data, out))


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


# -- tables in and out ---------------------------------------------------------------------


def _as_arrow_array(values: Any) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    if isinstance(values, pa.Array):
        return values
    if isinstance(values, pd.Series | pd.Index):
        return pa.array(values, from_pandas=True)
    if type(values).__module__.startswith("polars"):
        return _as_arrow_array(values.to_arrow())
    return pa.array(np.asarray(values))


def _to_arrow(data: Any) -> tuple[str, pa.Table]:
    if isinstance(data, pa.Table):
        return "arrow", data
    if isinstance(data, pa.RecordBatch):
        return "batch", pa.Table.from_batches([data])
    if isinstance(data, pd.DataFrame):
        present = [c for c in INPUT_COLUMNS if c in data.columns]
        if data.columns.duplicated().any():
            raise ValidationError("data", "duplicate column names", "unique column names")
        return "pandas", pa.Table.from_pandas(data[present], preserve_index=False)
    if type(data).__module__.startswith("polars"):
        import polars as pl  # noqa: PLC0415  # optional: imported only for a polars input

        if isinstance(data, pl.DataFrame):
            present = [c for c in INPUT_COLUMNS if c in data.columns]
            return "polars", data.select(present).to_arrow()
    raise ValidationError(
        "data", data, "a pandas DataFrame, a pyarrow Table or RecordBatch, or a polars DataFrame"
    )


def _from_arrow(kind: str, data: Any, out: pa.Table) -> Any:
    names = set(out.column_names)
    if kind == "pandas":
        frame = cast(pd.DataFrame, data)
        kept = frame.drop(columns=[c for c in frame.columns if c in names])
        mapping = {pa.int64(): pd.Int64Dtype()}
        converted = out.to_pandas(types_mapper=mapping.get)
        return kept.assign(**{name: converted[name].array for name in out.column_names})
    if kind == "polars":
        import polars as pl  # noqa: PLC0415  # optional: imported only for a polars input

        frame = data.drop([c for c in data.columns if c in names])
        return pl.concat([frame, cast(pl.DataFrame, pl.from_arrow(out))], how="horizontal")
    table: pa.Table = data if kind == "arrow" else pa.Table.from_batches([data])
    table = table.drop_columns([c for c in table.column_names if c in names])
    for name in out.column_names:
        table = table.append_column(name, out[name])
    if kind == "arrow":
        return table
    return (
        table.combine_chunks().to_batches(max_chunksize=max(table.num_rows, 1))[0]
        if table.num_rows
        else pa.RecordBatch.from_pylist([], schema=table.schema)
    )


# -- reading and checking the columns --------------------------------------------------------


@attrs.define
class _Columns:
    n: int
    call_id: pa.Array
    numbers: pa.Array  # large_string
    direction: NDArray  # int8 index into _DIRECTIONS
    answered: NDArray  # bool: disposition ANSWERED (or not given)
    billsec: NDArray  # int64
    started_us: NDArray  # int64 microseconds since the epoch (floor)
    tenant_codes: NDArray  # int32 index into tenants
    tenants: list[str | None]
    bad: NDArray  # bool
    errors: dict[int, tuple[str, Any, str]]  # position -> (field, value, expected)


def _nulls(array: pa.Array) -> NDArray | None:
    return _bool(array.is_null()) if array.null_count else None


def _too_long(array: pa.Array, limit: int) -> NDArray | None:
    """Rows whose text is longer than ``limit`` characters (bytes are checked first)."""
    longest = pc.max(pc.binary_length(array)).as_py()
    if longest is None or longest <= limit:
        return None
    return _bool(pc.greater(pc.utf8_length(array), limit))


def _fail(cols: _Columns, mask: NDArray | None, field: str, expected: str, values: Any) -> None:
    """Mark rows in ``mask`` (not already bad) as bad with a message about ``field``."""
    if mask is None:
        return
    new = np.asarray(mask, dtype=bool) & ~cols.bad
    if not new.any():
        return
    cols.bad |= new
    for position in np.flatnonzero(new).tolist():
        value = values(position) if callable(values) else values
        cols.errors[position] = (field, value, expected)


def _bool(array: Any) -> NDArray:
    """A boolean pyarrow array (nulls as False) as numpy."""
    return np.asarray(pc.fill_null(array, False).to_numpy(zero_copy_only=False), dtype=bool)


def _column(table: pa.Table, name: str) -> pa.Array | None:
    if name not in table.column_names:
        return None
    column = table.column(name)
    return column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)


def _text(table: pa.Table, name: str) -> pa.Array | None:
    """A str or int column as large_string (ints as their decimal text, as str() does)."""
    array = _column(table, name)
    if array is None:
        return None
    kind = array.type
    if pa.types.is_dictionary(kind):
        array = array.cast(kind.value_type)
        kind = array.type
    if pa.types.is_null(kind):
        return pa.nulls(len(array), pa.large_string())
    if (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_string_view(kind)
    ):
        return array.cast(pa.large_string())
    raise ValidationError(name, f"a column of type {kind}", "a column of text (or integers)")


def _seconds(table: pa.Table, name: str) -> tuple[NDArray, NDArray] | None:
    """An integer column as (int64 values with nulls as 0, null mask)."""
    array = _column(table, name)
    if array is None:
        return None
    kind = array.type
    if pa.types.is_null(kind):
        return np.zeros(len(array), np.int64), np.ones(len(array), bool)
    if not pa.types.is_integer(kind):
        hint = " (pandas: .astype('Int64') keeps nulls)" if pa.types.is_floating(kind) else ""
        raise ValidationError(
            name, f"a column of type {kind}", "whole seconds in an integer column" + hint
        )
    largest = pc.max(array).as_py() if kind == pa.uint64() else None
    if largest is not None and largest > _I64_MAX:
        raise ValidationError(name, largest, "seconds that fit in an int64")
    nulls = _bool(array.is_null())
    values = pc.fill_null(array.cast(pa.int64()), 0).to_numpy()
    return np.asarray(values, dtype=np.int64), nulls


_UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _timestamps(
    table: pa.Table, names: Sequence[str]
) -> tuple[dict[str, tuple[NDArray, NDArray]], int]:
    """Timestamp columns as int64 in their finest common unit, with null masks."""
    arrays: dict[str, pa.Array] = {}
    for name in names:
        array = _column(table, name)
        if array is None:
            continue
        kind = array.type
        if pa.types.is_null(kind):
            array = pa.nulls(len(array), pa.timestamp("us", tz="UTC"))
            kind = array.type
        if not pa.types.is_timestamp(kind):
            raise ValidationError(
                name,
                f"a column of type {kind}",
                "timezone-aware timestamps (pandas: pd.to_datetime(column, utc=True); "
                "pyarrow: a timestamp type with tz)",
            )
        if kind.tz is None:
            raise ValidationError(
                name,
                "naive timestamps",
                "timezone-aware timestamps: naive ones are ambiguous; localise the column "
                "first (pandas: .dt.tz_localize('UTC'); polars: .dt.replace_time_zone('UTC'); "
                "pyarrow: pc.assume_timezone(column, 'UTC'))",
            )
        arrays[name] = array
    unit = max((_UNITS[a.type.unit] for a in arrays.values()), default=1_000_000)
    target = {v: k for k, v in _UNITS.items()}[unit]
    out: dict[str, tuple[NDArray, NDArray]] = {}
    for name, array in arrays.items():
        try:
            converted = array.cast(pa.timestamp(target, tz="UTC"))
        except pa.ArrowInvalid as error:
            raise ValidationError(name, str(error), f"timestamps that fit in {target}") from None
        nulls = _bool(converted.is_null())
        values = pc.fill_null(converted.cast(pa.int64()), 0).to_numpy()
        out[name] = (np.asarray(values, dtype=np.int64), nulls)
    return out, unit


def _codes(
    array: pa.Array | None,
    n: int,
    parse: Callable[[str], Any],
    default: Any,
    common: str | None = None,
) -> tuple[NDArray, list[Any], list[tuple[Any, Exception]]]:
    """Parse a low-cardinality text column through its distinct values.

    Returns (int32 codes into ``values``, values, failures): a code of -1 marks a value
    that ``parse`` refused; the failure list holds (raw value, error) per code < -1.
    """
    if array is None:
        return np.zeros(n, np.int32), [default], []
    if common is not None:
        # Most rows usually hold one canonical spelling: compare, and encode only the rest.
        same = _bool(pc.equal(array, common))
        if same.all():
            return np.zeros(n, np.int32), [parse(common)], []
        rest = np.flatnonzero(~same)
        codes_rest, values_rest, failures_rest = _codes(
            array.take(pa.array(rest)), rest.size, parse, default, None
        )
        codes_all = np.full(n, len(values_rest), np.int32)
        codes_all[rest] = codes_rest
        return codes_all, [*values_rest, parse(common)], failures_rest
    encoded = array.dictionary_encode()
    values: list[Any] = []
    failures: list[tuple[Any, Exception]] = []
    mapping: list[int] = []
    for raw in encoded.dictionary.to_pylist():
        if raw is None or not raw.strip():
            values.append(default)
            mapping.append(len(values) - 1)
            continue
        try:
            values.append(parse(raw))
            mapping.append(len(values) - 1)
        except ValueError as error:
            failures.append((raw, error))
            mapping.append(-1 - len(failures))
    values.append(default)  # for nulls
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    codes = np.full(n, len(values) - 1, np.int32)
    valid = _bool(encoded.indices.is_valid())
    if mapping:
        codes[valid] = np.asarray(mapping, np.int32)[np.asarray(indices[valid], dtype=np.int64)]
    return codes, values, failures


def _read_columns(table: pa.Table) -> _Columns:
    n = table.num_rows
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise ValidationError(
            "data",
            f"columns {table.column_names}",
            f"the columns {', '.join(REQUIRED_COLUMNS)} (missing: {', '.join(missing)})",
        )
    names = table.column_names
    has_billsec = "billsec" in names
    if not has_billsec and not ("answered_at" in names and "ended_at" in names):
        raise ValidationError(
            "billsec",
            "no billsec column",
            "a billsec column, or answered_at and ended_at to derive it from",
        )
    call_id = _text(table, "call_id")
    numbers = _text(table, "destination_number")
    assert call_id is not None  # required columns were checked above
    assert numbers is not None
    stamps, unit = _timestamps(table, ("started_at", "answered_at", "ended_at"))
    started, started_null = stamps["started_at"]
    if unit > 1_000_000:
        started_us = np.floor_divide(started, unit // 1_000_000)
    else:
        started_us = started * (1_000_000 // unit)  # cast above already bounded the range
    cols = _Columns(
        n=n,
        call_id=call_id,
        numbers=numbers,
        direction=np.zeros(n, np.int8),
        answered=np.ones(n, bool),
        billsec=np.zeros(n, np.int64),
        started_us=started_us,
        tenant_codes=np.zeros(n, np.int32),
        tenants=[None],
        bad=np.zeros(n, bool),
        errors={},
    )

    def cell(array: pa.Array) -> Callable[[int], Any]:
        return lambda i: array[i].as_py()

    def stamp(name: str) -> Callable[[int], Any]:
        return cell(cast(pa.Array, _column(table, name)))

    _fail(
        cols, started_null if started_null.any() else None, "started_at", "a start timestamp", None
    )
    # call_id: a non-empty str of at most 255 characters.
    _fail(cols, _nulls(call_id), "call_id", "a str", None)
    call_bytes = pc.binary_length(call_id)
    if pc.min(call_bytes).as_py() == 0:
        _fail(cols, _bool(pc.equal(call_bytes, 0)), "call_id", "a non-empty str", "")
    _fail(cols, _too_long(call_id, 255), "call_id", "at most 255 characters", cell(call_id))
    _fail(cols, _nulls(numbers), "destination_number", "a str", None)
    _fail(
        cols,
        _too_long(numbers, MAX_NUMBER_LEN),
        "destination_number",
        f"at most {MAX_NUMBER_LEN} characters",
        cell(numbers),
    )
    caller = _text(table, "caller_number")
    if caller is not None:
        _fail(
            cols,
            _too_long(caller, MAX_NUMBER_LEN),
            "caller_number",
            f"at most {MAX_NUMBER_LEN} characters",
            cell(caller),
        )

    for name, target, parse, default, common in (
        ("direction", "direction", Direction.parse, Direction.OUTBOUND, "outbound"),
        # A blank disposition is derived by CDR.from_mapping (answered when billsec > 0
        # or answered_at is set, else NO ANSWER): both are rated alike, so ANSWERED here.
        ("disposition", "answered", Disposition.parse, Disposition.ANSWERED, "ANSWERED"),
    ):
        codes, values, failures = _codes(_text(table, name), n, parse, default, common)
        for k, (raw, error) in enumerate(failures):
            expected = getattr(error, "expected", str(error))
            _fail(cols, codes == -2 - k, name, expected, raw)
        codes = np.maximum(codes, 0)
        if target == "direction":
            lookup = np.array([_DIRECTIONS.index(v) for v in values], np.int8)
            cols.direction = lookup[codes]
        else:
            lookup_b = np.array([v is Disposition.ANSWERED for v in values], bool)
            cols.answered = lookup_b[codes]

    # Seconds: billsec (or derived from answered_at/ended_at), duration, and their order.
    billsec = _seconds(table, "billsec")
    duration = _seconds(table, "duration")
    answered_at = stamps.get("answered_at")
    ended_at = stamps.get("ended_at")
    if billsec is not None:
        values_b, null_b = billsec
    else:
        values_b, null_b = np.zeros(n, np.int64), np.ones(n, bool)
    if null_b.any() and answered_at is not None and ended_at is not None:
        derive = null_b & ~answered_at[1] & ~ended_at[1]
        diff = ended_at[0] - answered_at[0]
        values_b = np.where(derive, np.maximum(0, -np.floor_divide(-diff, unit)), values_b)
    cols.billsec = values_b
    _fail(cols, values_b < 0, "billsec", "an int >= 0", lambda i: int(values_b[i]))
    if duration is not None:
        values_d, null_d = duration
        _fail(cols, ~null_d & (values_d < 0), "duration", "an int >= 0", lambda i: int(values_d[i]))
        _fail(
            cols,
            ~null_d & (values_b > values_d),
            "billsec",
            "at most duration",
            lambda i: int(values_b[i]),
        )
    if answered_at is not None:
        early = ~answered_at[1] & ~started_null & (answered_at[0] < started)
        _fail(cols, early, "answered_at", "not before started_at", stamp("answered_at"))
    if ended_at is not None:
        if answered_at is not None:
            has_answer = ~answered_at[1]
            earliest = np.where(has_answer, answered_at[0], started)
        else:
            has_answer = np.zeros(n, bool)
            earliest = started
        early = ~ended_at[1] & (has_answer | ~started_null) & (ended_at[0] < earliest)
        _fail(cols, early, "ended_at", "not before answered_at (or started_at)", stamp("ended_at"))

    tenant = _text(table, "tenant")
    if tenant is not None:
        _fail(cols, _too_long(tenant, 255), "tenant", "at most 255 characters", cell(tenant))
        codes, tenants, _ = _codes(tenant, n, lambda v: v, None)
        cols.tenant_codes, cols.tenants = codes, tenants
    return cols


# -- compiling a plan ---------------------------------------------------------------------------


def _refuse(what: str) -> ValidationError:
    return ValidationError(
        "plan",
        what,
        "a plan whose every feature rate_table vectorises; it never rates such a plan "
        "differently from rate(), so it refuses it: rate these CDRs with Rater.rate_many",
    )


def _unknown_fields(cls: type) -> list[attrs.Attribute[Any]]:
    known = {Rate: _KNOWN_RATE_FIELDS, Tier: _KNOWN_TIER_FIELDS, RatePlan: _KNOWN_PLAN_FIELDS}[cls]
    return [f for f in attrs.fields(cls) if f.name not in known and not f.name.startswith("_")]


def _check_unknown(obj: Any, fields: list[attrs.Attribute[Any]]) -> None:
    for field in fields:
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]  # a class at runtime
            default = cast(Any, default).factory()
        if default is attrs.NOTHING or getattr(obj, field.name) != default:
            raise _refuse(f"{type(obj).__name__}.{field.name} = {getattr(obj, field.name)!r}")


def _micros_us(dt: datetime | None, none: int) -> int:
    if dt is None:
        return none
    return max(_I64_MIN, min(_I64_MAX, (dt - _EPOCH) // _MICRO))


class _Trie:
    """Longest-prefix lookup for one direction of one plan, over numpy arrays."""

    def __init__(self, groups: list[tuple[str, list[int]]], rates: list[Rate]) -> None:
        # A label is a prefix of this direction with at least one active rate.
        self.labels = [prefix for prefix, _ in groups]
        count = len(groups)
        self.plen = np.array([len(p) for p in self.labels], np.int64)
        longest = int(self.plen.max()) if count else 0
        self.root_digits = root = min(_ROOT_DIGITS, longest)
        self.root_label = np.full(10**root, -1, np.int32)
        self.root_child = np.full(10**root, -1, np.int32)
        # Leaf-pushed: every entry holds the longest prefix matched so far (inherited
        # from above), so a lookup reads one (label, child) pair per digit.
        deep: list[int] = []  # flat pairs: label, child, label, child, ... 10 entries a node
        order = sorted(range(count), key=lambda i: len(self.labels[i]))
        for label in order:
            prefix = self.labels[label]
            size = len(prefix)
            if size <= root:
                span = 10 ** (root - size)
                start = (int(prefix) if prefix else 0) * span
                self.root_label[start : start + span] = label
                continue
            head = int(prefix[:root]) if root else 0
            node = int(self.root_child[head])
            if node < 0:
                node = len(deep) // 20
                deep.extend([int(self.root_label[head]), -1] * 10)
                self.root_child[head] = node
            for position in range(root, size - 1):
                entry = node * 10 + int(prefix[position])
                nxt = deep[2 * entry + 1]
                if nxt < 0:
                    nxt = len(deep) // 20
                    deep.extend([deep[2 * entry], -1] * 10)
                    deep[2 * entry + 1] = nxt
                node = nxt
            deep[2 * (node * 10 + int(prefix[-1]))] = label
        self.root = np.ascontiguousarray(np.stack([self.root_label, self.root_child], axis=1))
        self.deep = np.array(deep or [-1, -1], np.int32).reshape(-1, 2)
        where = {p: i for i, p in enumerate(self.labels)}
        parent = []
        for prefix in self.labels:
            found = -1
            for cut in range(len(prefix) - 1, -1, -1):
                found = where.get(prefix[:cut], -1)
                if found >= 0:
                    break
            parent.append(found)
        self.parent = np.array(parent or [-1], np.int32)
        # Buckets: the rates of a prefix in plan order (priority first); a bucket of one
        # rate without a validity window is "simple" and needs no time comparison.
        simple, start, size_ = [], [], []
        members: list[int] = []
        for _prefix, group in groups:
            only = rates[group[0]]
            plain = len(group) == 1 and only.valid_from is None and only.valid_until is None
            simple.append(group[0] if plain else -1)
            start.append(len(members))
            size_.append(len(group))
            members.extend(group)
        self.simple = np.array(simple or [-1], np.int32)
        self.bucket_start = np.array(start or [0], np.int64)
        self.bucket_size = np.array(size_ or [0], np.int64)
        self.members = np.array(members or [0], np.int32)
        self.max_bucket = max(size_, default=0)
        self.all_simple = all(v >= 0 for v in simple)
        self.longest = longest

    def find(
        self,
        numbers: _Numbers,
        rows: NDArray | None,
        at_us: NDArray,
        valid_from: NDArray,
        valid_until: NDArray,
    ) -> NDArray:
        """The rate (index into the plan's rates) for each number, or -1."""
        keys = numbers.keys if rows is None else numbers.keys[rows]
        lengths = numbers.lengths if rows is None else numbers.lengths[rows]
        n = keys.shape[0]
        if self.root_digits:
            head = (keys // _POW10[_WIDTH - self.root_digits]).astype(np.intp)
            pair = self.root[head]
            label, child = pair[:, 0], pair[:, 1]
        else:
            label = np.full(n, self.root_label[0], np.int32)
            child = np.full(n, self.root_child[0], np.int32)
        # Deeper levels: one digit each, read from the number's bytes.
        deep = np.flatnonzero(child >= 0)
        if deep.size:
            label = label.copy()
            data = numbers.data
            starts = numbers.starts if rows is None else numbers.starts[rows]
            start, size = starts[deep], lengths[deep]
            base = child[deep].astype(np.int64) * 10 - 48  # entry = child * 10 + digit
            position = self.root_digits
            check = int(size.min()) < self.longest
            while deep.size:
                if check:
                    fits = size > position
                    if not fits.all():
                        deep, start, size, base = deep[fits], start[fits], size[fits], base[fits]
                        if not deep.size:
                            break
                pair = self.deep[base + data[start + position]]
                label[deep] = pair[:, 0]
                nxt = pair[:, 1]
                more = nxt >= 0
                if not more.all():
                    deep, start, size, nxt = deep[more], start[more], size[more], nxt[more]
                base = nxt.astype(np.int64) * 10 - 48
                position += 1
        if self.all_simple and (not n or int(lengths.min()) >= self.longest):
            # The common case: one rate per prefix, no window, no number shorter than a
            # prefix: the label is the answer.
            return np.where(label >= 0, self.simple[np.maximum(label, 0)], -1)
        rate = np.full(n, -1, np.int32)
        rows_ = np.flatnonzero(label >= 0)
        labels = label[rows_]
        while rows_.size:
            # A number shorter than the prefix found (its key is padded with zeros):
            # the answer is the longest ancestor that fits.
            while True:
                long_ = self.plen[labels] > lengths[rows_]
                if not long_.any():
                    break
                labels = np.where(long_, self.parent[labels], labels)
                keep = labels >= 0
                rows_, labels = rows_[keep], labels[keep]
            if not rows_.size:
                break
            direct = self.simple[labels]
            done = direct >= 0
            rate[rows_[done]] = direct[done]
            rows_, labels = rows_[~done], labels[~done]
            if not rows_.size:
                break
            # Buckets with several rates or a validity window: the first in force wins.
            chosen = np.full(rows_.size, -1, np.int32)
            first = self.bucket_start[labels]
            count = self.bucket_size[labels]
            at = at_us[rows_]
            for j in range(self.max_bucket):
                open_ = np.flatnonzero((chosen < 0) & (count > j))
                if not open_.size:
                    break
                member = self.members[first[open_] + j]
                ok = (valid_from[member] <= at[open_]) & (at[open_] < valid_until[member])
                chosen[open_[ok]] = member[ok]
            got = chosen >= 0
            rate[rows_[got]] = chosen[got]
            # No rate of this prefix in force: a shorter prefix may have one.
            rows_, labels = rows_[~got], self.parent[labels[~got]]
            keep = labels >= 0
            rows_, labels = rows_[keep], labels[keep]
        return rate


class _Compiled:
    """A plan as numpy arrays: its rates' numbers and one trie per direction."""

    def __init__(self, plan: RatePlan) -> None:
        fields = _unknown_fields(RatePlan)
        if fields:
            _check_unknown(plan, fields)
        rate_fields, tier_fields = _unknown_fields(Rate), _unknown_fields(Tier)
        self.currency = plan.currency
        self.rounding = plan.rounding
        self.quantum = plan.quantum_micros
        self.access = tuple(plan.access_prefixes)
        rates: list[Rate] = []
        groups: dict[Direction, list[tuple[str, list[int]]]] = {d: [] for d in _DIRECTIONS}
        directions: set[Direction] = set()
        last: tuple[str, Direction] | None = None
        for rate in plan.rates:  # sorted by (prefix, direction, -priority, ...)
            directions.add(rate.direction)
            if rate.status is not RateStatus.ACTIVE:
                continue
            if rate_fields:
                _check_unknown(rate, rate_fields)
            if tier_fields:
                for tier in rate.tiers:
                    _check_unknown(tier, tier_fields)
            if len(rate.prefix) > _WIDTH:
                raise _refuse(f"prefix {rate.prefix!r} is longer than {_WIDTH} digits")
            key = (rate.prefix, rate.direction)
            if key != last:
                groups[rate.direction].append((rate.prefix, [len(rates)]))
                last = key
            else:
                groups[rate.direction][-1][1].append(len(rates))
            rates.append(rate)
        self.rates = rates
        unique: dict[str, int] = {}
        self.prefix_code = np.array(
            [unique.setdefault(r.prefix, len(unique)) for r in rates] or [0], np.int32
        )
        self.prefixes = pa.array(list(unique) or [""], pa.string())
        self.tries = {
            _DIRECTIONS.index(d): _Trie(groups[d], rates) for d in _DIRECTIONS if d in directions
        }

        # Per rate, packed for one gather per row: its price per minute, the longest
        # billsec whose exact sum surely fits in int64 (-1: always use Python ints), and
        # its "shape" (everything else, shared by many rates in a real deck).
        shapes: dict[tuple[Any, ...], int] = {}
        packed = np.zeros((max(len(rates), 1), 3), np.int64)
        tier_rows: list[tuple[int, Rate]] = []
        for i, rate in enumerate(rates):
            prices = [rate.per_minute_micros] + [t.per_minute_micros for t in rate.tiers]
            steps = [rate.initial_seconds, rate.increment_seconds] + [
                t.increment_seconds for t in rate.tiers
            ]
            numbers = [
                *prices,
                *steps,
                rate.connection_fee_micros,
                rate.minimum_charge_micros,
                rate.grace_seconds,
                rate.maximum_charge_micros or 0,
            ]
            numbers += [t.after_seconds for t in rate.tiers]
            if max(numbers) > 2**53 or len(rate.tiers) > 64:
                limit = -1
            else:
                room = _SAFE_INT - rate.connection_fee_micros * 60
                limit = max(-1, room // max(*prices, 1) - max(steps))
            shape = (
                rate.initial_seconds if limit >= 0 else 0,
                rate.increment_seconds if limit >= 0 else 1,
                rate.grace_seconds if limit >= 0 else 0,
                rate.connection_fee_micros if limit >= 0 else 0,
                rate.minimum_charge_micros if limit >= 0 else 0,
                (-1 if rate.maximum_charge_micros is None else rate.maximum_charge_micros)
                if limit >= 0
                else -1,
                -1 - i if rate.tiers and limit >= 0 else 0,  # each tiered rate its own shape
            )
            code = shapes.setdefault(shape, len(shapes))
            packed[i] = (rate.per_minute_micros if limit >= 0 else 0, limit, code)
            if rate.tiers and limit >= 0:
                tier_rows.append((code, rate))
        self.packed = packed
        table = np.array(list(shapes) or [(0, 1, 0, 0, 0, -1, 0)], np.int64)
        (self.initial, self.increment, self.grace, self.fee, self.minimum, self.maximum) = (
            np.ascontiguousarray(table[:, k]) for k in range(6)
        )
        self.tiered = table[:, 6] != 0
        self.any_grace = bool((self.grace > 0).any())
        self.any_minimum = bool((self.minimum > 0).any())
        self.any_maximum = bool((self.maximum >= 0).any())
        self.any_fee = bool((self.fee > 0).any())
        self.any_tiers = bool(tier_rows)
        # Tier tables per shape: column 0 is the rate's own price and increment; bounds
        # are padded with int64 max, so "the last tier with after_seconds <= p" is a count.
        tiers = max((len(r.tiers) for _, r in tier_rows), default=0)
        self.bounds = np.full((len(shapes), tiers + 1), _I64_MAX, np.int64)
        self.prices = np.zeros((len(shapes), tiers + 1), np.int64)
        self.steps = np.ones((len(shapes), tiers + 1), np.int64)
        for code, rate in tier_rows:
            self.prices[code, 0] = rate.per_minute_micros
            self.steps[code, 0] = rate.increment_seconds
            for k, tier in enumerate(rate.tiers):
                self.bounds[code, k] = tier.after_seconds
                self.prices[code, k + 1] = tier.per_minute_micros
                self.steps[code, k + 1] = tier.increment_seconds
        self.valid_from = np.array(
            [_micros_us(r.valid_from, _I64_MIN) for r in rates] or [0], np.int64
        )
        self.valid_until = np.array(
            [_micros_us(r.valid_until, _I64_MAX) for r in rates] or [0], np.int64
        )
        # The rounding divides the exact sum (x 60) by 60 x quantum; past 2**53 the
        # plan's calls are priced with Python ints.
        self.python_only = self.quantum > 2**53 // 60


_CACHE: WeakKeyDictionary[RatePlan, _Compiled] = WeakKeyDictionary()


def _compiled(plan: RatePlan) -> _Compiled:
    # RatePlan is frozen and hashes by identity: a compiled plan stays valid for its life.
    found = _CACHE.get(plan)
    if found is None:
        found = _CACHE[plan] = _Compiled(plan)
    return found


# -- rating ---------------------------------------------------------------------------------------


def _chains(value: Any) -> tuple[list[tuple[RatePlan, ...]], Callable[[str | None], int]]:
    """The distinct plan chains and a function from a tenant to its chain's index."""
    if isinstance(value, Rater):
        chains: list[tuple[RatePlan, ...]] = []
        index: dict[tuple[int, ...], int] = {}
        rater = value

        def tenant_of(tenant: str | None) -> int:
            chain = rater.chain(tenant)
            key = tuple(id(p) for p in chain)
            if key not in index:
                index[key] = len(chains)
                chains.append(chain)
            return index[key]

        return chains, tenant_of
    if value is None:
        single: tuple[RatePlan, ...] = ()
    elif isinstance(value, RatePlan):
        single = (value,)
    elif isinstance(value, Sequence) and all(isinstance(p, RatePlan) for p in value):
        single = tuple(value)
    else:
        raise ValidationError(
            "plan_or_rater", value, "a RatePlan, a sequence of RatePlans, a Rater or None"
        )
    return [single], lambda _tenant: 0


@attrs.define
class _Numbers:
    keys: NDArray  # uint64: the first 18 digits, right-padded with zeros
    lengths: NDArray  # int64 digits of the normalised number
    valid: NDArray  # bool
    starts: NDArray  # int64 offset of each number's first byte in data
    data: NDArray  # uint8: the normalised numbers' bytes (ASCII digits where valid)


def _normalise(numbers: pa.Array, access: tuple[str, ...]) -> _Numbers:
    """plan.normalise_number for a whole column, then numeric keys for the lookup."""
    n = len(numbers)
    ascii_ = pc.string_is_ascii(numbers)
    plain = pc.and_(ascii_, pc.utf8_is_digit(numbers))
    for prefix in access:
        plain = pc.and_(plain, pc.invert(pc.starts_with(numbers, prefix)))
    plain_np = _bool(plain)
    digits = numbers
    if not plain_np.all():
        work = np.flatnonzero(~plain_np & _bool(numbers.is_valid()))
        sub = numbers.take(pa.array(work))
        sub = pc.replace_substring_regex(sub, _STRIP, "")
        sub = pc.if_else(pc.starts_with(sub, "+"), pc.utf8_slice_codeunits(sub, 1), sub)
        done = pa.array(np.zeros(len(sub), bool))
        for prefix in access:
            hit = pc.and_(pc.starts_with(sub, prefix), pc.invert(done))
            sub = pc.if_else(hit, pc.utf8_slice_codeunits(sub, len(prefix)), sub)
            done = pc.or_(done, hit)
        mask = np.zeros(n, bool)
        mask[work] = True
        digits = pc.replace_with_mask(numbers, pa.array(mask), sub)
        valid = _bool(pc.and_(pc.string_is_ascii(digits), pc.utf8_is_digit(digits)))
    else:
        valid = plain_np
    lengths = np.asarray(pc.fill_null(pc.binary_length(digits), 0).to_numpy(), np.int64)
    short = valid & (lengths <= _WIDTH)
    if short.all():
        ints = digits.cast(pa.uint64())
    else:
        ints = pc.if_else(pa.array(short), digits, "0").cast(pa.uint64())
    keys = np.asarray(ints.to_numpy(zero_copy_only=False), np.uint64)
    keys = keys * _POW10[_WIDTH - np.minimum(lengths, _WIDTH)]
    long_ = np.flatnonzero(valid & (lengths > _WIDTH))
    if long_.size:
        heads = pc.utf8_slice_codeunits(digits.take(pa.array(long_)), 0, _WIDTH)
        keys[long_] = np.asarray(heads.cast(pa.uint64()).to_numpy(), np.uint64)
    keys[~valid] = 0
    digits = digits.cast(pa.large_string())
    buffers = digits.buffers()
    offsets = np.frombuffer(buffers[1], np.int64)[digits.offset : digits.offset + n]
    data = np.frombuffer(buffers[2], np.uint8) if buffers[2] is not None else np.zeros(1, np.uint8)
    if not data.size:
        data = np.zeros(1, np.uint8)
    return _Numbers(keys, lengths, valid, offsets, data)


@attrs.define
class _Result:
    n: int
    status: NDArray
    reason: NDArray
    cost: NDArray
    cost_null: NDArray
    billed: NDArray
    currency: NDArray  # int32 into currencies, -1 null
    currencies: list[str]
    prefix: NDArray  # int32 into the concatenated prefixes of the compiled plans, -1 null
    prefixes: list[pa.Array]
    error_rows: NDArray
    error_details: list[tuple[str, Any, str]]

    def to_arrow(self) -> pa.Table:
        status = _dictionary(self.status, pa.array(_STATUS, pa.string()))
        reason = _dictionary(self.reason, pa.array(_REASON, pa.string()))
        currency = _dictionary(self.currency, pa.array(self.currencies or [""], pa.string()))
        codes = self.prefix
        if len(self.prefixes) > 1:  # several plans: one dictionary without repeats
            joined = pa.concat_arrays(self.prefixes)
            unique = pc.unique(joined)
            remap = np.asarray(pc.index_in(joined, unique).to_numpy(), np.int32)
            codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)
            prefixes = unique
        else:
            prefixes = self.prefixes[0] if self.prefixes else pa.array([""], pa.string())
        prefix = _dictionary(codes, prefixes)
        distinct: dict[str, int] = {}
        error_codes = np.full(self.n, -1, np.int32)
        for row, detail in zip(self.error_rows.tolist(), self.error_details, strict=True):
            error_codes[row] = distinct.setdefault(str(ValidationError(*detail)), len(distinct))
        error = _dictionary(error_codes, pa.array(list(distinct) or [""], pa.string()))
        bad = self.status == _ERROR
        return pa.table(
            {
                "cost_micros": pa.array(self.cost, pa.int64(), mask=self.cost_null),
                "currency": currency,
                "billed_seconds": pa.array(self.billed, pa.int64(), mask=bad),
                "status": status,
                "reason": reason,
                "prefix": prefix,
                "error": error,
            }
        )


def _dictionary(codes: NDArray, dictionary: pa.Array) -> pa.DictionaryArray:
    """A dictionary-encoded string column from int codes (-1 is null)."""
    indices = pa.array(codes.astype(np.int32, copy=False), pa.int32(), mask=codes < 0)
    return pa.DictionaryArray.from_arrays(indices, dictionary)


def _rate_columns(
    cols: _Columns, chains: list[tuple[RatePlan, ...]], chain_of: Callable[[str | None], int]
) -> _Result:
    n = cols.n
    status = np.full(n, _UNRATED, np.int8)
    reason = np.full(n, -1, np.int8)
    cost = np.zeros(n, np.int64)
    cost_null = np.zeros(n, bool)
    billed = np.zeros(n, np.int64)
    currency = np.full(n, -1, np.int32)
    prefix = np.full(n, -1, np.int32)
    currencies: list[str] = []
    prefixes: list[pa.Array] = []
    prefix_offset: dict[int, int] = {}
    billable = cols.answered & (cols.billsec > 0)
    numbers_cache: dict[tuple[str, ...], _Numbers] = {}

    def currency_code(code: str) -> int:
        if code not in currencies:
            currencies.append(code)
        return currencies.index(code)

    tenant_chain = np.array([chain_of(t) for t in cols.tenants], np.int32)
    row_chain = tenant_chain[cols.tenant_codes]
    good = ~cols.bad
    for chain_index, chain in enumerate(chains):
        if len(chains) == 1:
            rows = np.flatnonzero(good) if not good.all() else None
        else:
            rows = np.flatnonzero(good & (row_chain == chain_index))
            if not rows.size:
                continue

        def take(values: NDArray, rows: NDArray | None = rows) -> NDArray:
            return values if rows is None else values[rows]

        m = n if rows is None else rows.size
        direction = take(cols.direction)
        found_plan = np.full(m, -1, np.int32)
        found_rate = np.full(m, -1, np.int32)
        priced = np.zeros(m, bool)  # some plan prices calls of this direction
        number_ok = np.zeros(m, bool)
        for plan_index, plan in enumerate(chain):
            compiled = _compiled(plan)
            numbers = numbers_cache.get(compiled.access)
            if numbers is None:
                numbers = numbers_cache[compiled.access] = _normalise(cols.numbers, compiled.access)
            valid = take(numbers.valid)
            at = take(cols.started_us)
            for code, trie in compiled.tries.items():
                if len(compiled.tries) == 1 and (direction == code).all():
                    sel = np.flatnonzero(found_rate < 0) if plan_index else None
                else:
                    sel = np.flatnonzero((direction == code) & (found_rate < 0))
                if sel is not None and not sel.size:
                    continue

                def pick(values: NDArray, sel: NDArray | None = sel) -> NDArray:
                    return values if sel is None else values[sel]

                priced[sel if sel is not None else slice(None)] = True
                ok = pick(valid)
                number_ok[sel if sel is not None else slice(None)] |= ok
                subset = sel if rows is None else rows if sel is None else rows[sel]
                found = trie.find(
                    numbers, subset, pick(at), compiled.valid_from, compiled.valid_until
                )
                if not ok.all():
                    found = np.where(ok, found, -1)
                hit = found >= 0
                if sel is None:
                    found_rate = np.where(hit, found, found_rate)
                    found_plan = np.where(hit, np.int32(plan_index), found_plan)
                else:
                    target = sel[hit]
                    found_rate[target] = found[hit]
                    found_plan[target] = plan_index
        bill = take(billable)
        out_rows = np.arange(n) if rows is None else rows
        # Found in a plan: _price_call.
        for plan_index, plan in enumerate(chain):
            compiled = _compiled(plan)
            mine = found_plan == plan_index
            everyone = rows is None and bool(mine.all())
            here = None if everyone else np.flatnonzero(mine)
            if here is not None and not here.size:
                continue
            code = currency_code(compiled.currency)
            if id(compiled) not in prefix_offset:
                prefix_offset[id(compiled)] = sum(len(p) for p in prefixes)
                prefixes.append(compiled.prefixes)
            offset = prefix_offset[id(compiled)]
            if here is None:  # every row, in order: whole-array operations
                currency[:] = code
                prefix = compiled.prefix_code[found_rate] + np.int32(offset)
                status = np.where(bill, np.int8(_RATED), np.int8(_UNANSWERED))
                payer_rows = np.flatnonzero(bill)
                rate_ids = found_rate[payer_rows]
            else:
                target = out_rows[here]
                currency[target] = code
                prefix[target] = compiled.prefix_code[found_rate[here]] + np.int32(offset)
                status[target] = _UNANSWERED
                paying = bill[here]
                payer_rows = target[paying]
                rate_ids = found_rate[here][paying]
                status[payer_rows] = _RATED
            if payer_rows.size:
                c, b = _price(compiled, rate_ids, cols.billsec[payer_rows], payer_rows)
                cost[payer_rows] = c
                billed[payer_rows] = b
        # Not found: the end of _rate_chain.
        missing = np.flatnonzero(found_plan < 0)
        if not missing.size:
            continue
        target = out_rows[missing]
        if chain:
            currency[target] = currency_code(chain[0].currency)
        paying = bill[missing]
        status[target[~paying]] = _UNANSWERED
        target, miss_priced, miss_ok = (
            target[paying],
            priced[missing][paying],
            number_ok[missing][paying],
        )
        if not chain:
            status[target] = _UNRATED
            reason[target] = _NO_PLAN
            cost_null[target] = True
            continue
        status[target[~miss_priced]] = _NOT_RATED
        unrated = target[miss_priced]
        status[unrated] = _UNRATED
        reason[unrated] = np.where(miss_ok[miss_priced], _NO_RATE, _INVALID)
        cost_null[unrated] = True
    error_rows = np.array(sorted(cols.errors), np.int64)
    status[error_rows] = _ERROR
    reason[error_rows] = -1
    cost_null[error_rows] = True
    currency[error_rows] = -1
    prefix[error_rows] = -1
    billed[error_rows] = 0
    return _Result(
        n,
        status,
        reason,
        cost,
        cost_null,
        billed,
        currency,
        currencies,
        prefix,
        prefixes,
        error_rows,
        [cols.errors[int(i)] for i in error_rows],
    )


def _price(
    compiled: _Compiled, rate: NDArray, billsec: NDArray, positions: NDArray
) -> tuple[NDArray, NDArray]:
    """Cost and billed seconds of billable calls (rating-rules §3-4), exactly."""
    m = rate.size
    packed = compiled.packed[rate]
    per_minute, limit, shape = packed[:, 0], packed[:, 1], packed[:, 2]
    if compiled.any_grace:
        grace = billsec <= compiled.grace[shape]
        slow = ~grace & (billsec > limit)
    else:  # billable calls have billsec >= 1
        grace = None
        slow = billsec > limit
    if compiled.python_only:
        slow = np.ones(m, bool) if grace is None else ~grace
    cost = np.zeros(m, np.int64)
    billed = np.zeros(m, np.int64)
    if grace is None and not slow.any():
        fast: NDArray | None = None  # every row
    else:
        fast = ~slow if grace is None else ~grace & ~slow
    if fast is None or fast.any():
        b = billsec if fast is None else billsec[fast]
        p = per_minute if fast is None else per_minute[fast]
        k = shape if fast is None else shape[fast]
        numerator, seconds = _exact(compiled, k, p, b)
        den = np.int64(60 * compiled.quantum)
        mode = compiled.rounding
        # numerator >= 0 and < 2**61, so these stay exact in int64.
        if mode is Rounding.UP:
            q = (numerator + (den - 1)) // den
        elif mode is Rounding.DOWN:
            q = numerator // den
        elif mode is Rounding.HALF_UP:
            q = (2 * numerator + den) // (2 * den)
        else:
            q, rest = np.divmod(numerator, den)
            q += (2 * rest > den) | ((2 * rest == den) & (q % 2 == 1))
        value = q * compiled.quantum if compiled.quantum != 1 else q
        if compiled.any_minimum:
            value = np.maximum(value, compiled.minimum[k])
        if compiled.any_maximum:
            top = compiled.maximum[k]
            value = np.where(top >= 0, np.minimum(value, top), value)
        if fast is None:
            cost, billed = value, seconds
        else:
            cost[fast] = value
            billed[fast] = seconds
    for i in np.flatnonzero(slow).tolist():
        found = compiled.rates[int(rate[i])]
        seconds_i, numerator_i = price(found, int(billsec[i]))
        value_i = _round_ratio(numerator_i, 60 * compiled.quantum, compiled.rounding)
        value_i *= compiled.quantum
        value_i = max(value_i, found.minimum_charge_micros)
        if found.maximum_charge_micros is not None:
            value_i = min(value_i, found.maximum_charge_micros)
        if value_i > _I64_MAX or seconds_i > _I64_MAX:
            raise ValidationError(
                f"row {int(positions[i])}: cost_micros",
                value_i,
                "a cost that fits in an int64 column (rate this call with rate())",
            )
        cost[i] = value_i
        billed[i] = seconds_i
    return cost, billed


def _exact(
    compiled: _Compiled, shape: NDArray, per_minute: NDArray, billsec: NDArray
) -> tuple[NDArray, NDArray]:
    """(exact sum x 60, billed seconds) in int64, for rows known not to overflow."""
    initial = compiled.initial[shape]
    step = compiled.increment[shape]
    billed = np.where(
        billsec <= initial, initial, initial - np.floor_divide(initial - billsec, step) * step
    )
    numerator = billed * per_minute
    if compiled.any_fee:
        numerator += compiled.fee[shape] * 60
    if compiled.any_tiers:
        rows = np.flatnonzero(compiled.tiered[shape])
        if rows.size:
            k, b = shape[rows], billsec[rows]
            first = np.where(compiled.initial[k] > 0, compiled.initial[k], compiled.increment[k])
            total = compiled.fee[k] * 60 + first * compiled.prices[k, 0]
            position = first.copy()
            active = np.flatnonzero(position < b)
            while active.size:
                ka, at = k[active], position[active]
                bounds = compiled.bounds[ka]
                tier = (bounds <= at[:, None]).sum(axis=1)
                limit = np.minimum(b[active], bounds[np.arange(active.size), tier])
                length = compiled.steps[ka, tier]
                count = -np.floor_divide(at - limit, length)
                total[active] += count * length * compiled.prices[ka, tier]
                position[active] = at + count * length
                active = active[position[active] < b[active]]
            numerator[rows] = total
            billed[rows] = position
    return numerator, billed
