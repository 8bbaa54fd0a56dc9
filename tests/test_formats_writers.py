"""Writers: RFC 4180 CSV, JSON Lines and the {ok, count, rows} JSON of API handlers."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cdrrating import CDR, Rate, RatePlan, Rater, rate
from cdrrating.formats import (
    CDR_COLUMNS,
    CHARGE_COLUMNS,
    CdrCsvReader,
    CdrJsonReader,
    Reject,
    write_cdrs,
    write_charges,
    write_records,
    write_rejects,
)

T0 = datetime(2026, 9, 23, 10, 0, tzinfo=UTC)
PLAN = RatePlan(
    [
        Rate.parse(
            {
                "prefix": "44",
                "rate": "0.0125",
                "billing_increment": "60/60",
                "destination": 'UK, "London"',
            }
        )
    ],
    currency="EUR",
)


def _cdrs() -> list[CDR]:
    return [
        CDR(
            call_id="a,1",
            started_at=T0,
            destination_number="442079460000",
            billsec=61,
            caller_number='=HYPERLINK("x")',
            extra={"note": "line\nbreak", "mos": "4.3"},
        ),
        CDR(call_id="b", started_at=T0, destination_number="999", billsec=5),
    ]


def test_csv_is_rfc4180_and_reads_back() -> None:
    out = io.StringIO(newline="")
    assert write_cdrs(_cdrs(), out) == 2
    text = out.getvalue()
    assert text.startswith(",".join(CDR_COLUMNS) + "\r\n")
    assert text.count("\r\n") == 3  # the line break inside a field is quoted, not a record end
    assert '"a,1"' in text
    assert list(CdrCsvReader(io.StringIO(text))) == _cdrs()


def test_csv_spreadsheet_options(tmp_path: Path) -> None:
    path = tmp_path / "cdrs.csv"
    write_cdrs(_cdrs(), path, bom=True, spreadsheet_safe=True)
    data = path.read_bytes()
    assert data.startswith(b"\xef\xbb\xbfcall_id,")
    assert "'=HYPERLINK" in data.decode("utf-8-sig")


def test_jsonl_and_json_read_back() -> None:
    for fmt in ("jsonl", "json"):
        out = io.StringIO()
        write_cdrs(_cdrs(), out, format=fmt)
        assert list(CdrJsonReader(io.StringIO(out.getvalue()))) == _cdrs()


def test_json_envelope_counts_first_for_sequences_and_streams_otherwise() -> None:
    out = io.StringIO()
    write_cdrs(_cdrs(), out, format="json")
    doc = json.loads(out.getvalue())
    assert list(doc) == ["ok", "count", "rows"] and doc["count"] == 2 and doc["ok"] is True
    out = io.StringIO()
    write_records(
        iter([{"a": 1}]), out, format="json", errors=[Reject(3, "bad", "x,y", None, "f.csv")]
    )
    doc = json.loads(out.getvalue())
    assert doc == {
        "ok": False,
        "rows": [{"a": 1}],
        "count": 1,
        "errors": [{"source": "f.csv", "line": 3, "field": None, "reason": "bad"}],
    }
    out = io.StringIO()
    assert write_records([], out, format="json") == 0
    assert json.loads(out.getvalue()) == {"ok": True, "count": 0, "rows": []}


def test_charges() -> None:
    charges = [rate(c, PLAN) for c in _cdrs()]
    out = io.StringIO(newline="")
    assert write_charges(charges, out) == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0]) == list(CHARGE_COLUMNS)
    first, second = rows
    assert (first["cost_micros"], first["cost"], first["currency"]) == ("25000", "0.025", "EUR")
    assert (first["billed_seconds"], first["status"], first["prefix"]) == ("120", "RATED", "44")
    assert first["rate_destination"] == 'UK, "London"'
    assert (second["status"], second["reason"], second["cost_micros"]) == ("UNRATED", "NO_RATE", "")
    assert json.loads(first["extra"]) == {"mos": "4.3", "note": "line\nbreak"}


def test_charges_of_a_batch_with_errors() -> None:
    result = Rater(default=PLAN).rate_many([*_cdrs(), {"call_id": "x"}])
    out = io.StringIO()
    assert write_charges(result, out, format="json", errors=result.errors) == 2
    doc = json.loads(out.getvalue())
    assert doc["ok"] is False and doc["count"] == 2
    assert doc["errors"][0]["position"] == 2
    assert doc["rows"][0]["cost_micros"] == 25_000


def test_rejects_and_bad_options() -> None:
    out = io.StringIO(newline="")
    write_rejects([Reject(7, "no date", 'a,"b"', "started_at", "in.csv")], out)
    assert (
        out.getvalue()
        == 'source,line,field,reason,raw\r\nin.csv,7,started_at,no date,"a,""b"""\r\n'
    )
    with pytest.raises(ValueError, match="one of csv, jsonl, json"):
        write_records([], io.StringIO(), format="xml")
    with pytest.raises(ValueError, match="only the columns"):
        write_records([{"a": 1, "b": 2}], io.StringIO(), columns=["a"])
