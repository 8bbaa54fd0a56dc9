"""Dotted paths into ``extra``: one meaning on every backend.

Random ``extra`` documents (values of every JSON type at the same path across rows:
numbers, text, booleans, null, objects, arrays, missing keys) and random filters over
dotted paths give the same pages on memory and on each SQL backend (SQLite always;
PostgreSQL and MariaDB when ``CDRRATING_TEST_POSTGRES_URL`` / ``CDRRATING_TEST_MYSQL_URL``
are set). Worked examples pin the typed comparison down.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sa = pytest.importorskip("sqlalchemy")

from cdrrating.cdr import CDR  # noqa: E402
from cdrrating.errors import ValidationError  # noqa: E402
from cdrrating.memory import MemoryCDRRepository  # noqa: E402
from cdrrating.repository import CDRRepository, Query  # noqa: E402
from cdrrating.sql import SQLCDRRepository  # noqa: E402
from cdrrating.testing.contract import KEY, T0, FakeClock  # noqa: E402
from tests.test_storage_sql import Backend, _open  # noqa: E402


@pytest.fixture(scope="module")
def sqlite_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    yield from _open(f"sqlite:///{tmp_path_factory.mktemp('nested') / 'n.sqlite3'}", "")


@pytest.fixture(scope="module")
def postgres_backend() -> Iterator[Backend]:
    yield from _open(None, "CDRRATING_TEST_POSTGRES_URL")


@pytest.fixture(scope="module")
def mysql_backend() -> Iterator[Backend]:
    yield from _open(None, "CDRRATING_TEST_MYSQL_URL")


@pytest.fixture(params=["memory", "sqlite_backend", "postgres_backend", "mysql_backend"])
def repo(request: pytest.FixtureRequest) -> CDRRepository:
    clock = FakeClock(T0 + timedelta(days=1))
    if request.param == "memory":
        return MemoryCDRRepository(clock=clock, cursor_key=KEY)
    backend: Backend = request.getfixturevalue(request.param)
    backend.clean()
    return SQLCDRRepository(backend.engine, tables=backend.tables, clock=clock, cursor_key=KEY)


# Values that meet at one path across rows. Numbers stay where every database compares
# exactly (64-bit ints; floats with at most 30 decimals below 1e35: MariaDB's DECIMAL).
SCALARS = st.sampled_from(
    [0, 1, -1, 1.0, 1.5, 2, 10, 2**53 + 1, 9007199254740992.0, -0.0, 1e16, 0.1, 0.30000000000000004,
     "", "1", "10", "2", "a", "A", "b", "NL", "NL ", "nl", "ß", "ÿ", "z\u00e9", "😀", "a'b", "%_",
     True, False, None]
)  # fmt: skip
VALUES: st.SearchStrategy[Any] = SCALARS | st.just({"k": 1}) | st.just([1, "a"]) | st.just([])
KEYS = ["a", "b"]


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for key in KEYS:
        shape = draw(st.integers(0, 3))
        if shape == 0:
            continue  # missing
        if shape == 1:
            doc[key] = draw(VALUES)
        else:
            doc[key] = {k: draw(VALUES) for k in draw(st.sets(st.sampled_from(KEYS), max_size=2))}
    return doc


PATHS = ["extra.a", "extra.b", "extra.a.a", "extra.a.b", "extra.b.a", "extra.a.a.a"]
OPERANDS = SCALARS.filter(lambda v: v is not None)


@st.composite
def conditions(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    if depth < 2 and draw(st.integers(0, 5)) == 0:
        op = draw(st.sampled_from(["$and", "$or"]))
        return {op: draw(st.lists(conditions(depth + 1), min_size=1, max_size=3))}
    path = draw(st.sampled_from(PATHS))
    op = draw(st.sampled_from(["eq", "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin"]))
    if op == "eq":
        return {path: draw(SCALARS)}
    if op in ("$in", "$nin"):
        return {path: {op: draw(st.lists(SCALARS, max_size=4))}}
    if op in ("$eq", "$ne"):
        return {path: {op: draw(SCALARS)}}
    extra = draw(st.sampled_from(["", "$exists", "$regex"]))
    cond: dict[str, Any] = {op: draw(OPERANDS)}
    if extra == "$exists":
        cond["$exists"] = draw(st.booleans())
    elif extra == "$regex":
        cond = {"$regex": draw(st.sampled_from(["^N", "a", "^$", "[0-9]", "L $"]))}
    return {path: cond}


SORTS = [None, "extra.a", "extra.b", "extra.a.a", "extra.a.b"]


def listing(repo: CDRRepository, where: dict[str, Any], sort: str | None, order: str) -> list[Any]:
    """Every page forward, then back from the last one, with the projection and count."""
    query = Query(
        where=where,
        sort=sort,
        order=order,  # type: ignore[arg-type]  # drawn from "asc"/"desc"
        limit=4,
        fields=["call_id", "extra.a.a"],
    )
    pages = [repo.query(query)]
    while pages[-1].next_cursor is not None:
        pages.append(repo.query(query.after(pages[-1].next_cursor)))
    back = [pages[-1]]
    while back[-1].previous_cursor is not None:
        back.append(repo.query(query.after(back[-1].previous_cursor)))
    return [
        [p.to_records() for p in pages],
        [[s.call_id for s in p] for p in back[::-1]],
        repo.count(query),
    ]


@pytest.fixture(params=["sqlite_backend", "postgres_backend", "mysql_backend"])
def backend(request: pytest.FixtureRequest) -> Backend:
    found: Backend = request.getfixturevalue(request.param)
    return found


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    docs=st.lists(documents(), max_size=12),
    several=st.lists(
        st.tuples(conditions(), st.sampled_from(SORTS), st.sampled_from(["asc", "desc"])),
        min_size=10,
        max_size=10,
    ),
)
def test_memory_and_sql_agree_on_dotted_paths(
    backend: Backend, docs: list[dict[str, Any]], several: list[tuple[Any, Any, str]]
) -> None:
    clock = FakeClock(T0 + timedelta(days=1))
    memory = MemoryCDRRepository(clock=clock, cursor_key=KEY)
    backend.clean()
    sql = SQLCDRRepository(backend.engine, tables=backend.tables, clock=clock, cursor_key=KEY)
    records = [
        CDR(
            call_id=f"c{i:02d}",
            started_at=T0 + timedelta(seconds=i % 3),
            destination_number="44",
            extra=d,
        )
        for i, d in enumerate(docs)
    ]
    memory.add_many(records)
    sql.add_many(records)
    for where, sort, order in several:
        got = listing(sql, where, sort, order)
        assert got == listing(memory, where, sort, order), (where, sort, order)
        # Forward and back give the same pages.
        assert got[1] == [[r["call_id"] for r in p] for p in got[0]]


# -- worked examples: the typed comparison ------------------------------------------------

ROWS: dict[str, dict[str, Any]] = {
    "nl": {"location": {"country": "NL", "power": 11, "public": True}},
    "de": {"location": {"country": "DE", "power": 22.5, "public": False}},
    "num": {"location": {"country": 7, "power": "50"}},
    "null": {"location": {"country": None}},
    "arr": {"location": [1, 2]},
    "none": {},
}


def _ids(repo: CDRRepository, where: dict[str, Any]) -> list[str]:
    return sorted(s.call_id for s in repo.query(Query(where=where)))


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"extra.location.country": "NL"}, ["nl"]),
        # $ne matches what $eq does not: other types, null and missing keys too.
        ({"extra.location.country": {"$ne": "NL"}}, ["arr", "de", "none", "null", "num"]),
        # Numbers compare with numbers only: the string "50" is not > 20.
        ({"extra.location.power": {"$gt": 20}}, ["de"]),
        ({"extra.location.power": {"$gte": 11, "$lte": 11.0}}, ["nl"]),
        ({"extra.location.power": {"$gt": "4"}}, ["num"]),
        # Strings compare with strings only: 7 is no text.
        ({"extra.location.country": {"$lt": "ZZ"}}, ["de", "nl"]),
        ({"extra.location.public": True}, ["nl"]),
        ({"extra.location.public": {"$lt": True}}, ["de"]),
        ({"extra.location.public": 1}, []),
        ({"extra.location.country": None}, ["arr", "none", "null"]),
        ({"extra.location.country": {"$exists": True}}, ["de", "nl", "num"]),
        ({"extra.location.country": {"$in": ["DE", 7]}}, ["de", "num"]),
        ({"extra.location.country": {"$nin": ["DE", None]}}, ["nl", "num"]),
        ({"extra.location.country": {"$regex": "^[A-Z]{2}$"}}, ["de", "nl"]),
        ({"extra.location": {"$exists": True}}, ["arr", "de", "nl", "null", "num"]),
        (
            {"$or": [{"extra.location.country": "NL"}, {"extra.location.power": "50"}]},
            ["nl", "num"],
        ),
    ],
)
def test_typed_comparison(repo: CDRRepository, where: dict[str, Any], expected: list[str]) -> None:
    repo.add_many(
        CDR(call_id=k, started_at=T0, destination_number="44", extra=v) for k, v in ROWS.items()
    )
    assert _ids(repo, where) == expected


def test_sorting_by_a_path_orders_classes_then_values(repo: CDRRepository) -> None:
    values = {"a": 2, "b": "x", "c": 1.5, "d": True, "e": None, "f": "X", "g": {"k": 1}, "h": -1}
    repo.add_many(
        CDR(call_id=k, started_at=T0, destination_number="44", extra={"v": v})
        for k, v in values.items()
    )
    query = Query(sort="extra.v", order="asc", limit=3)
    pages = [repo.query(query)]
    while pages[-1].next_cursor is not None:
        pages.append(repo.query(query.after(pages[-1].next_cursor)))
    # null < numbers < text (by code point) < booleans < objects and arrays.
    assert [s.call_id for p in pages for s in p] == ["e", "h", "c", "a", "f", "b", "d", "g"]
    with pytest.raises(ValidationError, match="cursor"):
        repo.query(Query(sort="extra.w", order="asc", limit=3, cursor=pages[0].next_cursor))


def test_text_compares_by_code_point_spaces_and_case_included(repo: CDRRepository) -> None:
    texts = {"a": "NL", "b": "NL ", "c": "nl", "d": "NL\t", "e": "Ñ", "f": "N"}
    repo.add_many(
        CDR(call_id=k, started_at=T0, destination_number="44", extra={"c": v})
        for k, v in texts.items()
    )
    assert _ids(repo, {"extra.c": "NL"}) == ["a"]
    assert _ids(repo, {"extra.c": {"$in": ["NL "]}}) == ["b"]
    assert _ids(repo, {"extra.c": {"$gt": "NL"}}) == sorted(k for k, v in texts.items() if v > "NL")
    assert _ids(repo, {"extra.c": {"$lte": "NL"}}) == sorted(
        k for k, v in texts.items() if v <= "NL"
    )
    ordered = repo.query(Query(sort="extra.c", order="asc"))
    assert [s.call_id for s in ordered] == sorted(texts, key=lambda k: (texts[k], k))


def test_projection_keeps_the_nesting(repo: CDRRepository) -> None:
    repo.add_many(
        CDR(call_id=k, started_at=T0, destination_number="44", extra=v) for k, v in ROWS.items()
    )
    page = repo.query(
        Query(sort="call_id", order="asc", limit=2, fields=["call_id", "extra.location.country"])
    )
    assert page.to_records() == [
        {"call_id": "arr", "extra": {"location": {"country": None}}},
        {"call_id": "de", "extra": {"location": {"country": "DE"}}},
    ]


@pytest.mark.parametrize(
    "where",
    [
        {"extra": "x"},
        {"extra.": 1},
        {"extra.a b": 1},
        {"extra.1a": 1},
        {"extra.a'); DROP TABLE x;--": 1},
        {"extra." + ".".join(["k"] * 17): 1},
        {"extra.a": {"$gt": None}},
        {"extra.a": {"$eq": {"k": 1}}},
        {"extra.a": [1]},
        {"extra.a": float("nan")},
        {"extra.a": 2**64},
        {"extra.a": {"$regex": "("}},
        {"extra.a": {"$foo": 1}},
        {"destination_number.x": "1"},
    ],
)
def test_bad_paths_and_operands_are_refused(where: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="where"):
        MemoryCDRRepository().query(Query(where=where))


def test_a_nul_in_extra_is_refused_before_writing(repo: CDRRepository) -> None:
    with pytest.raises(ValidationError, match="extra"):
        repo.add(CDR(call_id="x", started_at=T0, destination_number="44", extra={"a": "b\x00"}))
    assert repo.count() == 0


def test_paths_and_values_are_bound_not_spelt(sqlite_backend: Backend) -> None:
    sqlite_backend.clean()
    repo = SQLCDRRepository(sqlite_backend.engine, tables=sqlite_backend.tables)
    seen: list[str] = []

    def record(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        seen.append(statement)

    sa.event.listen(sqlite_backend.engine, "before_cursor_execute", record)
    try:
        repo.query(Query(where={"extra.location.country": {"$in": ["x'); DROP TABLE y;--"]}}))
    finally:
        sa.event.remove(sqlite_backend.engine, "before_cursor_execute", record)
    assert seen and not any("DROP" in s or "location" in s for s in seen)
