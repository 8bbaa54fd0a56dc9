"""Reading a table of CDRs into checked numpy columns (private)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import attrs
import numpy as np
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.compute as pc  # type: ignore[import-untyped]  # (same)

from cdrrating import _rules
from cdrrating._validate import MAX_SECONDS
from cdrrating.cdr import MAX_NUMBER_LEN, Direction, Disposition
from cdrrating.errors import ValidationError

NDArray = Any

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

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_DIRECTIONS = (Direction.OUTBOUND, Direction.INBOUND, Direction.INTERNAL)
_I64_MAX = np.iinfo(np.int64).max
_WIDTH = 18  # digits of a number that the vectorised lookup keys on
_POW10 = np.array([10**k for k in range(_WIDTH + 1)], dtype=np.int64)
_STRIP = r"[ \-.()\t]"  # what _rules.normalise_number removes (its FORMATTING)
_FEW_ROWS = 64  # columns of at most this many rows are read in Python where that is faster

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
    answered_us: NDArray  # int64 µs: the answer time, or the start where none is given
    tenant_codes: NDArray  # int32 index into tenants
    tenants: list[str | None]
    bad: NDArray  # bool
    errors: dict[int, tuple[str, Any, str]]  # position -> (field, value, expected)
    # _strings(numbers), read once for the length check and the normalisation.
    number_strings: tuple[NDArray, NDArray, NDArray] | None = None


def _nulls(array: pa.Array) -> NDArray | None:
    return _bool(array.is_null()) if array.null_count else None


def _too_long(array: pa.Array, limit: int, lengths: NDArray | None = None) -> NDArray | None:
    """Rows whose text is longer than ``limit`` characters (bytes are checked first)."""
    if lengths is None:
        lengths = _strings(array)[1]
    if not lengths.size or int(lengths.max()) <= limit:
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
    # Not ``name in table.column_names``: that builds a list, a cost of every call.
    found = table.schema.get_all_field_indices(name)
    if not found:
        return None
    column = table.column(found[0] if len(found) == 1 else name)  # (twice: raises)
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
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return array  # read in place (_strings): a copy costs more than the checks
    if pa.types.is_integer(kind) or pa.types.is_string_view(kind):
        return array.cast(pa.large_string())
    raise ValidationError(name, f"a column of type {kind}", "a column of text (or integers)")


def _strings(array: pa.Array) -> tuple[NDArray, NDArray, NDArray]:
    """A string or large_string array's start offsets and byte lengths (int64) and its
    bytes, read in place. A null's length is whatever its offsets say: mask nulls."""
    n = len(array)
    buffers = array.buffers()
    if not n or buffers[1] is None:
        return np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(0, np.uint8)
    width = np.int64 if pa.types.is_large_string(array.type) else np.int32
    offsets: NDArray = np.frombuffer(buffers[1], width)[array.offset : array.offset + n + 1]
    offsets = offsets.astype(np.int64)
    data = np.zeros(0, np.uint8) if buffers[2] is None else np.frombuffer(buffers[2], np.uint8)
    return offsets[:-1], offsets[1:] - offsets[:-1], data


def _seconds(table: pa.Table, name: str) -> tuple[NDArray, NDArray] | None:
    """An integer column as (int64 values with nulls as 0, null mask)."""
    array = _column(table, name)
    if array is None:
        return None
    kind = array.type
    n = len(array)
    if pa.types.is_null(kind):
        return np.zeros(n, np.int64), np.ones(n, bool)
    if not pa.types.is_integer(kind):
        hint = " (pandas: .astype('Int64') keeps nulls)" if pa.types.is_floating(kind) else ""
        raise ValidationError(
            name, f"a column of type {kind}", "whole seconds in an integer column" + hint
        )
    if kind == pa.int64() and not array.null_count:
        # Read in place: the common column, and each cast or fill costs a call.
        values = np.frombuffer(array.buffers()[1], np.int64)[array.offset : array.offset + n]
        return values, np.zeros(n, bool)
    largest = pc.max(array).as_py() if kind == pa.uint64() else None
    if largest is not None and largest > _I64_MAX:
        raise ValidationError(name, largest, "seconds that fit in an int64")
    nulls = _bool(array.is_null())
    values = pc.fill_null(array.cast(pa.int64()), 0).to_numpy()
    return np.asarray(values, dtype=np.int64), nulls


def _timestamps(
    table: pa.Table, names: Sequence[str], assume_tz: str | None
) -> tuple[dict[str, tuple[NDArray, NDArray]], dict[str, dict[int, tuple[Any, str]]]]:
    """Timestamp columns as int64 microseconds since the epoch (floor), with null masks,
    and per column the rows whose cell is not a usable instant (row: value, expected).

    Accepted: timestamp columns of any unit in any zone; naive timestamp columns and
    ISO 8601 text without an offset only with ``assume_tz`` (a wall-clock time that the
    zone skips or repeats is a bad row, never a guess); ISO 8601 text with an offset.
    """
    out: dict[str, tuple[NDArray, NDArray]] = {}
    bad: dict[str, dict[int, tuple[Any, str]]] = {}
    for name in names:
        array = _column(table, name)
        if array is None:
            continue
        kind = array.type
        if pa.types.is_dictionary(kind):
            array = array.cast(kind.value_type)
            kind = array.type
        problems: dict[int, tuple[Any, str]] = {}
        if pa.types.is_timestamp(kind) and kind.tz is not None and kind.unit in ("us", "ns"):
            # Aware: the values are UTC already; read them in place (floored to µs).
            n = len(array)
            raw = np.frombuffer(array.buffers()[1], np.int64)[array.offset : array.offset + n]
            values = raw if kind.unit == "us" else np.floor_divide(raw, 1000)
            nulls = _nulls(array)
            if nulls is None:
                nulls = np.zeros(n, bool)
            else:
                values = np.where(nulls, 0, values)
            out[name] = (values, nulls)
            bad[name] = problems
            continue
        if pa.types.is_null(kind):
            array = pa.nulls(len(array), pa.timestamp("us", tz="UTC"))
        elif pa.types.is_string(kind) or pa.types.is_large_string(kind):
            array = _text_stamps(array, assume_tz, problems)
        elif pa.types.is_timestamp(kind) and kind.tz is None:
            if assume_tz is None:
                raise ValidationError(
                    name,
                    "naive timestamps",
                    "timezone-aware timestamps, or assume_tz= naming the zone they were "
                    "written in (naive ones are ambiguous)",
                )
            array = _localise(array.cast(pa.timestamp("us")), assume_tz, problems)
        elif not pa.types.is_timestamp(kind):
            raise ValidationError(
                name,
                f"a column of type {kind}",
                "timestamps: a timestamp column, or ISO 8601 text",
            )
        try:
            # Floor to microseconds, as a datetime holds them.
            converted = array.cast(pa.timestamp("us", tz="UTC"), safe=False)
        except pa.ArrowInvalid as error:  # pragma: no cover - every timestamp unit casts
            raise ValidationError(name, str(error), "timestamps") from None
        values = np.asarray(pc.fill_null(converted.cast(pa.int64()), 0).to_numpy(), np.int64)
        if pa.types.is_timestamp(kind) and kind.unit == "ns":
            raw = np.asarray(pc.fill_null(array.cast(pa.int64()), 0).to_numpy(), np.int64)
            values = np.floor_divide(raw, 1000)
        nulls = _bool(converted.is_null())
        for row in problems:
            nulls[row] = True
        out[name] = (values, nulls)
        bad[name] = problems
    return out, bad


def _text_stamps(array: pa.Array, assume_tz: str | None, problems: dict[int, Any]) -> pa.Array:
    """ISO 8601 text as UTC timestamps; a cell that is not one is recorded in problems."""
    try:
        return array.cast(pa.timestamp("us", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    # Some cells have no offset, or are not ISO 8601: read each distinct one.
    encoded = array.dictionary_encode()
    parsed: list[int | None] = []
    failed: dict[int, str] = {}
    zone = ZoneInfo(assume_tz) if assume_tz is not None else None
    for k, text in enumerate(encoded.dictionary.to_pylist()):
        try:
            at = datetime.fromisoformat(text.strip())
        except ValueError:
            parsed.append(None)
            failed[k] = "an ISO 8601 timestamp such as '2025-06-01T12:00:00+02:00'"
            continue
        if at.tzinfo is None:
            if zone is None:
                parsed.append(None)
                failed[k] = "an ISO 8601 timestamp with a zone offset (or give assume_tz=)"
                continue
            placed, why = _wall(at, zone)
            if placed is None:
                parsed.append(None)
                failed[k] = why
                continue
            at = placed
        parsed.append((at - _EPOCH) // _MICRO)
    indices = encoded.indices
    values = pa.array(parsed, pa.int64()).take(indices)
    if failed:
        codes = np.asarray(pc.fill_null(indices, -1).to_numpy(zero_copy_only=False), np.int64)
        dictionary = encoded.dictionary
        for k, why in failed.items():
            for row in np.flatnonzero(codes == k).tolist():
                problems[row] = (dictionary[k].as_py(), why)
    return values.cast(pa.timestamp("us", tz="UTC"))


def _localise(array: pa.Array, zone_name: str, problems: dict[int, Any]) -> pa.Array:
    """Naive wall-clock timestamps read in a zone; skipped or repeated times are problems."""
    try:
        return pc.assume_timezone(array, zone_name, ambiguous="raise", nonexistent="raise")
    except pa.ArrowInvalid:
        pass
    zone = ZoneInfo(zone_name)
    out: list[int | None] = []
    for row, value in enumerate(array.to_pylist()):
        if value is None:
            out.append(None)
            continue
        at, why = _wall(value, zone)
        if at is None:
            problems[row] = (value.isoformat(), why)
            out.append(None)
        else:
            out.append((at - _EPOCH) // _MICRO)
    return pa.array(out, pa.int64()).cast(pa.timestamp("us", tz="UTC"))


def _wall(naive: datetime, zone: ZoneInfo) -> tuple[datetime | None, str]:
    """A wall-clock time in a zone as an instant, or None and why it is not one."""
    first, second = naive.replace(tzinfo=zone), naive.replace(tzinfo=zone, fold=1)
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        return None, f"a time that exists in {zone.key} (the clocks skip it)"
    if first.utcoffset() != second.utcoffset():
        return None, f"a time that occurs once in {zone.key} (this one occurs twice)"
    return first, ""


def _all_equal(array: pa.Array, text: str) -> bool:
    """Whether every row holds ``text`` (no nulls): its bytes, repeated, are the column's."""
    raw = np.frombuffer(text.encode(), np.uint8)
    if not raw.size or not len(array) or array.null_count:
        return False
    starts, lengths, data = _strings(array)
    if not (lengths == raw.size).all():
        return False
    base = int(starts[0])
    used = data[base : base + raw.size * lengths.size]
    if raw.size == 8:  # "outbound", "ANSWERED": one word a row, no 2-D temporary
        return bool((used.view("<u8") == raw.view("<u8")[0]).all())
    return bool((used.reshape(-1, raw.size) == raw).all())


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
    if common is not None and _all_equal(array, common):
        # Often every row holds one canonical spelling: a compare of bytes, no hashing.
        # (Else one hashing pass over all rows costs less than finding the others first.)
        return np.zeros(n, np.int32), [parse(common)], []
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
    if mapping and not encoded.indices.null_count:
        return np.asarray(mapping, np.int32)[np.asarray(indices, np.intp)], values, failures
    codes = np.full(n, len(values) - 1, np.int32)
    valid = _bool(encoded.indices.is_valid())
    if mapping:
        codes[valid] = np.asarray(mapping, np.int32)[np.asarray(indices[valid], dtype=np.int64)]
    return codes, values, failures


def _read_columns(table: pa.Table, assume_tz: str | None = None) -> _Columns:
    n = table.num_rows
    names = table.column_names
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise ValidationError(
            "data",
            f"columns {names}",
            f"the columns {', '.join(REQUIRED_COLUMNS)} (missing: {', '.join(missing)})",
        )
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
    stamps, unreadable = _timestamps(table, ("started_at", "answered_at", "ended_at"), assume_tz)
    started, started_null = stamps["started_at"]
    started_us = started
    cols = _Columns(
        n=n,
        call_id=call_id,
        numbers=numbers,
        direction=np.zeros(0, np.int8),  # the next three are always read below
        answered=np.zeros(0, bool),
        billsec=np.zeros(0, np.int64),
        started_us=started_us,
        answered_us=started_us,
        tenant_codes=np.zeros(n, np.int32),
        tenants=[None],
        bad=np.zeros(n, bool),
        errors={},
    )

    def cell(array: pa.Array) -> Callable[[int], Any]:
        return lambda i: array[i].as_py()

    def stamp(name: str) -> Callable[[int], Any]:
        return cell(cast(pa.Array, _column(table, name)))

    for name, rows in unreadable.items():
        for row, (value, expected) in rows.items():
            mask = np.zeros(n, bool)
            mask[row] = True
            _fail(cols, mask, name, expected, value)
    _fail(
        cols, started_null if started_null.any() else None, "started_at", "a start timestamp", None
    )
    # call_id: a non-empty str of at most 255 characters.
    _fail(cols, _nulls(call_id), "call_id", "a str", None)
    call_bytes = _strings(call_id)[1]
    if n and int(call_bytes.min()) == 0:
        # A null's length is 0 too, but a null row is bad already.
        _fail(cols, call_bytes == 0, "call_id", "a non-empty str", "")
    _fail(
        cols,
        _too_long(call_id, 255, call_bytes),
        "call_id",
        "at most 255 characters",
        cell(call_id),
    )
    _fail(cols, _nulls(numbers), "destination_number", "a str", None)
    cols.number_strings = _strings(numbers)
    _fail(
        cols,
        _too_long(numbers, MAX_NUMBER_LEN, cols.number_strings[1]),
        "destination_number",
        f"at most {MAX_NUMBER_LEN} characters",
        cell(numbers),
    )
    # caller_number is only checked for length: a column of numbers (pandas reads a
    # column of phone numbers as floats) is not text and is left alone.
    caller_column = _column(table, "caller_number")
    caller = (
        _text(table, "caller_number")
        if caller_column is not None
        and (
            pa.types.is_string(caller_column.type)
            or pa.types.is_large_string(caller_column.type)
            or pa.types.is_dictionary(caller_column.type)
        )
        else None
    )
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
        if target == "direction":
            lookup = np.array([_DIRECTIONS.index(v) for v in values], np.int8)
        else:
            lookup = np.array([v is Disposition.ANSWERED for v in values], bool)
        # One value in every row (a failure's row is bad, whatever it holds): no gather.
        column = np.full(n, lookup[0]) if len(values) == 1 else lookup[np.maximum(codes, 0)]
        if target == "direction":
            cols.direction = column
        else:
            cols.answered = column

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
        values_b = np.where(derive, _rules.billsec_between(answered_at[0], ended_at[0]), values_b)
    if answered_at is not None:
        cols.answered_us = np.where(answered_at[1], started_us, answered_at[0])
    if answered_at is not None and ended_at is not None and not null_b.all():
        # A billsec the record's own clock does not allow (the CDR's rule, the same
        # function): a bad row.
        given = ~null_b & ~answered_at[1] & ~ended_at[1]
        fits = _rules.billsec_fits(values_b, answered_at[0], ended_at[0])
        talked = _rules.billsec_between(answered_at[0], ended_at[0])
        _fail(
            cols,
            given & ~fits,
            "billsec",
            "at most the s from answered_at to ended_at",
            lambda i: int(values_b[i]),
        )
        for row in np.flatnonzero(given & ~fits).tolist():
            field, value, _expected = cols.errors[row]
            if field == "billsec":
                cols.errors[row] = (
                    field,
                    value,
                    f"at most the {int(talked[row])} s from answered_at to ended_at",
                )
    cols.billsec = values_b
    seconds = f"a whole number of seconds <= {MAX_SECONDS:,}"
    if n and not 0 <= int(values_b.min()) <= int(values_b.max()) <= MAX_SECONDS:
        _fail(cols, values_b < 0, "billsec", "an int >= 0", lambda i: int(values_b[i]))
        # The CDR's limit (given or derived): a longer call is a bad row, as CDR
        # refuses it.
        _fail(cols, values_b > MAX_SECONDS, "billsec", seconds, lambda i: int(values_b[i]))
    if duration is not None:
        values_d, null_d = duration
        _fail(cols, ~null_d & (values_d < 0), "duration", "an int >= 0", lambda i: int(values_d[i]))
        _fail(cols, values_d > MAX_SECONDS, "duration", seconds, lambda i: int(values_d[i]))
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


@attrs.define
class _Numbers:
    keys: NDArray  # int64: the first 18 digits, right-padded with zeros
    lengths: NDArray  # int64 digits of the normalised number
    valid: NDArray  # bool
    all_valid: bool = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.all_valid = bool(self.valid.all())


_ZERO = ord("0")


def _normalise(
    numbers: pa.Array,
    access: tuple[str, ...],
    strings: tuple[NDArray, NDArray, NDArray] | None = None,
) -> _Numbers:
    """plan.normalise_number for a whole column, then numeric keys for the lookup.

    A number of ASCII digits that starts with no access prefix is normal as written
    (most columns hold only such numbers: one pass over their bytes finds them); the
    others are normalised as ``_rules.normalise_number`` says, with Arrow's string
    functions. ``strings``: ``_strings(numbers)``, if the caller has it.
    """
    n = len(numbers)
    access = tuple(a for a in access if a)  # normalise_number skips an empty one
    starts, lengths, data = _strings(numbers) if strings is None else strings
    base = int(starts[0]) if n else 0
    used = data[base : int(starts[-1] + lengths[-1])] if n else data[:0]
    rel = starts - base
    other = (used - np.uint8(_ZERO)) > 9  # not an ASCII digit (uint8 wraps below "0")
    if other.any():
        seen = np.zeros(used.size + 1, np.int32)
        np.cumsum(other, dtype=np.int32, out=seen[1:])
        plain = seen[rel + lengths] == seen[rel]
        plain &= lengths > 0
    else:
        plain = lengths > 0
    if numbers.null_count:
        plain &= _bool(numbers.is_valid())
    if access and used.size:
        last = used.size - 1
        heads = used[np.minimum(rel, last)]
        for prefix in access:
            raw = prefix.encode()
            rows = np.flatnonzero(plain & (heads == raw[0]) & (lengths >= len(raw)))
            for k, byte in enumerate(raw[1:], 1):
                rows = rows[used[rel[rows] + k] == byte]
            plain[rows] = False
    valid = plain
    lengths = np.where(plain, lengths, 0) if not plain.all() else lengths
    keys = _digit_keys(numbers, lengths, plain)
    work = np.flatnonzero(~plain & _bool(numbers.is_valid())) if not plain.all() else rel[:0]
    if work.size:
        # The rest, as normalise_number: strip the formatting, then "+", then one
        # access prefix; what is left must be ASCII digits.
        sub = pc.replace_substring_regex(numbers.take(pa.array(work)), _STRIP, "")
        sub = pc.if_else(pc.starts_with(sub, "+"), pc.utf8_slice_codeunits(sub, 1), sub)
        done = pa.array(np.zeros(len(sub), bool))
        for prefix in access:
            hit = pc.and_(pc.starts_with(sub, prefix), pc.invert(done))
            sub = pc.if_else(hit, pc.utf8_slice_codeunits(sub, len(prefix)), sub)
            done = pc.or_(done, hit)
        sizes = np.asarray(pc.binary_length(sub).to_numpy(), np.int64)
        ok = _bool(pc.and_(pc.string_is_ascii(sub), pc.utf8_is_digit(sub))) & (sizes > 0)
        valid = valid.copy()
        valid[work] = ok
        lengths = lengths.copy()
        lengths[work] = np.where(ok, sizes, 0)
        keys[work] = _digit_keys(sub, sizes, ok)
    return _Numbers(keys, lengths, valid)


def _digit_keys(digits: pa.Array, lengths: NDArray, ok: NDArray) -> NDArray:
    """Keys of the rows in ``ok`` (texts of ASCII digits): the first 18 digits as an
    integer, right-padded with zeros; 0 elsewhere."""
    if len(digits) <= _FEW_ROWS:
        # A few rows (a stream's small batch, one call per CDR): Python's int() costs
        # less than a cast's dispatch.
        return np.array(
            [
                int(text[:_WIDTH]) * 10 ** max(_WIDTH - len(text), 0) if good else 0
                for text, good in zip(digits.to_pylist(), ok.tolist(), strict=True)
            ],
            np.int64,
        )
    keys = np.zeros(len(digits), np.int64)
    short = ok & (lengths <= _WIDTH)
    if short.all():
        values = np.asarray(digits.cast(pa.int64()).to_numpy(zero_copy_only=False), np.int64)
        if lengths.size and lengths[0] == lengths[-1] and (lengths == lengths[0]).all():
            # Numbers of one length (a national plan's): one scale, no gather.
            return values * _POW10[_WIDTH - int(lengths[0])]
        return values * _POW10[_WIDTH - lengths]
    rows = np.flatnonzero(short)
    if rows.size:
        values = digits.take(pa.array(rows)).cast(pa.int64())
        keys[rows] = np.asarray(values.to_numpy(), np.int64) * _POW10[_WIDTH - lengths[rows]]
    long_ = np.flatnonzero(ok & (lengths > _WIDTH))
    if long_.size:
        heads = pc.utf8_slice_codeunits(digits.take(pa.array(long_)), 0, _WIDTH)
        keys[long_] = np.asarray(heads.cast(pa.int64()).to_numpy(), np.int64)
    return keys
