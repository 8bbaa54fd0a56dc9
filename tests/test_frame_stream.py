"""rate_batches and rate_reader: a stream of record batches, rated batch by batch."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

pytest.importorskip("numpy", reason="cdrrating.frame needs the [frame] extra (numpy)")
pd = pytest.importorskip("pandas", reason="cdrrating.frame needs the [frame] extra (pandas)")
pa = pytest.importorskip("pyarrow", reason="cdrrating.frame needs the [frame] extra (pyarrow)")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from cdrrating import Rate, RatePlan, ValidationError  # noqa: E402
from cdrrating.frame import (  # noqa: E402
    ALL_OUTPUT_COLUMNS,
    STRINGS,
    output_schema,
    rate_batches,
    rate_reader,
    rate_table,
)
from tests.test_frame import T0, rows  # noqa: E402
from tests.test_frame_output import arrow_of, column_choices, raters  # noqa: E402

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PLAN = RatePlan([Rate("4420", 2_000), Rate("44", 1_000), Rate("1", 500)], currency="EUR")


def whole(batches: list[Any], schema: Any = None) -> Any:
    """Rated batches as one table: each batch's dictionaries hold that batch's values,
    in the order its rows first use them, so unifying them gives one call's columns."""
    return pa.Table.from_batches(batches, schema).unify_dictionaries().combine_chunks()


def cdr_table(n: int, *, start: int = 0, bad_every: int = 0) -> Any:
    numbers = ["442079460000", "4412345", "15551234", "x", "99"]
    billsec = [(k * 37) % 400 for k in range(start, start + n)]
    if bad_every:
        billsec = [-1 if (start + k) % bad_every == 0 else b for k, b in enumerate(billsec)]
    return pa.table(
        {
            "call_id": [f"c{k}" for k in range(start, start + n)],
            "started_at": pa.array([T0] * n, pa.timestamp("us", tz="UTC")),
            "destination_number": [numbers[k % len(numbers)] for k in range(start, start + n)],
            "billsec": pa.array(billsec, pa.int64()),
            "note": [f"n{k}" for k in range(start, start + n)],
        }
    )


@st.composite
def splits(draw: st.DrawFn, n: int) -> list[int]:
    """Batch lengths adding up to n, empty batches included."""
    lengths: list[int] = []
    left = n
    while left:
        size = draw(st.integers(0, left))
        lengths.append(size)
        left -= size
    return draw(st.lists(st.just(0), max_size=2)) + lengths


def batches_of(table: Any, lengths: list[int]) -> list[Any]:
    out, start = [], 0
    for size in lengths:
        out.append(table.slice(start, size).combine_chunks().to_batches() or [])
        start += size
    empty = pa.RecordBatch.from_pylist([], schema=table.schema)
    return [chunk[0] if chunk else empty for chunk in out]


# -- the stream equals the whole table ------------------------------------------------------------


@SETTINGS
@given(
    data=st.data(),
    plan=raters(),
    records=st.lists(rows(), max_size=30),
    options=st.fixed_dictionaries(
        {
            "columns": column_choices(),
            "strings": st.sampled_from(STRINGS),
            "destination": st.booleans(),
        }
    ),
    threads=st.integers(1, 3),
)
def test_rated_batches_are_rate_table_on_the_whole_table(
    data: st.DataObject,
    plan: Any,
    records: list[dict[str, Any]],
    options: dict[str, Any],
    threads: int,
) -> None:
    table = arrow_of(records)
    lengths = data.draw(splits(table.num_rows))
    batches = batches_of(table, lengths)
    out = list(rate_batches(iter(batches), plan, threads=threads, **options))
    schema = output_schema(table.schema, **options)
    assert len(out) == len(batches)
    for got, given_ in zip(out, batches, strict=True):
        assert got.num_rows == given_.num_rows
        assert got.schema.equals(schema, check_metadata=True)
    assert whole(out, schema).equals(rate_table(table, plan, **options))
    reader = rate_reader(batches, plan, schema=table.schema, threads=threads, **options)
    assert reader.schema.equals(schema, check_metadata=True)
    assert whole(list(reader), schema).equals(rate_table(table, plan, **options))


def test_every_batch_has_the_schema_even_empty_or_all_bad() -> None:
    table = cdr_table(6)
    bad = cdr_table(3, start=6, bad_every=1)
    empty = table.slice(0, 0)
    out = list(rate_batches([empty, table, bad, empty], PLAN))
    schema = output_schema(table.schema)
    assert [b.num_rows for b in out] == [0, 6, 3, 0]
    for batch in out:
        assert batch.schema.equals(schema, check_metadata=True)
    assert out[2].column(out[2].schema.get_field_index("status")).to_pylist() == ["ERROR"] * 3
    plain = list(rate_batches([empty, bad], PLAN, strings="plain"))
    assert all(b.schema.equals(output_schema(table.schema, strings="plain")) for b in plain)


# -- bounded memory --------------------------------------------------------------------------------


def test_batches_are_read_one_at_a_time_as_they_are_asked_for() -> None:
    read = 0

    def endless() -> Iterator[Any]:
        nonlocal read
        for k in itertools.count():
            read += 1
            assert read <= 50, "the stream was read ahead of what was asked for"
            yield cdr_table(100, start=100 * k).to_batches()[0]

    # rate_batches is annotated as an Iterator; closing it early is what is tested here.
    rated = cast(Generator[Any, None, None], rate_batches(endless(), PLAN))
    assert read == 0  # nothing is read before the first batch is asked for
    for k, batch in enumerate(itertools.islice(rated, 20), start=1):
        assert read == k
        assert batch.num_rows == 100
    rated.close()


def test_a_reader_reads_its_input_as_it_is_read() -> None:
    read = 0

    def endless() -> Iterator[Any]:
        nonlocal read
        for k in itertools.count():
            read += 1
            assert read <= 50, "the stream was read ahead of what was asked for"
            yield cdr_table(10, start=10 * k)

    reader = rate_reader(endless(), PLAN, threads=2)
    assert read == 1  # the first batch gives the schema
    for k in range(1, 11):
        reader.read_next_batch()
        assert read == k
    reader.close()


# -- errors --------------------------------------------------------------------------------------


def test_raise_names_the_position_in_the_whole_stream() -> None:
    batches = [cdr_table(10), cdr_table(10, start=10), cdr_table(10, start=20, bad_every=7)]
    rated = rate_batches(batches, PLAN, errors="raise", threads=2)
    assert next(rated).num_rows == 10
    assert next(rated).num_rows == 10
    with pytest.raises(ValidationError, match=r"^row 21: billsec: got -1.*2 bad row\(s\) in this"):
        next(rated)
    reported = whole(list(rate_batches(batches, PLAN)))
    assert reported.column("status").to_pylist()[21] == "ERROR"


def test_batches_with_other_columns_are_refused() -> None:
    other = cdr_table(3).drop_columns(["note"])
    rated = rate_batches([cdr_table(3), other], PLAN)
    next(rated)
    with pytest.raises(ValidationError, match="every batch with the stream's columns") as caught:
        next(rated)
    assert caught.value.field == "batches"
    reader = pa.RecordBatchReader.from_batches(other.schema, iter(other.to_batches()))
    with pytest.raises(ValidationError) as caught:
        rate_reader(reader, PLAN, schema=cdr_table(1).schema)
    assert caught.value.field == "schema"


def test_bad_arguments_are_refused_at_the_call() -> None:
    with pytest.raises(ValidationError) as caught:
        rate_batches([cdr_table(1)], "plan")  # type: ignore[arg-type]
    assert caught.value.field == "plan_or_rater"
    with pytest.raises(ValidationError) as caught:
        rate_batches([cdr_table(1)], PLAN, strings="utf8")  # type: ignore[arg-type]
    assert caught.value.field == "strings"
    with pytest.raises(ValidationError) as caught:
        rate_batches(42, PLAN)
    assert caught.value.field == "batches"
    with pytest.raises(ValidationError) as caught:
        list(rate_batches([{"call_id": "a"}], PLAN))
    assert caught.value.field == "batches"
    with pytest.raises(ValidationError, match="schema=") as caught:
        rate_reader(iter([]), PLAN)
    assert caught.value.field == "schema"


def test_an_empty_stream_with_its_schema_is_an_empty_reader() -> None:
    schema = cdr_table(1).schema
    reader = rate_reader(iter([]), PLAN, schema=schema, strings="plain")
    assert reader.schema.equals(output_schema(schema, strings="plain"))
    assert reader.read_all().num_rows == 0


def test_naive_timestamps_are_refused_naming_assume_tz() -> None:
    table = cdr_table(2).set_column(1, "started_at", pa.array([T0.replace(tzinfo=None)] * 2))
    with pytest.raises(ValidationError, match="assume_tz"):
        next(rate_batches([table], PLAN))
    rated = next(rate_batches([table], PLAN, assume_tz="UTC"))
    assert rated.column(rated.schema.get_field_index("status")).null_count == 0


# -- the forms a stream comes in ------------------------------------------------------------------


def test_readers_tables_batches_and_arrow_streams() -> None:
    table = pa.concat_tables([cdr_table(7), cdr_table(5, start=7)])
    expected = rate_table(table, PLAN)
    reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
    assert whole(list(rate_batches(reader, PLAN))).equals(expected)
    assert len(list(rate_batches(table, PLAN))) == 2
    assert whole(list(rate_batches(table, PLAN))).equals(expected)
    assert whole(list(rate_batches(table.to_batches()[0], PLAN))).equals(
        rate_table(cdr_table(7), PLAN)
    )
    # An item may be a whole Table: it is one batch out.
    assert len(list(rate_batches([table], PLAN))) == 1


def test_polars_frames_and_lazy_frames() -> None:
    pl = pytest.importorskip("polars")
    table = cdr_table(40, bad_every=9)
    frame = pl.from_arrow(table)
    expected = rate_table(frame, PLAN, strings="plain")
    # A DataFrame is an Arrow stream; the frames of LazyFrame.collect_batches are items.
    whole_frame = pl.from_arrow(pa.Table.from_batches(rate_batches(frame, PLAN, strings="plain")))
    assert whole_frame.equals(expected)
    lazy = frame.lazy().filter(pl.col("billsec") >= 0)
    batches = list(rate_batches(lazy.collect_batches(chunk_size=7), PLAN, strings="plain"))
    assert len(batches) >= 2
    got = pl.from_arrow(pa.Table.from_batches(batches))
    assert got.equals(rate_table(lazy.collect(), PLAN, strings="plain"))


def test_duckdb_to_rate_reader_to_duckdb_and_parquet(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    pq = pytest.importorskip("pyarrow.parquet")
    source = duckdb.connect()
    cdrs = pa.concat_tables([cdr_table(500, bad_every=97)])
    source.register("cdrs", cdrs)
    query = "select * from cdrs order by call_id"
    expected = rate_table(source.sql(query).to_arrow_table(), PLAN, strings="plain")

    rated = rate_reader(source.sql(query).to_arrow_reader(64), PLAN, strings="plain")
    target = duckdb.connect()
    target.register("rated_stream", rated)
    target.execute("create table rated as select * from rated_stream")
    back = target.sql("select * from rated").to_arrow_table()
    assert back.num_rows == 500
    assert back.select(expected.column_names).equals(expected)
    summary = target.sql("select status, count(*) from rated group by status order by 1").fetchall()
    counts = expected.group_by("status").aggregate([("status", "count")]).to_pylist()
    assert summary == sorted((c["status"], c["status_count"]) for c in counts)

    # A relation is an Arrow stream itself.
    relation = list(rate_batches(source.sql(query), PLAN, strings="plain"))
    assert pa.Table.from_batches(relation).equals(expected)

    path = tmp_path / "rated.parquet"
    reader = rate_reader(source.sql(query).to_arrow_reader(64), PLAN)
    with pq.ParquetWriter(path, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)
    assert pq.ParquetFile(path).metadata.num_row_groups > 1
    written = pq.read_table(path)
    assert written.column("status").to_pylist() == expected.column("status").to_pylist()
    assert written.column("cost_micros").equals(expected.column("cost_micros"))


def test_pyarrow_dataset_batches(tmp_path: Path) -> None:
    ds = pytest.importorskip("pyarrow.dataset")
    pq = pytest.importorskip("pyarrow.parquet")
    parts = [cdr_table(30, start=30 * k, bad_every=11) for k in range(3)]
    for k, part in enumerate(parts):
        pq.write_table(part, tmp_path / f"part-{k}.parquet", row_group_size=8)
    dataset = ds.dataset(tmp_path, format="parquet")
    rated = list(rate_batches(dataset.to_batches(), PLAN, destination=True))
    assert len(rated) > 3
    table = dataset.to_table()
    assert whole(rated).equals(rate_table(table, PLAN, destination=True))
    reader = rate_reader(dataset.scanner(batch_size=16).to_reader(), PLAN)
    ds.write_dataset(reader, tmp_path / "out", format="parquet")
    back = ds.dataset(tmp_path / "out", format="parquet").to_table()
    assert sorted(back.column("call_id").to_pylist()) == sorted(table.column("call_id").to_pylist())


def test_every_output_column_name_can_be_streamed_alone() -> None:
    table = cdr_table(12, bad_every=5)
    for name in ALL_OUTPUT_COLUMNS:
        out = whole(list(rate_batches(table.to_batches(max_chunksize=5), PLAN, columns=[name])))
        assert out.column_names == [*table.column_names, name]
        assert out.column(name).equals(rate_table(table, PLAN, columns=[name]).column(name))


def test_batches_with_their_own_dictionaries_read_into_duckdb_and_polars() -> None:
    duckdb = pytest.importorskip("duckdb")
    pl = pytest.importorskip("polars")
    table = cdr_table(50, bad_every=7)
    expected = rate_table(table, PLAN)
    reader = rate_reader(table.to_batches(max_chunksize=8), PLAN)
    connection = duckdb.connect()
    connection.register("rated", reader)
    got = connection.sql("select * from rated").to_arrow_table()
    for name in ("status", "prefix", "error", "cost_micros"):
        assert got.column(name).to_pylist() == expected.column(name).to_pylist()
    batches = list(rate_batches(table.to_batches(max_chunksize=8), PLAN))
    frame = pl.from_arrow(pa.Table.from_batches(batches))
    assert frame.equals(pl.from_arrow(expected))


def _rating_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("cdrrating")]


def test_threads_end_with_the_stream_or_the_call() -> None:
    assert _rating_threads() == []
    batches = [cdr_table(40, start=40 * k) for k in range(3)]
    assert len(list(rate_batches(batches, PLAN, threads=3))) == 3
    assert _rating_threads() == []
    rated = cast(Generator[Any, None, None], rate_batches(batches, PLAN, threads=3))
    next(rated)
    assert _rating_threads()  # the stream's pool lives while the stream is open
    rated.close()
    assert _rating_threads() == []
    rate_table(cdr_table(40), PLAN, threads=4)
    assert _rating_threads() == []


def test_batches_that_differ_only_in_metadata_take_the_streams() -> None:
    first = cdr_table(3).replace_schema_metadata({"source": "a"})
    second = cdr_table(3, start=3).replace_schema_metadata({"source": "b"})
    reader = rate_reader([first, second], PLAN)
    assert reader.schema.metadata == {b"source": b"a"}
    assert [batch.schema.metadata for batch in reader] == [{b"source": b"a"}] * 2
