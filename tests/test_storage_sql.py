"""The repository contract on SQLite (always), PostgreSQL and MariaDB/MySQL (when
``CDRRATING_TEST_POSTGRES_URL`` / ``CDRRATING_TEST_MYSQL_URL`` are set), plus what is
specific to the SQL adapter.

Each backend gets tables under a unique prefix, emptied before every test, so runs in
parallel against one server do not see each other. With ``CI=true`` an unreachable
server fails the run instead of skipping it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

sa = pytest.importorskip("sqlalchemy")

from cdrrating._storage.rows import CDR_COLUMNS  # noqa: E402
from cdrrating.repository import (  # noqa: E402
    CDRRepository,
    Query,
    RateRepository,
    StorageError,
)
from cdrrating.sql import (  # noqa: E402
    SQLCDRRepository,
    SQLRateRepository,
    Tables,
    define_tables,
    make_engine,
    metadata,
)
from cdrrating.testing.contract import (  # noqa: E402
    CDRRepositoryContract,
    FakeClock,
    RateRepositoryContract,
    cdr,
)


class Backend:
    def __init__(self, engine: Any, tables: Tables) -> None:
        self.engine = engine
        self.tables = tables

    def clean(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.tables.cdrs.delete())
            conn.execute(self.tables.rates.delete())


def _open(url: str | None, env: str) -> Iterator[Backend]:
    if url is None:
        url = os.environ.get(env)
        if not url:
            pytest.skip(f"{env} is not set: no server to run the storage contract against")
    engine = make_engine(url)
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as e:
        engine.dispose()
        message = f"{env}={url} is unreachable: {e.__class__.__name__}: {e.orig}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    tables = define_tables(f"cdrrating_t{uuid.uuid4().hex[:8]}_")
    tables.metadata.create_all(engine)
    try:
        yield Backend(engine, tables)
    finally:
        tables.metadata.drop_all(engine)
        engine.dispose()


@pytest.fixture(scope="module")
def sqlite_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    path = tmp_path_factory.mktemp("sqlite") / "contract.sqlite3"
    yield from _open(f"sqlite:///{path}", "")


@pytest.fixture(scope="module")
def postgres_backend() -> Iterator[Backend]:
    yield from _open(None, "CDRRATING_TEST_POSTGRES_URL")


@pytest.fixture(scope="module")
def mysql_backend() -> Iterator[Backend]:
    yield from _open(None, "CDRRATING_TEST_MYSQL_URL")


def _cdr_factory(backend: Backend) -> Callable[..., CDRRepository]:
    def make(*, clock: FakeClock, cursor_key: bytes) -> CDRRepository:
        backend.clean()
        return SQLCDRRepository(
            backend.engine, tables=backend.tables, clock=clock, cursor_key=cursor_key
        )

    return make


def _rate_factory(backend: Backend) -> Callable[..., RateRepository]:
    def make(*, clock: FakeClock, cursor_key: bytes) -> RateRepository:
        backend.clean()
        return SQLRateRepository(
            backend.engine, tables=backend.tables, clock=clock, cursor_key=cursor_key
        )

    return make


class TestSQLiteCDRRepository(CDRRepositoryContract):
    @pytest.fixture
    def make_cdr_repository(self, sqlite_backend: Backend) -> Callable[..., CDRRepository]:
        return _cdr_factory(sqlite_backend)


class TestSQLiteRateRepository(RateRepositoryContract):
    @pytest.fixture
    def make_rate_repository(self, sqlite_backend: Backend) -> Callable[..., RateRepository]:
        return _rate_factory(sqlite_backend)


class TestPostgresCDRRepository(CDRRepositoryContract):
    @pytest.fixture
    def make_cdr_repository(self, postgres_backend: Backend) -> Callable[..., CDRRepository]:
        return _cdr_factory(postgres_backend)


class TestPostgresRateRepository(RateRepositoryContract):
    @pytest.fixture
    def make_rate_repository(self, postgres_backend: Backend) -> Callable[..., RateRepository]:
        return _rate_factory(postgres_backend)


class TestMySQLCDRRepository(CDRRepositoryContract):
    @pytest.fixture
    def make_cdr_repository(self, mysql_backend: Backend) -> Callable[..., CDRRepository]:
        return _cdr_factory(mysql_backend)


class TestMySQLRateRepository(RateRepositoryContract):
    @pytest.fixture
    def make_rate_repository(self, mysql_backend: Backend) -> Callable[..., RateRepository]:
        return _rate_factory(mysql_backend)


# -- specific to the SQL adapter --------------------------------------------------------------


def test_default_metadata_names_and_money_types() -> None:
    assert set(metadata.tables) == {"cdrrating_cdrs", "cdrrating_rates", "cdrrating_sessions"}
    cdrs = metadata.tables["cdrrating_cdrs"]
    assert isinstance(cdrs.c.cost_micros.type, sa.BigInteger)
    assert isinstance(metadata.tables["cdrrating_rates"].c.per_minute_micros.type, sa.BigInteger)
    index_names = {ix.name for ix in cdrs.indexes}
    assert "ix_cdrrating_cdrs_started_at_us_call_id_tenant_key" in index_names
    assert "ix_cdrrating_cdrs_tenant_key_started_at_us_call_id" in index_names
    # A record's identity is (tenant, call_id): the same call id may live in two tenants.
    assert [c.name for c in cdrs.primary_key.columns] == ["call_id", "tenant_key"]
    assert {"prefix", "billed_seconds"} <= set(cdrs.c.keys())
    assert metadata.naming_convention["pk"] == "pk_%(table_name)s"
    # Bulk adds send cdr_values() tuples unchanged when the orders agree.
    assert tuple(c.name for c in cdrs.columns) == CDR_COLUMNS


def test_sqlite_default_is_a_wal_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    repo = SQLCDRRepository(create=True)
    try:
        repo.add(cdr(1))
        with repo.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert (tmp_path / "cdrrating.sqlite3").is_file()
    finally:
        repo.engine.dispose()


def test_queries_are_parameterised(sqlite_backend: Backend) -> None:
    repo = SQLCDRRepository(sqlite_backend.engine, tables=sqlite_backend.tables)
    sqlite_backend.clean()
    seen: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        seen.append(statement)

    needle = "zz'; DROP TABLE x; --"
    sa.event.listen(sqlite_backend.engine, "before_cursor_execute", record)
    try:
        repo.query(Query(search=needle, where={"tenant": needle}))
    finally:
        sa.event.remove(sqlite_backend.engine, "before_cursor_execute", record)
    assert seen and not any("DROP TABLE" in s for s in seen)


def test_import_without_sqlalchemy_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['sqlalchemy'] = None\n"
        "import cdrrating, cdrrating.repository, cdrrating.memory\n"
        "try:\n    import cdrrating.sql\nexcept ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'cdrrating[sql]'" in out.stdout


def test_storage_modules_keep_import_cdrrating_cheap() -> None:
    code = "import sys, cdrrating.repository, cdrrating.memory; print('sqlalchemy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- driver behaviour, on every engine --------------------------------------------------------

ENGINES = ["sqlite_backend", "postgres_backend", "mysql_backend"]


@pytest.fixture(params=ENGINES)
def backend(request: pytest.FixtureRequest) -> Backend:
    found: Backend = request.getfixturevalue(request.param)
    found.clean()
    return found


def test_a_long_in_list_is_bound_not_spelt_out(backend: Backend) -> None:
    # 70,000 values: past PostgreSQL's 65,535 parameters and SQLite's 32,766.
    repo = SQLCDRRepository(backend.engine, tables=backend.tables)
    repo.add_many([cdr(1), cdr(2, billsec=30), cdr(3)])
    wanted = ["call-2", *(f"x{i}" for i in range(70_000))]
    assert [s.call_id for s in repo.query(Query(where={"call_id": {"$in": wanted}}))] == ["call-2"]
    assert repo.count(Query(where={"call_id": {"$nin": wanted}})) == 2
    many = [30, *range(100_000, 170_000)]
    assert repo.count(Query(where={"billsec": {"$in": many}})) == 1


def test_writers_overlapping_in_opposite_orders_neither_deadlock_nor_fail(
    backend: Backend,
) -> None:
    repo = SQLCDRRepository(backend.engine, tables=backend.tables)
    ids_ = [f"c{i:03d}" for i in range(200)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def writer(order: list[str], billsec: int) -> None:
        try:
            for _ in range(4):
                barrier.wait()
                repo.upsert_many(cdr(i, billsec=billsec) for i in order)
        except BaseException as e:  # reported below, whatever it is
            errors.append(e)
            barrier.abort()

    threads = [
        threading.Thread(target=writer, args=(ids_, 10)),
        threading.Thread(target=writer, args=(ids_[::-1], 20)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert repo.count() == 200
    assert repo.count(Query(where={"billsec": {"$in": [10, 20]}})) == 200


def test_a_deadlock_is_retried_a_bounded_number_of_times(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = SQLCDRRepository(backend.engine, tables=backend.tables)
    real = repo._writer.begin
    failures = [2]  # transactions that meet a deadlock before one gets through

    class Deadlock(Exception):  # what psycopg and PyMySQL report, in one object
        sqlstate = "40P01"

        def __init__(self) -> None:
            super().__init__(1213, "Deadlock found when trying to get lock")

    def begin() -> Any:
        if failures[0] > 0:
            failures[0] -= 1
            raise sa.exc.OperationalError("UPDATE ...", None, Deadlock())
        return real()

    monkeypatch.setattr(repo._writer, "begin", begin)
    monkeypatch.setattr("cdrrating.sql.time.sleep", lambda _seconds: None)
    assert repo.upsert(cdr(1)).call_id == "call-1"
    assert failures == [0]
    failures[0] = 1_000
    with pytest.raises(StorageError, match="Deadlock") as info:
        repo.upsert(cdr(2))
    assert isinstance(info.value.__cause__, sa.exc.OperationalError)
    assert failures[0] == 1_000 - 5  # five tries, then the error
    assert repo.count() == 1


def test_no_driver_error_reaches_the_caller(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing-folder' / 'x.sqlite3'}"
    with pytest.raises(StorageError):
        SQLCDRRepository(url, create=True)
    repo = SQLCDRRepository(url)
    for call in (
        lambda: repo.add(cdr(1)),
        lambda: repo.upsert_many([cdr(1)]),
        repo.query,
        repo.count,
        lambda: repo.get("call-1"),
        lambda: repo.prune(timedelta(days=1)),
    ):
        with pytest.raises(StorageError):
            call()
    rates = SQLRateRepository(url)
    with pytest.raises(StorageError):
        rates.load_plan(None, currency="EUR")
    repo.engine.dispose()
    rates.engine.dispose()
