"""`cdrrating rate` reads and writes Parquet; `cdrrating prune --archive-parquet`."""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

import cdrrating.cli._rate
from cdrrating.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_REJECTED_ROWS, EXIT_USAGE, main
from cdrrating.formats import CHARGE_COLUMNS, ParquetArchive

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pcsv = pytest.importorskip("pyarrow.csv")
pytest.importorskip("sqlalchemy")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
RATES = str(EXAMPLES / "rates.csv")


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def rate(cdrs: Path | str, *extra: str) -> tuple[int, str, str]:
    return run(
        "rate", str(cdrs), "--rates", RATES, "--currency", "EUR", "--quiet", "--format", "json",
        *extra,
    )  # fmt: skip


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CDRRATING_DB", raising=False)
    return tmp_path


def example_parquet(folder: Path, *, row_group_size: int = 500) -> Path:
    """The example CDRs as a typed Parquet file: instants as timestamps, counts as int64,
    numbers as text (a number with a leading + or 00 is text)."""
    table = pcsv.read_csv(
        EXAMPLES / "cdrs.csv",
        convert_options=pcsv.ConvertOptions(
            column_types={"caller_number": pa.string(), "destination_number": pa.string()}
        ),
    )
    assert pa.types.is_timestamp(table.schema.field("started_at").type)
    path = folder / "cdrs.parquet"
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def test_parquet_in_and_out_gives_what_the_csv_path_gives(workdir: Path) -> None:
    source = example_parquet(workdir)
    code, out, err = rate(source, "--output", "from-parquet.parquet", "--db", "p.sqlite3")
    assert code == EXIT_OK, err
    assert "stored 3000 rated CDRs" in err
    assert "wrote 3000 rated CDRs to from-parquet.parquet" in err
    code, csv_out, err = rate(
        EXAMPLES / "cdrs.csv", "--output", "from-csv.parquet", "--db", "c.sqlite3"
    )
    assert code == EXIT_OK, err
    assert json.loads(out) == json.loads(csv_out)  # the summary, to the micro
    from_parquet = pq.read_table(workdir / "from-parquet.parquet")
    from_csv = pq.read_table(workdir / "from-csv.parquet")
    assert from_parquet.num_rows == 3000
    assert from_parquet.equals(from_csv)
    # What was stored is the same too.
    code, stored_p, _ = run("export", "--db", "p.sqlite3", "--format", "jsonl", "--quiet")
    code, stored_c, _ = run("export", "--db", "c.sqlite3", "--format", "jsonl", "--quiet")

    def strip(text: str) -> list[dict[str, Any]]:
        rows = [json.loads(line) for line in text.splitlines()]
        for row in rows:
            del row["created_at"], row["updated_at"]
        return rows

    assert strip(stored_p) == strip(stored_c)


def test_the_charge_file_has_plain_types_other_tools_read(workdir: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    pl = pytest.importorskip("polars")
    code, out, err = rate(example_parquet(workdir), "--output", "charges.pq", "--no-store")
    assert code == EXIT_OK, err
    schema = pq.read_schema(workdir / "charges.pq")
    assert tuple(schema.names) == CHARGE_COLUMNS
    assert schema.field("started_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("cost_micros").type == pa.int64()
    assert schema.field("status").type == pa.string()
    total = json.loads(out)["totals_micros"]["EUR"]
    query = "SELECT sum(cost_micros) FROM read_parquet('charges.pq')"
    assert duckdb.connect().execute(query).fetchall() == [(total,)]
    assert pl.read_parquet(workdir / "charges.pq")["cost_micros"].sum() == total
    _, printed, _ = rate(EXAMPLES / "cdrs.csv", "--no-store", "--charges", "--format", "jsonl")
    assert pq.read_table(workdir / "charges.pq").column("cost_micros").to_pylist() == [
        json.loads(line)["cost_micros"] for line in printed.splitlines()
    ]


@pytest.fixture(scope="module")
def spark() -> Any:
    try:
        from pyspark.sql import SparkSession  # noqa: PLC0415 - optional
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("pyspark is not installed, and CI must read the charges with Spark")
        pytest.skip("pyspark is not installed")
    return (
        SparkSession.builder.master("local[1]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )


def test_spark_reads_the_charge_file_as_it_is(workdir: Path, spark: Any) -> None:
    code, out, err = rate(example_parquet(workdir), "--output", "charges.parquet", "--no-store")
    assert code == EXIT_OK, err
    frame = spark.read.parquet(str(workdir / "charges.parquet"))
    types = dict(frame.dtypes)
    assert types["started_at"] == "timestamp"
    assert types["cost_micros"] == "bigint"
    assert types["status"] == "string"
    total = frame.agg({"cost_micros": "sum"}).collect()[0][0]
    assert total == json.loads(out)["totals_micros"]["EUR"]
    assert frame.count() == 3000


def test_every_parquet_row_is_rated_or_reported_with_its_row_number(workdir: Path) -> None:
    table = pa.table(
        {
            "call_id": ["a", "b", "a", "c", "d"],
            "destination_number": ["442079460000", "442079460000", "4930", "4930", "4930"],
            "started_at": pa.array([1_790_000_000_000_000] * 5, pa.int64()).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "billsec": pa.array([60, -1, 30, 5, 7], pa.int64()),
        }
    )
    pq.write_table(table, workdir / "cdrs.parquet", row_group_size=2)
    code, out, err = rate(
        "cdrs.parquet", "--output", "charges.parquet", "--no-store", "--reject-file", "rej.csv"
    )
    assert code == EXIT_REJECTED_ROWS
    assert "cdrs.parquet: row 2: rejected: billsec" in err
    assert "cdrs.parquet: row 3: rejected: call_id 'a' was read before" in err
    charged = pq.read_table(workdir / "charges.parquet").column("call_id").to_pylist()
    assert charged == ["a", "c", "d"]
    summary = json.loads(out)
    assert summary["records"] == 3 and summary["rejected"] == 2
    rejects = (workdir / "rej.csv").read_text().splitlines()
    assert len(rejects) == 3  # the header and both rows


def test_formats_are_told_by_the_file_name_or_given(workdir: Path) -> None:
    source = example_parquet(workdir)
    renamed = workdir / "cdrs.bin"
    source.rename(renamed)
    code, _, err = rate(renamed, "--no-store")
    # Read as CSV, since the name does not say Parquet: refused whole, not row by row.
    assert code == EXIT_BAD_INPUT and "not a text file" in err
    code, _, err = rate(
        renamed, "--cdr-format", "parquet", "--no-store", "--output", "out.data",
        "--output-format", "parquet",
    )  # fmt: skip
    assert code == EXIT_OK, err
    assert pq.read_metadata(workdir / "out.data").num_rows == 3000
    code, _, err = rate(renamed, "--cdr-format", "parquet", "--no-store", "--output", "out.jsonl")
    assert code == EXIT_OK, err
    lines = (workdir / "out.jsonl").read_text().splitlines()
    assert len(lines) == 3000 and set(json.loads(lines[0])) == set(CHARGE_COLUMNS)
    code, _, err = rate(renamed, "--cdr-format", "parquet", "--no-store", "--output", "out.csv")
    assert code == EXIT_OK, err
    assert (workdir / "out.csv").read_text().splitlines()[0] == ",".join(CHARGE_COLUMNS)


def test_rating_streams_batch_by_batch(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows are read a batch at a time and written a row group at a time while the file
    is read: the rows read but not yet written stay under a bound that does not grow
    with the file (a batch read, a chunk being rated, a row group being filled)."""
    batch, chunk, n = 100, 300, 5_000
    monkeypatch.setattr(cdrrating.cli._rate, "_CHUNK", chunk)
    table = pa.table(
        {
            "call_id": [f"c{i:05d}" for i in range(n)],
            "destination_number": ["442079460000"] * n,
            "started_at": pa.array([1_790_000_000_000_000] * n, pa.int64()).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "billsec": pa.array([i % 300 for i in range(n)], pa.int64()),
        }
    )
    pq.write_table(table, workdir / "cdrs.parquet", row_group_size=batch)
    read_rows = 0
    lags: list[int] = []
    real_batches = pq.ParquetFile.iter_batches
    real_write = pq.ParquetWriter.write_table

    def batches(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal read_rows
        for b in real_batches(self, *args, **kwargs):
            read_rows += b.num_rows
            yield b

    written = 0

    def write(self: Any, table: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal written
        written += table.num_rows
        lags.append(read_rows - written)
        return real_write(self, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", batches)
    monkeypatch.setattr(pq.ParquetWriter, "write_table", write)
    code, _, err = rate(
        "cdrs.parquet", "--no-store", "--output", "charges.parquet",
        "--row-group-size", str(batch),
    )  # fmt: skip
    assert code == EXIT_OK, err
    assert written == n == read_rows
    assert len(lags) == n // batch
    assert max(lags) <= batch + chunk, lags


def test_without_pyarrow_a_parquet_path_names_the_extra(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = example_parquet(workdir)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    code, _, err = rate(source, "--db", "x.sqlite3")
    assert code == EXIT_BAD_INPUT
    assert f"{source}: reading and writing Parquet needs pyarrow" in err
    assert "pip install 'cdrrating[frame]'" in err
    code, _, err = rate(EXAMPLES / "cdrs.csv", "--output", "c.parquet", "--db", "x.sqlite3")
    assert code == EXIT_BAD_INPUT
    assert "c.parquet" in err and "pip install 'cdrrating[frame]'" in err
    # Refused before the database was opened or anything was rated.
    assert not (workdir / "x.sqlite3").exists()
    assert not (workdir / "c.parquet").exists()


def test_output_options_that_do_not_fit_are_usage_errors(workdir: Path) -> None:
    source = example_parquet(workdir)
    code, _, err = rate(source, "--charges", "--output", "c.parquet", "--no-store")
    assert code == EXIT_USAGE and "--charges" in err
    code, _, err = rate("-", "--cdr-format", "parquet", "--no-store")
    assert code == EXIT_USAGE and "stdin" in err


def test_an_output_that_cannot_be_written_is_reported_and_left_absent(workdir: Path) -> None:
    code, _, err = rate(example_parquet(workdir), "--no-store", "--output", "missing/dir/c.parquet")
    assert code == EXIT_BAD_INPUT and "cannot write missing/dir/c.parquet" in err
    assert not (workdir / "missing").exists()


def test_import_cdrs_reads_parquet(workdir: Path) -> None:
    code, out, err = run(
        "import-cdrs", str(example_parquet(workdir)), "--db", "i.sqlite3", "--format", "json"
    )
    assert code == EXIT_OK, err
    assert json.loads(out)["rows"][0] == {"stored": 3000, "rejected": 0}


# -- prune ---------------------------------------------------------------------------------


def test_prune_archives_to_a_parquet_dataset_by_day(workdir: Path) -> None:
    code, _, err = rate(example_parquet(workdir), "--db", "p.sqlite3")
    assert code == EXIT_OK, err
    code, exported, _ = run("export", "--db", "p.sqlite3", "--format", "jsonl", "--quiet")
    before = {(r["tenant"], r["call_id"]): r for r in map(json.loads, exported.splitlines())}
    code, _, err = run(
        "prune", "--db", "p.sqlite3", "--older-than", "1d", "--archive-parquet", "archive"
    )
    assert code == EXIT_OK, err
    assert "pruned 3000 CDRs" in err and "day=YYYY-MM-DD" in err
    code, left, _ = run("export", "--db", "p.sqlite3", "--format", "jsonl", "--quiet")
    assert left == ""
    days = sorted(p.name for p in (workdir / "archive").iterdir())
    assert days[0] == "day=2026-10-01" and all(d.startswith("day=2026-10-") for d in days)
    back = {(s.cdr.tenant, s.call_id): s.to_mapping() for s in ParquetArchive("archive").read()}
    assert back == before


def test_prune_wants_exactly_one_kind_of_archive(workdir: Path) -> None:
    rate(example_parquet(workdir), "--db", "p.sqlite3")
    code, _, err = run(
        "prune", "--db", "p.sqlite3", "--older-than", "1d", "--archive", "a.jsonl",
        "--archive-parquet", "archive",
    )  # fmt: skip
    assert code == EXIT_USAGE and "--archive-parquet" in err


def test_prune_without_pyarrow_deletes_nothing(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rate(example_parquet(workdir), "--db", "p.sqlite3")
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "pyarrow", None)
        patch.setitem(sys.modules, "pyarrow.parquet", None)
        code, _, err = run(
            "prune", "--db", "p.sqlite3", "--older-than", "1d", "--archive-parquet", "archive"
        )
    assert code == EXIT_BAD_INPUT and "pip install 'cdrrating[frame]'" in err
    assert not (workdir / "archive").exists()
    code, exported, _ = run("export", "--db", "p.sqlite3", "--format", "jsonl", "--quiet")
    assert len(exported.splitlines()) == 3000


def test_prune_into_an_unwritable_dataset_deletes_nothing(workdir: Path) -> None:
    rate(example_parquet(workdir), "--db", "p.sqlite3")
    (workdir / "archive").mkdir()
    (workdir / "archive" / "day=2026-10-05").write_text("a file where a folder must go")
    code, _, err = run(
        "prune", "--db", "p.sqlite3", "--older-than", "1d", "--archive-parquet", "archive"
    )
    assert code == EXIT_BAD_INPUT and "nothing was deleted" in err
    code, exported, _ = run("export", "--db", "p.sqlite3", "--format", "jsonl", "--quiet")
    assert len(exported.splitlines()) == 3000
