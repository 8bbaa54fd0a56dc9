"""ParquetArchive: pruned CDRs into a Parquet dataset by day, read back whole and once.

The archive is driven through the real repositories (memory and SQLite) and read back
with pyarrow, DuckDB, Polars and Spark.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdrrating import CDR
from cdrrating.formats import ParquetArchive
from cdrrating.memory import MemoryCDRRepository
from cdrrating.repository import Query, StoredCDR
from cdrrating.testing.contract import FakeClock
from cdrrating.testing.strategies import cdrs, timestamps

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
ds = pytest.importorskip("pyarrow.dataset")
pytest.importorskip("sqlalchemy")

from cdrrating.sql import SQLCDRRepository  # noqa: E402 - after the skip for [sql]

NOW = datetime(2026, 6, 1, tzinfo=UTC)
OLD = (datetime(2024, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))


def key(s: StoredCDR) -> tuple[str, str]:
    return (s.cdr.tenant or "", s.call_id)


def by_key(rows: Sequence[StoredCDR]) -> list[StoredCDR]:
    return sorted(rows, key=key)


RepoFactory = Callable[[FakeClock], Any]


def memory_repo(clock: FakeClock) -> Any:
    return MemoryCDRRepository(clock=clock)


@pytest.fixture(params=["memory", "sqlite"])
def make_repo(request: pytest.FixtureRequest, tmp_path: Path) -> RepoFactory:
    if request.param == "memory":
        return memory_repo

    def sqlite(clock: FakeClock) -> Any:
        return SQLCDRRepository(f"sqlite:///{tmp_path / 'cdrs.sqlite3'}", create=True, clock=clock)

    return sqlite


def old_calls(n: int, *, tenants: Sequence[str | None] = (None, "acme")) -> list[CDR]:
    """``n`` calls over several UTC days, some on either side of midnight UTC."""
    start = datetime(2025, 3, 1, 22, 0, tzinfo=UTC)
    return [
        CDR(
            call_id=f"c{i:04d}",
            started_at=start + timedelta(minutes=37 * i),
            destination_number=f"4420{i:07d}",
            caller_number="+4930123",
            billsec=i % 90,
            tenant=tenants[i % len(tenants)],
            extra={"trunk": f"t{i % 3}"} if i % 4 == 0 else {},
        )
        for i in range(n)
    ]


def filled(make: RepoFactory, calls: Sequence[CDR]) -> tuple[Any, FakeClock]:
    clock = FakeClock(NOW)
    repo = make(clock)
    repo.upsert_many(calls)
    return repo, clock


class Recorder:
    """The batches an archive was handed, passed on to a ParquetArchive."""

    def __init__(self, archive: ParquetArchive) -> None:
        self.archive = archive
        self.rows: list[StoredCDR] = []

    def __call__(self, batch: Sequence[StoredCDR]) -> None:
        self.archive(batch)
        self.rows.extend(batch)


# -- the round trip ------------------------------------------------------------------------


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.lists(
        cdrs(
            with_details=True,
            tenants=st.none() | st.sampled_from(["a", "b-tenant"]),
            timestamps=timestamps(min_value=OLD[0], max_value=OLD[1]),
        ),
        max_size=25,
        unique_by=lambda c: (c.tenant, c.call_id),
    ),
    st.integers(1, 7),
)
def test_archived_rows_read_back_as_the_stored_cdrs_pruned(
    calls: list[CDR], batch_size: int
) -> None:
    repo, _ = filled(memory_repo, calls)
    with tempfile.TemporaryDirectory() as folder:
        archive = ParquetArchive(folder, durable=False)
        seen = Recorder(archive)
        assert repo.prune(NOW, archive=seen, batch_size=batch_size) == len(calls)
        back = list(archive.read())
        assert by_key(back) == by_key(seen.rows)
        assert archive.count() == len(calls)
        if not calls:
            return
        # pyarrow.dataset sees the same rows, each in the folder of its UTC start day.
        table = ds.dataset(folder, partitioning="hive").to_table()
        assert table.num_rows == len(calls)
        for row in table.select(["call_id", "tenant", "started_at", "day"]).to_pylist():
            assert str(row["day"]) == row["started_at"].astimezone(UTC).date().isoformat()


def test_every_field_of_a_stored_cdr_is_a_column_with_a_plain_type(tmp_path: Path) -> None:
    repo, _ = filled(memory_repo, old_calls(3))
    repo.prune(NOW, archive=ParquetArchive(tmp_path))
    schema = ds.dataset(tmp_path, partitioning="hive").schema
    stored = set(StoredCDR(cdr=old_calls(1)[0], created_at=NOW, updated_at=NOW).to_mapping())
    assert set(schema.names) - {"day"} == stored
    utc = pa.timestamp("us", tz="UTC")
    for name in ("started_at", "answered_at", "ended_at", "created_at", "updated_at"):
        assert schema.field(name).type == utc, name
    for name in ("billsec", "duration", "cost_micros", "billed_seconds"):
        assert schema.field(name).type == pa.int64(), name
    assert schema.field("in_progress").type == pa.bool_()
    for name in ("call_id", "tenant", "status", "reason", "prefix", "extra", "direction"):
        assert schema.field(name).type == pa.string(), name


def test_a_day_is_the_utc_day_the_call_started(tmp_path: Path) -> None:
    berlin = timezone_plus(2)
    call = CDR(
        call_id="late",
        started_at=datetime(2025, 7, 1, 1, 30, tzinfo=berlin),  # 2025-06-30 23:30 UTC
        destination_number="4420123",
        billsec=10,
    )
    repo, _ = filled(memory_repo, [call])
    repo.prune(NOW, archive=ParquetArchive(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == ["day=2025-06-30"]
    (part,) = (tmp_path / "day=2025-06-30").iterdir()
    assert part.name.startswith("part-233000000000-233000000000-")


def timezone_plus(hours: int) -> Any:
    from datetime import timezone  # noqa: PLC0415 - one test's need

    return timezone(timedelta(hours=hours))


# -- crashes and re-runs -------------------------------------------------------------------


class Crash(Exception):
    """A process dying mid-prune, as far as the repository can tell."""


def crashing_after(archive: ParquetArchive, batches: int) -> Callable[[Sequence[StoredCDR]], None]:
    """An archive that writes ``batches`` batches and then crashes on the next one (after
    writing it, when ``batches`` is the last: a crash between archiving and deleting)."""
    done = 0

    def write(batch: Sequence[StoredCDR]) -> None:
        nonlocal done
        archive(batch)
        done += 1
        if done > batches:
            raise Crash

    return write


def dataset_keys(folder: Path) -> list[tuple[str, str]]:
    table = ds.dataset(folder, partitioning="hive").to_table(columns=["tenant", "call_id"])
    return sorted((t or "", c) for t, c in zip(*table.to_pydict().values(), strict=True))


def test_a_crash_while_archiving_deletes_nothing_and_a_rerun_writes_each_call_once(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    calls = old_calls(60)
    repo, _ = filled(make_repo, calls)
    stored = by_key(list(repo.query(Query(limit=1000))))
    folder = tmp_path / "archive"
    with pytest.raises(Crash):
        repo.prune(NOW, archive=crashing_after(ParquetArchive(folder), 2), batch_size=10)
    assert repo.count() == 60  # nothing deleted
    assert len(dataset_keys(folder)) == 30  # three batches were written before the crash
    assert not list(folder.rglob(".*")), "a temporary file was left"
    # The second run cuts its batches differently: same calls, other files.
    assert repo.prune(NOW, archive=ParquetArchive(folder), batch_size=7) == 60
    assert repo.count() == 0
    assert dataset_keys(folder) == sorted(key(s) for s in stored)
    assert by_key(list(ParquetArchive(folder).read())) == stored


def test_a_crash_between_archiving_and_deleting_leaves_every_call_archived_once(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    calls = old_calls(40)
    repo, _ = filled(make_repo, calls)
    folder = tmp_path / "archive"
    # All four batches written, then the crash: the delete never ran.
    with pytest.raises(Crash):
        repo.prune(NOW, archive=crashing_after(ParquetArchive(folder), 3), batch_size=10)
    assert repo.count() == 40
    first = sorted(p.name for p in folder.rglob("part-*.parquet"))
    assert len(dataset_keys(folder)) == 40
    # The same batches again: the same content, the same file names, replaced in place.
    assert repo.prune(NOW, archive=ParquetArchive(folder), batch_size=10) == 40
    assert sorted(p.name for p in folder.rglob("part-*.parquet")) == first
    assert dataset_keys(folder) == sorted((c.tenant or "", c.call_id) for c in calls)


def test_a_failed_delete_on_sqlite_keeps_the_rows_and_a_rerun_adds_no_duplicate(
    tmp_path: Path,
) -> None:
    import sqlalchemy as sa  # noqa: PLC0415 - the [sql] extra, checked above

    url = f"sqlite:///{tmp_path / 'cdrs.sqlite3'}"
    clock = FakeClock(NOW)
    repo = SQLCDRRepository(url, create=True, clock=clock)
    repo.upsert_many(old_calls(25))
    table = repo.tables.cdrs.name
    with repo.engine.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE TRIGGER no_delete BEFORE DELETE ON {table} "
                "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
            )
        )
    folder = tmp_path / "archive"
    with pytest.raises(Exception, match="disk I/O error"):
        repo.prune(NOW, archive=ParquetArchive(folder), batch_size=6)
    assert repo.count() == 25
    assert len(dataset_keys(folder)) == 25
    with repo.engine.begin() as conn:
        conn.execute(sa.text("DROP TRIGGER no_delete"))
    assert repo.prune(NOW, archive=ParquetArchive(folder), batch_size=4) == 25
    assert len(dataset_keys(folder)) == 25
    assert len(set(dataset_keys(folder))) == 25


def test_a_call_archived_again_replaces_its_row(tmp_path: Path) -> None:
    """A call pruned, stored again (re-imported, re-rated) and pruned again is kept once,
    as it was last stored."""
    calls = old_calls(5)
    repo, clock = filled(memory_repo, calls)
    folder = tmp_path / "archive"
    repo.prune(NOW, archive=ParquetArchive(folder))
    first = {s.call_id: s for s in ParquetArchive(folder).read()}
    clock.now = NOW + timedelta(days=1)
    repo.upsert_many(calls[:2])
    repo.prune(NOW, archive=ParquetArchive(folder), batch_size=1)
    back = by_key(list(ParquetArchive(folder).read()))
    # The calls not archived again come back from the rewritten file as they were.
    assert [s for s in back if s.call_id not in ("c0000", "c0001")] == by_key(
        [first[c.call_id] for c in calls[2:]]
    )
    assert [key(s) for s in back] == sorted((c.tenant or "", c.call_id) for c in calls)
    again = {s.call_id: s.created_at for s in back}
    assert again["c0000"] == again["c0001"] == NOW + timedelta(days=1)
    assert again["c0002"] == NOW


def test_an_unwritable_archive_raises_before_anything_is_deleted(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    repo, _ = filled(make_repo, old_calls(5))
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OSError, match="Not a directory"):
        repo.prune(NOW, archive=ParquetArchive(blocker / "archive"))
    assert repo.count() == 5


def test_without_pyarrow_the_archive_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)
    monkeypatch.setitem(__import__("sys").modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match=r"pip install 'cdrrating\[frame\]'"):
        ParquetArchive("anywhere")


# -- other readers -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pruned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[StoredCDR]]:
    """A dataset written by a prune, and the rows the prune deleted."""
    folder = tmp_path_factory.mktemp("dataset")
    repo, _ = filled(memory_repo, old_calls(50))
    repo.upsert_many([CDR(call_id="recent", started_at=NOW, destination_number="4420", billsec=1)])
    seen = Recorder(ParquetArchive(folder))
    assert repo.prune(NOW - timedelta(days=1), archive=seen, batch_size=16) == 50
    assert [s.call_id for s in repo.query()] == ["recent"]
    return folder, by_key(seen.rows)


def expected_rows(rows: Sequence[StoredCDR]) -> list[tuple[Any, ...]]:
    return normalised(
        [
            (
                s.cdr.tenant,
                s.call_id,
                s.cdr.started_at,
                s.cdr.billsec,
                s.cdr.destination_number,
                s.status.value if s.status else None,
                s.cdr.started_at.astimezone(UTC).date().isoformat(),
            )
            for s in rows
        ]
    )


def normalised(rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows as compared: instants in UTC, the day as text, sorted by the call's identity."""
    out = [
        (tenant, call_id, started.astimezone(UTC), billsec, dest, status, str(day)[:10])
        for tenant, call_id, started, billsec, dest, status, day in rows
    ]
    return sorted(out, key=lambda r: (r[0] or "", r[1]))


COLUMNS = "tenant, call_id, started_at, billsec, destination_number, status, day"


def test_pyarrow_dataset_reads_exactly_the_pruned_rows(
    pruned: tuple[Path, list[StoredCDR]],
) -> None:
    folder, rows = pruned
    table = ds.dataset(folder, partitioning="hive").to_table(columns=COLUMNS.split(", "))
    got = normalised(list(zip(*table.to_pydict().values(), strict=True)))
    assert got == expected_rows(rows)


def test_duckdb_reads_exactly_the_pruned_rows(pruned: tuple[Path, list[StoredCDR]]) -> None:
    duckdb = pytest.importorskip("duckdb")
    folder, rows = pruned
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    got = con.execute(
        f"SELECT {COLUMNS} FROM read_parquet(?, hive_partitioning = true)",
        [str(folder / "**" / "*.parquet")],
    ).fetchall()
    assert normalised(got) == expected_rows(rows)


def test_polars_reads_exactly_the_pruned_rows(pruned: tuple[Path, list[StoredCDR]]) -> None:
    pl = pytest.importorskip("polars")
    folder, rows = pruned
    frame = pl.scan_parquet(str(folder / "**" / "*.parquet"), hive_partitioning=True).collect()
    got = frame.select(COLUMNS.split(", ")).rows()
    assert normalised(got) == expected_rows(rows)


@pytest.fixture(scope="module")
def spark() -> Any:
    try:
        from pyspark.sql import SparkSession  # noqa: PLC0415 - optional
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("pyspark is not installed, and CI must read the archive with Spark")
        pytest.skip("pyspark is not installed")
    return (
        SparkSession.builder.master("local[1]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "1")
        .getOrCreate()
    )


def test_spark_reads_exactly_the_pruned_rows(
    spark: Any, pruned: tuple[Path, list[StoredCDR]]
) -> None:
    folder, rows = pruned
    frame = spark.read.parquet(str(folder))
    got = [tuple(r) for r in frame.select(*COLUMNS.split(", ")).collect()]
    # Spark hands instants over as naive datetimes in its session zone (UTC here).
    got = [(*r[:2], r[2].replace(tzinfo=UTC), *r[3:]) for r in got]
    assert normalised(got) == expected_rows(rows)
    assert dict(frame.dtypes)["started_at"] == "timestamp"
    assert dict(frame.dtypes)["billsec"] == "bigint"
