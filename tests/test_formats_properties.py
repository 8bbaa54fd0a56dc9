"""Any input, every reader: only the library's documented errors escape, within a time
bound per input, and no record is lost (every one read is yielded or rejected)."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdrrating.errors import ValidationError
from cdrrating.formats import CDR_FORMATS, RATE_FORMATS, Reader, read_cdrs, read_rates

# A generous bound: a reader that is quadratic or recursion-bound on a hostile input
# takes many seconds on these sizes; a linear one takes milliseconds.
BOUNDED = settings(
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Pieces of hostile input mixed into the generated text.
HOSTILE = st.sampled_from(
    [
        "[" * 5_000,
        '{"a": ' * 3_000,
        "9" * 5_000,
        "1e999999999",
        ",".join(f"c{i}" for i in range(5_000)),
        '"' + "x" * 200_000,
        "\ufeff",
        "\r",
        '{"data": [1, 2]}',
        '{"rows": []}',
        "99999999999999999999",
        "2025-11-02 01:30:00",
        "=cmd|' /C calc'!A0",
    ]
)
TEXT = st.lists(st.one_of(st.text(max_size=40), HOSTILE), max_size=8).map("".join)

GOOD = {"call_id": "g", "destination_number": "44", "started_at": "2026-09-23T10:00:00Z"}
CDR_KEYS = st.sampled_from(
    [
        "call_id",
        "destination_number",
        "started_at",
        "answered_at",
        "ended_at",
        "billsec",
        "duration",
        "extra",
        "data",
        "rows",
        "items",
        "variables",
    ]
)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**60), max_value=10**60),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["2026-09-23T10:00:00Z", "1745316000", "Infinity", "-1", "١٢٣", ""]),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(CDR_KEYS, st.text(max_size=8)), inner, max_size=6),
    ),
    max_leaves=10,
)
RECORDS = st.one_of(
    JSON_VALUES,
    st.dictionaries(CDR_KEYS, JSON_VALUES, max_size=6).map(lambda d: {**GOOD, **d}),
)


def _drain(reader: Reader[Any]) -> int | None:
    """Records yielded, or None when the input as a whole was refused."""
    try:
        count = sum(1 for _ in reader)
    except ValidationError:  # FormatError is one: the documented file-level error
        assert not reader.complete
        return None
    assert reader.complete
    return count


def _consistent(reader: Reader[Any], yielded: int | None) -> None:
    if yielded is None:
        return
    assert yielded == reader.records
    # Every row counted was yielded or rejected (a CDR row gives at most one record).
    if reader.format in {r.format for r in CDR_FORMATS.values()}:
        assert reader.rows == reader.records + len(reader.rejects)


@BOUNDED
@given(data=st.binary(max_size=2_000) | TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_bytes_through_every_reader(data: bytes) -> None:
    for fmt in CDR_FORMATS:
        reader = read_cdrs(io.BytesIO(data), fmt)
        _consistent(reader, _drain(reader))
    for fmt in RATE_FORMATS:
        rates = read_rates(io.BytesIO(data), fmt)
        _drain(rates)


@BOUNDED
@given(text=TEXT)
def test_any_text_through_every_reader(text: str) -> None:
    for fmt in CDR_FORMATS:
        reader = read_cdrs(io.StringIO(text), fmt)
        _consistent(reader, _drain(reader))
    for fmt in RATE_FORMATS:
        _drain(read_rates(io.StringIO(text), fmt))


def _lines_in(values: list[Any]) -> int:
    # A JSON Lines line holding an array stands for its elements.
    return sum(len(v) if isinstance(v, list) else 1 for v in values)


@BOUNDED
@given(values=st.lists(RECORDS, max_size=8), hostile=st.lists(HOSTILE, max_size=2))
def test_json_lines_records_are_never_lost(values: list[Any], hostile: list[str]) -> None:
    lines = [json.dumps(GOOD)] + [json.dumps(v) for v in values]
    # A line that is blank once a stray byte-order mark is dropped is no record.
    lines += [h.replace("\r", "") for h in hostile if h.replace("\ufeff", "").strip()]
    text = "\n".join(lines) + "\n"
    records_in = 1 + _lines_in(values) + len(lines) - 1 - len(values)
    for fmt in ("json", "admin-api", "platform-json", "freeswitch-json", "call-cdr"):
        reader = read_cdrs(io.StringIO(text), fmt)
        yielded = _drain(reader)
        if yielded is None:
            # Only a wrong format may refuse the whole input: its first record lacks
            # the format's keys. The generic reader accepts the first line as written.
            assert fmt != "json"
            continue
        assert yielded + len(reader.rejects) == records_in, (fmt, reader.rejects)


@BOUNDED
@given(values=st.lists(RECORDS, max_size=8))
def test_json_arrays_and_responses_lose_no_record(values: list[Any]) -> None:
    items = [GOOD, *values]
    for text in (
        json.dumps(items, indent=1),
        json.dumps({"ok": True, "rows": items}, indent=1),
        json.dumps({"ok": True, "rows": items}),
    ):
        reader = read_cdrs(io.StringIO(text), "json")
        yielded = _drain(reader)
        assert yielded is not None
        assert yielded + len(reader.rejects) == len(items)


CELLS = st.one_of(
    st.text(alphabet=st.characters(blacklist_characters="\x00\ufeff"), max_size=20),
    st.sampled_from(["2026-09-23T10:00:00Z", "44", "99999999999999999999", "=1+1", "1e999999999"]),
)


@BOUNDED
@given(rows=st.lists(st.lists(CELLS, min_size=5, max_size=5), max_size=15))
def test_csv_rows_are_never_lost(rows: list[list[str]]) -> None:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["call_id", "destination_number", "started_at", "billsec", "extra"])
    writer.writerows(rows)
    rows_in = sum(1 for row in rows if any(cell.strip() for cell in row))
    reader = read_cdrs(io.StringIO(out.getvalue()), "csv")
    yielded = _drain(reader)
    assert yielded is not None
    assert yielded + len(reader.rejects) == rows_in


@BOUNDED
@given(rows=st.lists(st.lists(CELLS, min_size=3, max_size=3), max_size=15))
def test_rate_deck_rows_are_never_lost(rows: list[list[str]]) -> None:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["prefix", "rate", "destination"])
    writer.writerows(rows)
    reader = read_rates(io.StringIO(out.getvalue()), "csv", delimiter=",")
    assert _drain(reader) is not None
    rows_in = sum(1 for row in rows if any(cell.strip() for cell in row))
    # A row is read (one rate or more), rejected, or kept as a footnote under the table.
    assert reader.rows + len(reader.notes) == rows_in  # type: ignore[attr-defined]
