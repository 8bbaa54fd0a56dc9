"""cdrrating.streaming: every record of a query as CSV (RFC 4180), JSON or JSON Lines
chunks, read a page at a time."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdrrating import CDR, ValidationError
from cdrrating.memory import MemoryCDRRepository
from cdrrating.repository import Page, Query, StoredCDR
from cdrrating.streaming import MEDIA_TYPES, stream_records

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
CELLS = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)


class CountingRepository(MemoryCDRRepository):
    def __init__(self) -> None:
        super().__init__()
        self.pages = 0

    def query(self, query: Query | None = None) -> Page[StoredCDR]:
        self.pages += 1
        return super().query(query)


def filled(count: int, **kw: Any) -> CountingRepository:
    repo = CountingRepository()
    repo.add_many(
        CDR(
            call_id=f"c{i:03d}",
            started_at=T0 + timedelta(minutes=i),
            destination_number="4420",
            billsec=i,
            **kw,
        )
        for i in range(count)
    )
    return repo


def test_csv_is_rfc_4180() -> None:
    repo = filled(2)
    text = "".join(stream_records(repo, Query(fields=["call_id", "billsec", "tenant"])))
    assert text == "call_id,billsec,tenant\r\nc001,1,\r\nc000,0,\r\n"


def test_csv_quotes_what_needs_it_and_reads_back() -> None:
    rows: list[dict[str, Any]] = [
        {"a": 'say "hi", then\r\nleave', "b": None, "c": True},
        {"a": "plain", "b": Decimal("0.0125"), "c": False},
        {
            "a": "ünïcødé 📞",
            "b": MappingProxyType({"k": (1, 2)}),
            "c": datetime(2026, 1, 1, tzinfo=UTC),
        },
    ]
    repo = filled(3)
    records = iter(rows)
    text = "".join(stream_records(repo, Query(order="asc"), convert=lambda _r: next(records)))
    assert text.startswith('a,b,c\r\n"say ""hi"", then\r\nleave",,true\r\n')
    back = list(csv.reader(io.StringIO(text, newline="")))
    assert back == [
        ["a", "b", "c"],
        ['say "hi", then\r\nleave', "", "true"],
        ["plain", "0.0125", "false"],
        ["ünïcødé 📞", '{"k": [1, 2]}', "2026-01-01T00:00:00+00:00"],
    ]


@given(
    st.lists(
        st.lists(
            st.text(st.characters(exclude_categories=["Cs"]), max_size=8), min_size=2, max_size=2
        ),
        max_size=12,
    )
)
def test_any_text_round_trips_through_the_csv(rows: list[list[str]]) -> None:
    repo = filled(len(rows))
    records = iter(rows)
    chunks = list(
        stream_records(
            repo,
            Query(limit=5),
            columns=["x", "y"],
            convert=lambda _r: dict(zip(["x", "y"], next(records), strict=True)),
            chunk_size=7,
        )
    )
    back = list(csv.reader(io.StringIO("".join(chunks), newline="")))
    assert back == [["x", "y"], *rows]


def test_json_and_jsonl_read_back_equal() -> None:
    repo = filled(25)
    query = Query(limit=10, fields=["call_id", "billsec", "in_progress"])
    expected = [r.to_mapping(query.fields) for r in repo.query(Query(limit=100))]
    as_json = "".join(stream_records(repo, query, format="json", chunk_size=50))
    assert json.loads(as_json) == expected
    lines = "".join(stream_records(repo, query, format="jsonl")).splitlines()
    assert [json.loads(line) for line in lines] == expected


def test_decimals_are_written_as_exact_strings_in_json() -> None:
    repo = filled(1)
    convert = lambda _r: {"cost": Decimal("999999999999.999999"), "at": T0}  # noqa: E731
    [chunk] = stream_records(repo, format="json", convert=convert)
    assert chunk == '[{"cost": "999999999999.999999", "at": "2026-03-02T10:00:00+00:00"}]\n'
    with pytest.raises(TypeError):
        list(stream_records(repo, format="json", convert=lambda _r: {"x": object()}))


def test_nothing_matching() -> None:
    repo = filled(3)
    query = Query(search="nothing like this", fields=["call_id"])
    assert "".join(stream_records(repo, query, format="json")) == "[]\n"
    assert "".join(stream_records(repo, query, format="jsonl")) == ""
    assert "".join(stream_records(repo, query)) == "call_id\r\n"  # the header alone
    assert "".join(stream_records(repo, Query(search="nothing like this"))) == ""


def test_pages_are_read_as_the_chunks_are_taken() -> None:
    repo = filled(50)
    chunks = stream_records(repo, Query(limit=10, fields=["call_id"]), chunk_size=1)
    assert repo.pages == 0  # nothing is read before the first chunk is asked for
    first = next(chunks)
    assert first == "call_id\r\nc049\r\n"
    assert repo.pages == 1
    rest = list(chunks)
    assert len(rest) == 49
    assert repo.pages == 5


def test_chunks_are_about_chunk_size() -> None:
    repo = filled(200)
    chunks = list(stream_records(repo, Query(limit=30), format="jsonl", chunk_size=1000))
    sizes = [len(c) for c in chunks]
    longest_record = max(len(json.dumps(r.to_mapping())) + 2 for r in repo.query())
    assert all(1000 <= s < 1000 + longest_record for s in sizes[:-1])
    assert sum(sizes) == len("".join(chunks))


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"format": "xml"}, "format"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"chunk_size": True}, "chunk_size"),
        ({"query": {"limit": 5}}, "query"),
    ],
)
def test_bad_arguments_are_refused_at_the_call(options: dict[str, Any], field: str) -> None:
    repo = filled(1)
    with pytest.raises(ValidationError) as caught:
        stream_records(repo, **options)
    assert caught.value.field == field
    assert repo.pages == 0


def test_media_types() -> None:
    assert MEDIA_TYPES["csv"].startswith("text/csv")
    assert set(MEDIA_TYPES) == {"csv", "json", "jsonl"}
