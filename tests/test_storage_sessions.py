"""The session repository contract on memory, SQLite (always), PostgreSQL and
MariaDB/MySQL (when ``CDRRATING_TEST_POSTGRES_URL`` / ``CDRRATING_TEST_MYSQL_URL`` are
set; with ``CI=true`` an unreachable server fails the run), plus what is specific to the
SQL table."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cdrrating.charging import ChargingSession
from cdrrating.memory import MemorySessionRepository
from cdrrating.repository import LIST_API_FIELDS, SessionRepository
from cdrrating.testing.contract import (
    FLEET,
    KEY,
    T0,
    FakeClock,
    SessionRepositoryContract,
    session,
)

sa = pytest.importorskip("sqlalchemy")

from cdrrating.sql import SQLSessionRepository, metadata  # noqa: E402
from tests.test_storage_sql import Backend, _open  # noqa: E402


class TestMemorySessionRepository(SessionRepositoryContract):
    @pytest.fixture
    def make_session_repository(self) -> Callable[..., SessionRepository]:
        def make(*, clock: FakeClock, cursor_key: bytes) -> SessionRepository:
            return MemorySessionRepository(clock=clock, cursor_key=cursor_key)

        return make


@pytest.fixture(scope="module")
def sqlite_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    path = tmp_path_factory.mktemp("sessions") / "sessions.sqlite3"
    yield from _open(f"sqlite:///{path}", "")


@pytest.fixture(scope="module")
def postgres_backend() -> Iterator[Backend]:
    yield from _open(None, "CDRRATING_TEST_POSTGRES_URL")


@pytest.fixture(scope="module")
def mysql_backend() -> Iterator[Backend]:
    yield from _open(None, "CDRRATING_TEST_MYSQL_URL")


def _factory(backend: Backend) -> Callable[..., SessionRepository]:
    def make(*, clock: FakeClock, cursor_key: bytes) -> SessionRepository:
        with backend.engine.begin() as conn:
            conn.execute(backend.tables.sessions.delete())
        return SQLSessionRepository(
            backend.engine, tables=backend.tables, clock=clock, cursor_key=cursor_key
        )

    return make


class TestSQLiteSessionRepository(SessionRepositoryContract):
    @pytest.fixture
    def make_session_repository(self, sqlite_backend: Backend) -> Callable[..., SessionRepository]:
        return _factory(sqlite_backend)


class TestPostgresSessionRepository(SessionRepositoryContract):
    @pytest.fixture
    def make_session_repository(
        self, postgres_backend: Backend
    ) -> Callable[..., SessionRepository]:
        return _factory(postgres_backend)


class TestMySQLSessionRepository(SessionRepositoryContract):
    @pytest.fixture
    def make_session_repository(self, mysql_backend: Backend) -> Callable[..., SessionRepository]:
        return _factory(mysql_backend)


def test_adapters_satisfy_the_protocol(tmp_path: Path) -> None:
    assert isinstance(MemorySessionRepository(), SessionRepository)
    sql = SQLSessionRepository(f"sqlite:///{tmp_path / 's.sqlite3'}", create=True)
    assert isinstance(sql, SessionRepository)
    sql.engine.dispose()


def test_the_table_indexes_what_a_list_api_filters_by() -> None:
    table = metadata.tables["cdrrating_sessions"]
    indexed = {tuple(c.name for c in ix.columns) for ix in table.indexes}
    assert ("updated_at_us", "id") in indexed
    assert ("started_at_us", "id") in indexed
    for column in (
        "operator_id",
        "company_id",
        "location_country",
        "evse_id",
        "session_id",
        "charge_box_id",
        "auth_uid",
    ):
        assert any(cols[0] == column for cols in indexed), column
    assert [c.name for c in table.primary_key.columns] == ["id"]


def test_every_list_api_name_addresses_a_field() -> None:
    repo = MemorySessionRepository()
    for name in LIST_API_FIELDS:
        repo.query(filter={name: {"$exists": True}}, include_ongoing=True)


def test_the_list_api_names_are_the_names_the_list_shape_reads() -> None:
    # Storage's aliases and ChargingSession's list-shape reader name the list API's fields
    # separately (storage leaves out cost, in currency units there); this holds them to one
    # naming: a session read from a list-shape mapping has, at each aliased field, the value
    # the mapping holds under the alias.
    mapping = {
        "id": "s-1",
        "sessionId": "x-1",
        "operatorId": "op",
        "company": {"id": "co"},
        "auth": {"idTag": {"uid": "tag"}, "type": "RFID", "contractId": "c-9"},
        "location": {
            "id": "loc",
            "country": "NL",
            "type": "ON_STREET",
            "isPublic": True,
            "timeZone": "Europe/Amsterdam",
        },
        "isRoaming": True,
        "consumed": 1234,
        "evseId": "NL*E1",
        "chargeBoxId": "box",
        "startedAt": "2026-03-01T10:00:00Z",
        "endedAt": "2026-03-01T11:00:00Z",
        "updatedAt": "2026-03-01T11:05:00Z",
        "currency": "EUR",
        "chargingSeconds": 3000,
        "parkingSeconds": 600,
    }
    session = ChargingSession.from_mapping(mapping, shape="list")
    for name, field in LIST_API_FIELDS.items():
        if name in ("createdAt", "ongoing"):
            continue  # the repository's own field; derived from endedAt
        held: Any = mapping
        for key in name.split("."):
            held = held[key]
        value: Any = session
        for attr in field.split("."):
            value = getattr(value, attr)
        if isinstance(value, datetime):
            value = value.isoformat().replace("+00:00", "Z")
        assert value == held, (name, field, value, held)


@pytest.fixture(params=["sqlite_backend", "postgres_backend", "mysql_backend"])
def backend(request: pytest.FixtureRequest) -> Backend:
    found: Backend = request.getfixturevalue(request.param)
    return found


def test_a_cursor_over_empty_values_is_bound_not_spelt(backend: Backend) -> None:
    # A page that ends on a hostile value, then on an empty one: each cursor's position
    # reaches the database as parameters, and the statement states where NULL goes.
    repo = _factory(backend)(clock=FakeClock(T0 + timedelta(days=1)), cursor_key=KEY)
    hostile = "x'); DROP TABLE y;--"
    repo.add_many(
        session(n, operator_id=(None, hostile, "NLABC")[n % 3], id=f"s{n:02d}") for n in FLEET
    )
    seen: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        seen.append(statement)

    request: dict[str, Any] = {"sort": "operatorId", "order": "desc", "include_ongoing": True}
    sa.event.listen(backend.engine, "before_cursor_execute", record)
    try:
        pages = [repo.query(**request, limit=6)]
        while pages[-1].next_cursor is not None:
            pages.append(repo.query(**request, limit=6, next_page_cursor=pages[-1].next_cursor))
    finally:
        sa.event.remove(backend.engine, "before_cursor_execute", record)
    by_value: dict[str | None, list[str]] = {None: [], hostile: [], "NLABC": []}
    for n in FLEET:
        by_value[(None, hostile, "NLABC")[n % 3]].append(f"s{n:02d}")
    expected = [*by_value[hostile][::-1], *by_value["NLABC"][::-1], *by_value[None][::-1]]
    # Pages end on the hostile value, on "NLABC", and on an empty value.
    assert [[s.id for s in p] for p in pages] == [expected[i : i + 6] for i in range(0, 20, 6)]
    assert seen
    assert not any("DROP" in s or "NLABC" in s for s in seen)
    if backend.engine.dialect.name == "postgresql":
        assert all("NULLS LAST" in s for s in seen)
    else:
        assert not any("NULLS" in s for s in seen)
