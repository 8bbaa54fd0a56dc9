"""Parquet in and out from the API: ParquetCdrReader, ParquetChargeWriter."""

from __future__ import annotations

import io
import json
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdrrating import CDR, Rate, RatePlan, rate
from cdrrating.formats import (
    CDR_FORMATS,
    CHARGE_COLUMNS,
    FormatError,
    ParquetCdrReader,
    read_cdrs,
    write_charges,
    write_charges_parquet,
)
from cdrrating.formats.parquet import ParquetChargeWriter, charge_schema
from cdrrating.testing.strategies import cdrs

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
UTC_US = pa.timestamp("us", tz="UTC")


def write(tmp_path: Path, columns: dict[str, Any], name: str = "cdrs.parquet", **kw: Any) -> Path:
    path = tmp_path / name
    pq.write_table(pa.table(columns), path, **kw)
    return path


def test_parquet_is_a_cdr_format() -> None:
    assert CDR_FORMATS["parquet"] is ParquetCdrReader


def test_rows_are_read_by_name_with_the_aliases_of_the_csv_reader(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "uuid": ["a", "b"],
            "dst": ["442079460000", "4930123"],
            "start": pa.array([T0, T0 + timedelta(hours=1)], UTC_US),
            "billsec": pa.array([60, 0], pa.int64()),
            "disposition": ["ANSWERED", "NO ANSWER"],
            "trunk": ["t1", None],
        },
    )
    reader = read_cdrs(path, "parquet")
    got = list(reader)
    assert [c.call_id for c in got] == ["a", "b"]
    assert got[0].started_at == T0
    assert got[0].destination_number == "442079460000"
    assert got[0].extra == {"trunk": "t1"}
    assert got[1].billsec == 0
    assert reader.summary.ok and reader.records == 2


def test_a_bad_row_is_rejected_with_its_row_number_and_the_rest_are_read(tmp_path: Path) -> None:
    n = 7
    path = write(
        tmp_path,
        {
            "call_id": [f"c{i}" for i in range(n)],
            "destination_number": ["4420123"] * n,
            "started_at": pa.array([T0] * n, UTC_US),
            "billsec": pa.array([10, -5, 10, 10, 10, 10, -1], pa.int64()),
        },
        row_group_size=3,
    )
    reader = ParquetCdrReader(path, batch_size=2)
    got = list(reader)
    assert [c.call_id for c in got] == ["c0", "c2", "c3", "c4", "c5"]
    assert [r.line for r in reader.rejects] == [2, 7]
    assert all("billsec" in r.reason for r in reader.rejects)
    assert json.loads(reader.rejects[0].raw)["call_id"] == "c1"
    assert reader.rows == n


def test_the_reject_file_gets_every_rejected_row(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "call_id": ["x", "y"],
            "destination_number": ["4420123", "4420123"],
            "started_at": ["not a time", "2026-03-02T10:00:00Z"],
        },
    )
    out = io.StringIO()
    assert [c.call_id for c in ParquetCdrReader(path, reject_file=out)] == ["y"]
    lines = out.getvalue().splitlines()
    assert lines[0] == "source,line,field,reason,raw"
    assert lines[1].startswith(f"{path},1,started_at,")


def test_timestamps_without_a_zone_are_wall_clock_in_default_tz(tmp_path: Path) -> None:
    naive = datetime(2026, 3, 2, 10, 0)
    path = write(
        tmp_path,
        {
            "call_id": ["a"],
            "destination_number": ["4420"],
            "started_at": pa.array([naive], pa.timestamp("ms")),
            "billsec": [1],
        },
    )
    (cdr,) = ParquetCdrReader(path, default_tz="Europe/Berlin")
    assert cdr.started_at.astimezone(UTC) == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_a_zoned_timestamp_is_the_instant_it_names(tmp_path: Path) -> None:
    berlin = pa.array([T0], UTC_US).cast(pa.timestamp("s", tz="Europe/Berlin"))
    path = write(tmp_path, {"call_id": ["a"], "destination_number": ["4420"], "started_at": berlin})
    (cdr,) = ParquetCdrReader(path, default_tz="America/New_York")
    assert cdr.started_at == T0


def test_nanoseconds_are_kept_when_whole_microseconds_and_rejected_otherwise(
    tmp_path: Path,
) -> None:
    base = int((T0 - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 10**9
    path = write(
        tmp_path,
        {
            "call_id": ["whole", "fraction"],
            "destination_number": ["4420", "4420"],
            "started_at": pa.array([base + 5_000, base + 5_001], pa.int64()).cast(
                pa.timestamp("ns", tz="UTC")
            ),
        },
    )
    reader = ParquetCdrReader(path)
    (cdr,) = reader
    assert cdr.call_id == "whole"
    assert cdr.started_at == T0 + timedelta(microseconds=5)
    (reject,) = reader.rejects
    assert reject.line == 2 and "nanoseconds" in reject.reason


def test_mapping_renames_columns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "id": ["a"],
            "Called Number": ["4420"],
            "Start": pa.array([T0], UTC_US),
        },
    )
    (cdr,) = ParquetCdrReader(path, mapping={"Called Number": "destination_number"})
    assert cdr.destination_number == "4420"


def test_a_file_without_the_required_columns_is_refused_whole(tmp_path: Path) -> None:
    path = write(tmp_path, {"call_id": ["a"], "number": ["4420"]})
    with pytest.raises(FormatError, match=r"destination_number.*started_at"):
        list(ParquetCdrReader(path))


def test_a_file_that_is_not_parquet_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cdrs.parquet"
    path.write_text("call_id,started_at\n")
    with pytest.raises(FormatError, match="not a Parquet file"):
        list(ParquetCdrReader(path))


def test_a_pipe_is_refused_with_the_reason() -> None:
    class Pipe(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def seekable(self) -> bool:
            return False

    with pytest.raises(FormatError, match="not a pipe"):
        list(ParquetCdrReader(io.BufferedReader(Pipe())))


def test_reading_is_incremental(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader pulls one batch at a time from the file: after k records, at most
    k // batch + 1 batches were read, whatever the file's size."""
    n, batch = 1_000, 50
    path = write(
        tmp_path,
        {
            "call_id": [f"c{i}" for i in range(n)],
            "destination_number": ["4420"] * n,
            "started_at": pa.array([T0] * n, UTC_US),
        },
        row_group_size=batch,
    )
    pulled = 0
    real = pq.ParquetFile.iter_batches

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal pulled
        for b in real(self, *args, **kwargs):
            pulled += 1
            yield b

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", counted)
    for k, _ in enumerate(ParquetCdrReader(path, batch_size=batch), start=1):
        assert pulled <= (k - 1) // batch + 1
    assert pulled == n // batch


def test_without_pyarrow_reading_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, {"call_id": ["a"], "dst": ["1"], "start": pa.array([T0], UTC_US)})
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match=r"pip install 'cdrrating\[frame\]'"):
        list(ParquetCdrReader(path))
    with pytest.raises(ImportError, match=r"pip install 'cdrrating\[frame\]'"):
        write_charges_parquet([], tmp_path / "out.parquet")


# -- charges out ---------------------------------------------------------------------------

PLAN = RatePlan(
    [
        Rate(prefix="44", per_minute_micros=12_345, destination="UK"),
        Rate(prefix="4420", per_minute_micros=20_000, connection_fee_micros=1_000),
    ],
    currency="EUR",
)


def test_the_charge_file_has_the_charge_columns_in_plain_types(tmp_path: Path) -> None:
    schema = charge_schema()
    assert tuple(schema.names) == CHARGE_COLUMNS
    kinds = {str(f.type) for f in schema}
    assert kinds == {"string", "int64", "timestamp[us, tz=UTC]"}
    charges = [rate(CDR(call_id="a", started_at=T0, destination_number="4420", billsec=61), PLAN)]
    path = tmp_path / "charges.parquet"
    assert write_charges_parquet(charges, path) == 1
    assert pq.read_schema(path).remove_metadata() == schema


@settings(max_examples=30, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.lists(cdrs(with_details=True, tenants=st.none() | st.just("t")), max_size=30),
    st.integers(1, 8),
)
def test_charges_read_back_as_the_csv_writer_writes_them(
    calls: list[CDR], row_group_size: int
) -> None:
    """Every charge column holds what the CSV writer writes, value for value (the CSV
    being text, compared as the records :func:`charge_record` makes)."""
    charges = [rate(c, PLAN) for c in calls]
    buffer = io.BytesIO()
    with ParquetChargeWriter_to(buffer, row_group_size) as rows:
        rows.write(charges)
    table = pq.read_table(io.BytesIO(buffer.getvalue()))
    assert table.num_rows == len(charges)
    text = io.StringIO()
    write_charges(charges, text, format="jsonl")
    expected = [json.loads(line) for line in text.getvalue().splitlines()]
    for got, want in zip(table.to_pylist(), expected, strict=True):
        for name in ("started_at", "answered_at", "ended_at"):
            value = got[name]
            got[name] = value.isoformat() if value is not None else None
            want[name] = (
                datetime.fromisoformat(want[name]).astimezone(UTC).isoformat()
                if want[name] is not None
                else None
            )
        got["extra"] = json.loads(got["extra"]) if got["extra"] is not None else {}
        assert got == want


class ParquetChargeWriter_to:  # noqa: N801 - reads as what it does
    """A ParquetChargeWriter whose file is copied into ``buffer`` when it closes."""

    def __init__(self, buffer: io.BytesIO, row_group_size: int) -> None:
        import tempfile  # noqa: PLC0415 - only here

        self._dir = tempfile.TemporaryDirectory()
        self._path = Path(self._dir.name) / "c.parquet"
        self._buffer = buffer
        self._writer = ParquetChargeWriter(self._path, row_group_size=row_group_size)

    def __enter__(self) -> ParquetChargeWriter:
        return self._writer.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._writer.__exit__(*exc)
        self._buffer.write(self._path.read_bytes())
        self._dir.cleanup()


def test_row_groups_hold_row_group_size_rows(tmp_path: Path) -> None:
    calls = [
        CDR(call_id=f"c{i}", started_at=T0, destination_number="4420", billsec=i) for i in range(25)
    ]
    path = tmp_path / "charges.parquet"
    write_charges_parquet((rate(c, PLAN) for c in calls), path, row_group_size=10)
    meta = pq.ParquetFile(path).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [10, 10, 5]


def test_a_failed_last_row_group_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "charges.parquet"

    def full_disk(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    charges = [rate(CDR(call_id="a", started_at=T0, destination_number="4420", billsec=1), PLAN)]
    monkeypatch.setattr(pq.ParquetWriter, "write_table", full_disk)
    with pytest.raises(OSError, match="No space"):
        write_charges_parquet(charges, path)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "charges.parquet"

    def charges() -> Any:
        yield rate(CDR(call_id="a", started_at=T0, destination_number="4420", billsec=1), PLAN)
        raise RuntimeError("the input broke")

    with pytest.raises(RuntimeError):
        write_charges_parquet(charges(), path, row_group_size=1)
    assert list(tmp_path.iterdir()) == []


def test_a_charge_file_reads_back_as_cdrs_as_the_csv_one_does(tmp_path: Path) -> None:
    berlin = timezone(timedelta(hours=2))
    calls = [
        CDR(
            call_id="a",
            started_at=datetime(2026, 7, 1, 12, tzinfo=berlin),
            destination_number="442079460000",
            billsec=61,
            tenant="t",
            extra={"trunk": "x"},
        ),
        CDR(call_id="b", started_at=T0, destination_number="999", billsec=5),
    ]
    charges = [rate(c, PLAN) for c in calls]
    path = tmp_path / "charges.parquet"
    write_charges_parquet(charges, path)
    text = io.StringIO()
    write_charges(charges, text)
    from_csv = list(read_cdrs(io.StringIO(text.getvalue()), "csv"))
    from_parquet = list(ParquetCdrReader(path))
    for back, csv_back, charge in zip(from_parquet, from_csv, charges, strict=True):
        assert back.started_at == charge.cdr.started_at
        assert back.cost_micros == charge.cost_micros == csv_back.cost_micros
        assert back.currency == csv_back.currency
        assert set(back.extra) == set(csv_back.extra)
    assert from_parquet[0].extra["trunk"] == "x"
