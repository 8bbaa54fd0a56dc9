"""`cdrrating sessions import` and `cdrrating sessions export`: every record stored or
reported with its position and reason; what is exported imports back equal."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdrrating.charging import ChargingSession
from cdrrating.cli import EXIT_OK, EXIT_REJECTED_ROWS, EXIT_UNAVAILABLE, EXIT_USAGE, main
from cdrrating.testing.contract import session

pytest.importorskip("sqlalchemy")

from cdrrating.sql import SQLSessionRepository


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CDRRATING_DB", raising=False)
    monkeypatch.delenv("CDRRATING_CURSOR_KEY", raising=False)
    return tmp_path


def stored(db: Path) -> dict[str, ChargingSession]:
    repo = SQLSessionRepository(f"sqlite:///{db}")
    try:
        return {s.id: s.session for s in repo.query(include_ongoing=True, limit=10_000)}
    finally:
        repo.engine.dispose()


FLEET = [session(n) for n in range(8)]


def test_every_record_is_stored_or_reported_with_its_position(workdir: Path) -> None:
    lines = [json.dumps(s.to_mapping(shape="list"), default=str) for s in FLEET[:3]]
    lines.insert(1, "{not json")
    lines.append(json.dumps({"id": "x", "startedAt": "2026-03-02T10:00:00Z", "consumed": "lots"}))
    lines.append("[1, 2]")
    lines.append("")
    # An older copy of the first session: the newer one is kept, and this one is said so.
    older = FLEET[0].to_mapping(shape="list")
    older["updatedAt"] = "2026-03-01T00:00:00+00:00"
    lines.append(json.dumps(older, default=str))
    (workdir / "in.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out, err = run("sessions", "import", "in.jsonl", "--db", "s.sqlite3")
    assert code == EXIT_REJECTED_ROWS
    assert json.loads(out) == {"imported": 3, "rejected": 3, "skipped": 1}
    assert "in.jsonl:2: rejected: line:" in err
    assert "in.jsonl:5: rejected: consumed: got 'lots', expected whole Wh" in err
    assert "in.jsonl:6: rejected: a JSON object expected, got list" in err
    assert "in.jsonl:8: skipped: session 's00' is also given at in.jsonl:1" in err
    assert stored(workdir / "s.sqlite3") == {s.id: s for s in FLEET[:3]}
    # Importing again: what is stored was updated later than the old copy.
    (workdir / "old.jsonl").write_text(json.dumps(older, default=str) + "\n", encoding="utf-8")
    code, out, err = run("sessions", "import", "old.jsonl", "--db", "s.sqlite3")
    assert code == EXIT_OK
    assert "old.jsonl:1: skipped: session 's00' is stored with a later update" in err
    assert json.loads(out) == {"imported": 0, "rejected": 0, "skipped": 1}


@pytest.mark.parametrize(("fmt", "shape"), [("jsonl", "list"), ("json", "ocpi"), ("csv", "list")])
def test_what_is_exported_imports_back_equal(workdir: Path, fmt: str, shape: str) -> None:
    repo = SQLSessionRepository("sqlite:///a.sqlite3", create=True)
    fleet = [
        *FLEET,
        session(9, extra={"tariff": {"kind": "AD_HOC"}, "price": Decimal("0.2500"), "tags": ["a"]}),
    ]
    if fmt == "csv":
        # CSV cells are text: extra values come back as text (objects and arrays as
        # JSON), so only text and JSON extras make the trip unchanged.
        fleet = [
            attrs.evolve(s, extra={"kind": str(s.extra.get("n")), "tags": ["a"]}) for s in fleet
        ]
    repo.add_many(fleet)
    repo.engine.dispose()
    code, _, err = run(
        "sessions", "export", "--db", "a.sqlite3", "--format", fmt, "--shape", shape,
        "--include-ongoing", "-o", f"out.{fmt}",
    )  # fmt: skip
    assert code == EXIT_OK, err
    assert f"exported {len(fleet)} sessions" in err
    code, out, err = run("sessions", "import", f"out.{fmt}", "--db", "b.sqlite3")
    assert code == EXIT_OK, err
    assert json.loads(out)["imported"] == len(fleet)
    back = stored(workdir / "b.sqlite3")
    if shape == "list":
        assert back == {s.id: s for s in fleet}
    else:  # OCPI has no place for some fields; what it has comes back
        expected = {
            s.id: ChargingSession.from_mapping(
                json.loads(json.dumps(s.to_mapping(shape="ocpi"), default=str)), shape="ocpi"
            )
            for s in fleet
        }
        assert {k: v.energy_wh for k, v in back.items()} == {
            k: v.energy_wh for k, v in expected.items()
        }
        assert {k: v.location.country for k, v in back.items()} == {
            k: s.location.country for k, s in ((s.id, s) for s in fleet)
        }


def test_export_takes_the_list_api_request(workdir: Path) -> None:
    repo = SQLSessionRepository("sqlite:///a.sqlite3", create=True)
    repo.add_many(FLEET)
    repo.engine.dispose()
    code, out, err = run(
        "sessions", "export", "--db", "a.sqlite3", "--filter",
        '{"location.country": "NL", "consumed": {"$gte": 1000}}', "--sort", "startedAt",
        "--order", "desc", "--fields", "id,consumed,location.country",
    )  # fmt: skip
    assert code == EXIT_OK, err
    rows = [json.loads(line) for line in out.splitlines()]
    expected = sorted(
        (s for s in FLEET if s.location.country == "NL" and s.energy_wh >= 1000 and not s.ongoing),
        key=lambda s: (s.started_at, s.id),
        reverse=True,
    )
    assert rows == [
        {"id": s.id, "consumed": s.energy_wh, "location": {"country": "NL"}} for s in expected
    ]
    code, _, err = run("sessions", "export", "--db", "a.sqlite3", "--filter", '{"nope": 1}')
    assert code == EXIT_USAGE
    assert "filter.nope" in err
    code, _, err = run(
        "sessions", "export", "--db", "a.sqlite3", "--shape", "ocpi", "--fields", "id"
    )
    assert code == EXIT_USAGE
    code, _, err = run("sessions", "export", "--db", "missing.sqlite3")
    assert code == EXIT_UNAVAILABLE


def test_csv_rows_name_their_line(workdir: Path) -> None:
    (workdir / "in.csv").write_text(
        "id,startedAt,consumed,location.country,location.isPublic\r\n"
        "a,2026-03-02T10:00:00Z,100,NL,true\r\n"
        "b,2026-03-02T10:00:00Z,-5,NL,true\r\n"
        "c,2026-03-02T10:00:00Z,5,DE,maybe\r\n",
        encoding="utf-8",
    )
    code, out, err = run("sessions", "import", "in.csv", "--db", "s.sqlite3")
    assert code == EXIT_REJECTED_ROWS
    assert "in.csv:3: rejected: consumed" in err
    assert "in.csv:4: rejected: location.isPublic: got 'maybe', expected true or false" in err
    assert json.loads(out) == {"imported": 1, "rejected": 2, "skipped": 0}
    a = stored(workdir / "s.sqlite3")["a"]
    assert (a.energy_wh, a.location.country, a.location.public) == (100, "NL", True)


T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sizes=st.lists(st.integers(0, 5), min_size=1, max_size=6),
    fmt=st.sampled_from(["jsonl", "json", "csv"]),
)
def test_export_then_import_round_trips(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[int], fmt: str
) -> None:
    folder = tmp_path_factory.mktemp("rt")
    fleet = [
        session(
            n,
            energy_wh=size * 250,
            updated_at=T0 + timedelta(hours=2, seconds=n),
            extra={"note": f"n{size}", "tariff": {"kind": "AD_HOC"}},
        )
        for n, size in enumerate(sizes)
    ]
    repo = SQLSessionRepository(f"sqlite:///{folder / 'a.sqlite3'}", create=True)
    repo.add_many(fleet)
    repo.engine.dispose()
    out = folder / f"out.{fmt}"
    code, _, err = run(
        "sessions", "export", "--db", str(folder / "a.sqlite3"), "--format", fmt,
        "--include-ongoing", "-o", str(out),
    )  # fmt: skip
    assert code == EXIT_OK, err
    code, _, err = run("sessions", "import", str(out), "--db", str(folder / "b.sqlite3"))
    assert code == EXIT_OK, err
    assert stored(folder / "b.sqlite3") == {s.id: s for s in fleet}
