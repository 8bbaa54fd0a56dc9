"""One meaning of a session listing: random sessions and random list-API requests
(filters over columns, JSON values and ``extra``, sorts with ties and on fields that may
be empty, ongoing included or not, the updated range, page sizes, cursors both ways)
give the same pages on memory and on each SQL backend (SQLite always; PostgreSQL and
MariaDB when their URLs are set)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sa = pytest.importorskip("sqlalchemy")

from cdrrating.charging import ChargingSession, SessionAuth, SessionLocation  # noqa: E402
from cdrrating.memory import MemorySessionRepository  # noqa: E402
from cdrrating.repository import SessionRepository  # noqa: E402
from cdrrating.sql import SQLSessionRepository  # noqa: E402
from cdrrating.testing.contract import KEY, T0, FakeClock  # noqa: E402
from tests.test_storage_sql import Backend, _open  # noqa: E402


@pytest.fixture(scope="module")
def sqlite_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    yield from _open(f"sqlite:///{tmp_path_factory.mktemp('sdiff') / 's.sqlite3'}", "")


@pytest.fixture(scope="module")
def postgres_backend() -> Iterator[Backend]:
    yield from _open(None, "CDRRATING_TEST_POSTGRES_URL")


@pytest.fixture(scope="module")
def mysql_backend() -> Iterator[Backend]:
    yield from _open(None, "CDRRATING_TEST_MYSQL_URL")


@pytest.fixture(params=["sqlite_backend", "postgres_backend", "mysql_backend"])
def backend(request: pytest.FixtureRequest) -> Backend:
    found: Backend = request.getfixturevalue(request.param)
    return found


TEXTS = ["NL", "DE", "nl", "NL ", "", "ß", "Z"]
maybe_text = st.none() | st.sampled_from(TEXTS)


@st.composite
def fleets(draw: st.DrawFn) -> list[ChargingSession]:
    out = []
    for i in range(draw(st.integers(0, 12))):
        start = T0 + timedelta(minutes=draw(st.integers(0, 3)))
        ended_after = draw(st.none() | st.integers(0, 2))
        ended = None if ended_after is None else start + timedelta(minutes=ended_after)
        updated = T0 + timedelta(hours=1, minutes=draw(st.integers(0, 3)))
        extra_value = draw(st.sampled_from([None, 1, 2.5, "a", "B", True, {"k": 1}, [1]]))
        out.append(
            ChargingSession(
                id=f"s{i:02d}",
                started_at=start,
                ended_at=ended,
                updated_at=max(updated, ended) if ended is not None else updated,
                energy_wh=draw(st.sampled_from([0, 1, 1000, 2500])),
                location=SessionLocation(
                    country=draw(maybe_text), public=draw(st.none() | st.booleans())
                ),
                auth=SessionAuth(uid=draw(maybe_text), type=draw(maybe_text)),
                operator_id=draw(maybe_text),
                company_id=draw(maybe_text),
                evse_id=draw(maybe_text),
                roaming=draw(st.booleans()),
                cost_micros=draw(st.none() | st.sampled_from([0, 5, 1_000_000])),
                extra={} if extra_value is None else {"v": extra_value},
            )
        )
    return out


NAMES = {
    "location.country": maybe_text,
    "operatorId": maybe_text,
    "company.id": maybe_text,
    "auth.idTag.uid": maybe_text,
    "auth.type": maybe_text,
    "evseId": maybe_text,
    "consumed": st.sampled_from([0, 1, 999, 1000, 2500]),
    "cost_micros": st.sampled_from([0, 5, 6, 1_000_000]),
    "isRoaming": st.booleans(),
    "location.isPublic": st.booleans(),
    "ongoing": st.booleans(),
    "extra.v": st.sampled_from([1, 1.0, 2.5, "a", "B", True, False]),
    "startedAt": st.integers(0, 4).map(lambda m: (T0 + timedelta(minutes=m)).isoformat()),
    "endedAt": st.integers(0, 5).map(lambda m: (T0 + timedelta(minutes=m)).isoformat()),
}


@st.composite
def filters(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    if depth < 2 and draw(st.integers(0, 5)) == 0:
        op = draw(st.sampled_from(["$and", "$or"]))
        return {op: draw(st.lists(filters(depth + 1), min_size=1, max_size=3))}
    name = draw(st.sampled_from(sorted(NAMES)))
    values = NAMES[name]
    op = draw(
        st.sampled_from(["eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"])
    )
    if op == "$exists":
        return {name: {op: draw(st.booleans())}}
    if op in ("$in", "$nin"):
        return {name: {op: draw(st.lists(values, max_size=3))}}
    value = draw(values)
    if value is None and op not in ("eq", "$ne"):
        value = draw(values.filter(lambda v: v is not None))
    return {name: value if op == "eq" else {op: value}}


# Columns never empty, values inside the JSON document, and columns that may be empty
# (NULL sorts lowest; "" is a value, above NULL).
SORTS = [None, "updatedAt", "startedAt", "id", "ongoing", "consumed", "extra.v"]
SORTS += ["endedAt", "operatorId", "company.id", "location.country", "auth.idTag.uid", "evseId"]


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "filter": draw(st.none() | filters()),
        "sort": draw(st.sampled_from(SORTS)),
        "order": draw(st.sampled_from(["asc", "desc"])),
        "since": draw(
            st.none() | st.integers(0, 3).map(lambda m: T0 + timedelta(hours=1, minutes=m))
        ),
        "before": draw(
            st.none() | st.integers(1, 4).map(lambda m: T0 + timedelta(hours=1, minutes=m))
        ),
        "include_ongoing": draw(st.booleans()),
        "limit": draw(st.integers(1, 5)),
    }


def walk(repo: SessionRepository, request: dict[str, Any]) -> list[Any]:
    pages = [repo.query(**request)]
    while pages[-1].next_cursor is not None and len(pages) < 30:
        pages.append(repo.query(**request, next_page_cursor=pages[-1].next_cursor))
    back = [pages[-1]]
    while back[-1].previous_cursor is not None and len(back) < 30:
        back.append(repo.query(**request, previous_page_cursor=back[-1].previous_cursor))
    counted = {k: request[k] for k in ("filter", "since", "before", "include_ongoing")}
    return [
        [[s.id for s in p] for p in pages],
        [[s.id for s in p] for p in back[::-1]],
        repo.count(**counted),
    ]


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(fleet=fleets(), several=st.lists(requests(), min_size=8, max_size=8))
def test_every_backend_gives_the_same_pages(
    backend: Backend, fleet: list[ChargingSession], several: list[dict[str, Any]]
) -> None:
    clock = FakeClock(T0 + timedelta(days=1))
    memory = MemorySessionRepository(clock=clock, cursor_key=KEY)
    with backend.engine.begin() as conn:
        conn.execute(backend.tables.sessions.delete())
    sql = SQLSessionRepository(backend.engine, tables=backend.tables, clock=clock, cursor_key=KEY)
    memory.add_many(fleet)
    sql.add_many(fleet)
    for request in several:
        got = walk(sql, request)
        assert got == walk(memory, request), request
        assert got[1] == got[0]  # forward, then back: the same pages
