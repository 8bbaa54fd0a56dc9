"""One meaning of a query: random data and random queries (filters, search, sorts, time
ranges, page sizes, cursors both ways) give the same pages on every backend.

The in-memory adapter is the reference; SQLite always runs, PostgreSQL and MariaDB when
``CDRRATING_TEST_POSTGRES_URL`` / ``CDRRATING_TEST_MYSQL_URL`` are set (with ``CI=true``
an unreachable server fails the run, as in tests/test_storage_sql.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sa = pytest.importorskip("sqlalchemy")

from cdrrating._storage.entities import CDR_ENTITY  # noqa: E402
from cdrrating.cdr import CDR  # noqa: E402
from cdrrating.memory import MemoryCDRRepository  # noqa: E402
from cdrrating.repository import CDRRepository, Query  # noqa: E402
from cdrrating.sql import SQLCDRRepository  # noqa: E402
from cdrrating.testing.contract import KEY, T0, FakeClock  # noqa: E402
from tests.test_storage_sql import Backend, _open  # noqa: E402

SORTABLE = [name for name, f in CDR_ENTITY.fields.items() if f.sortable]
TENANTS = [None, "a", "b"]
NUMBERS = ["4420", "44207", "33", "Straße-1", "STRASSE", "100%_x", "a_b", "ΣΊΣΥΦΟΣ", "x\\y"]


@pytest.fixture(scope="module")
def sqlite_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    yield from _open(f"sqlite:///{tmp_path_factory.mktemp('diff') / 'd.sqlite3'}", "")


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


@st.composite
def datasets(draw: st.DrawFn) -> list[CDR]:
    size = draw(st.integers(0, 14))
    out = []
    for i in range(size):
        billsec = draw(st.sampled_from([0, 0, 5, 60, 61]))
        out.append(
            CDR(
                # Few ids and few start times: ties in every sort, ids shared by tenants.
                call_id=draw(st.sampled_from(["c1", "c2", "C1", "c1 ", f"k{i}"])),
                started_at=T0 + timedelta(seconds=draw(st.integers(0, 3))),
                destination_number=draw(st.sampled_from(NUMBERS)),
                caller_number=draw(st.sampled_from(["", "+44 1", "bob", "Bob"])),
                direction=draw(st.sampled_from(["inbound", "outbound", "internal"])),
                disposition="ANSWERED" if billsec else draw(st.sampled_from(["BUSY", "NO ANSWER"])),
                billsec=billsec,
                duration=billsec + draw(st.integers(0, 2)),
                tenant=draw(st.sampled_from(TENANTS)),
                cost_micros=draw(st.none() | st.integers(0, 3)),
                hangup_cause=draw(st.none() | st.sampled_from(["NORMAL", "busy"])),
            )
        )
    return out


def _values(field: str) -> st.SearchStrategy[Any]:
    kind = CDR_ENTITY.fields[field].kind.value
    if kind == "int":
        return st.integers(-1, 62)
    if kind == "time":
        return st.integers(0, 4).map(lambda s: T0 + timedelta(seconds=s))
    if kind == "bool":
        return st.booleans()
    if field == "direction":
        return st.sampled_from(["inbound", "outbound", "INTERNAL"])
    if field == "disposition":
        return st.sampled_from(["busy", "ANSWERED", "no answer"])
    if field == "tenant":  # None is added where an operator takes it
        return st.sampled_from(["a", "b", "c"])
    return st.sampled_from([*NUMBERS, "c1", "C1", "bob", "NORMAL", ""])


# The fields that may be empty come twice: NULL is where engines disagree most.
FILTERABLE = [
    "call_id", "started_at", "destination_number", "caller_number", "direction",
    "disposition", "billsec", "duration", "tenant", "cost_micros", "hangup_cause",
    "in_progress", "tenant", "cost_micros", "hangup_cause",
]  # fmt: skip


@st.composite
def conditions(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    if depth < 2 and draw(st.integers(0, 4)) == 0:
        op = draw(st.sampled_from(["$and", "$or"]))
        return {op: draw(st.lists(conditions(depth + 1), min_size=1, max_size=3))}
    field = draw(st.sampled_from(FILTERABLE))
    values = _values(field)
    op = draw(
        st.sampled_from(["eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"])
    )
    nullable = CDR_ENTITY.fields[field].nullable
    if op == "eq":
        return {field: draw(values | st.none()) if nullable else draw(values)}
    if op in ("$in", "$nin"):
        items = st.lists(values | st.none() if nullable else values, max_size=3)
        return {field: {op: draw(items)}}
    if op == "$exists":
        return {field: {op: draw(st.booleans())}}
    if op == "$ne" and nullable:
        return {field: {op: draw(values | st.none())}}
    return {field: {op: draw(values)}}


@st.composite
def queries(draw: st.DrawFn) -> Query:
    return Query(
        tenant=draw(st.sampled_from(TENANTS)),
        search=draw(st.none() | st.sampled_from(["44", "strasse", "%", "_", "σίσ", "BOUND", "b"])),
        since=draw(st.none() | st.integers(0, 3).map(lambda s: T0 + timedelta(seconds=s))),
        until=draw(st.none() | st.integers(1, 4).map(lambda s: T0 + timedelta(seconds=s))),
        where=draw(conditions()) if draw(st.integers(0, 4)) else None,
        sort=draw(st.sampled_from(SORTABLE)),
        order=draw(st.sampled_from(["asc", "desc"])),
        limit=draw(st.integers(1, 5)),
        include_in_progress=draw(st.booleans()),
        with_count=draw(st.booleans()),
    )


def walk(repo: CDRRepository, query: Query) -> list[Any]:
    """Every page forward, then every page back from the last; with counts."""

    def key(page: Any) -> list[tuple[str | None, str]]:
        return [(s.cdr.tenant, s.call_id) for s in page]

    pages = [repo.query(query)]
    while pages[-1].next_cursor is not None and len(pages) < 40:
        pages.append(repo.query(query.after(pages[-1].next_cursor)))
    back = [pages[-1]]
    while back[-1].previous_cursor is not None and len(back) < 40:
        back.append(repo.query(query.after(back[-1].previous_cursor)))
    counts = [p.count for p in pages] if query.with_count else []
    return [[key(p) for p in pages], [key(p) for p in back], counts, repo.count(query)]


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=datasets(),
    starts=st.sets(st.integers(0, 13), max_size=3),
    several=st.lists(queries(), min_size=8, max_size=8),
)
def test_every_backend_gives_the_same_pages(
    backend: Backend, data: list[CDR], starts: set[int], several: list[Query]
) -> None:
    clock = FakeClock(T0 + timedelta(days=1))
    memory = MemoryCDRRepository(clock=clock, cursor_key=KEY)
    backend.clean()
    sql = SQLCDRRepository(backend.engine, tables=backend.tables, clock=clock, cursor_key=KEY)
    for repo in (memory, sql):
        # Records are upserted one by one (a call given twice: the last wins), some as
        # start rows, so in_progress varies too.
        for i, record in enumerate(data):
            repo.upsert(record, in_progress=i in starts)
    # Several queries per data set: loading the data is the slow part on a server.
    for query in several:
        assert walk(sql, query) == walk(memory, query), query
