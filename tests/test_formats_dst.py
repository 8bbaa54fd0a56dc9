"""Calls across a daylight-saving change, through every CDR reader: durations are the
time that passed, in three zones, at both changes of the year."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

import pytest

from cdrrating import CDR
from cdrrating.formats import CDR_FORMATS, read_cdrs


class Call(NamedTuple):
    zone: str
    answered: str  # local wall time, no offset
    ended: str
    seconds: int  # the time that passed: what billsec must be


# Answered one minute before the change, ended one minute after its wall-clock hour. On
# the spring-forward day the wall clocks are 62 minutes apart but 2 minutes passed; on
# the fall-back day they are 62 minutes apart and 122 minutes passed. None of these wall
# times is one a change skips or repeats, so each names one instant.
CALLS = {
    "new_york_spring": Call("America/New_York", "2025-03-09 01:59:00", "2025-03-09 03:01:00", 120),
    "new_york_fall": Call("America/New_York", "2025-11-02 00:59:00", "2025-11-02 02:01:00", 7320),
    "berlin_spring": Call("Europe/Berlin", "2025-03-30 01:59:00", "2025-03-30 03:01:00", 120),
    "berlin_fall": Call("Europe/Berlin", "2025-10-26 01:59:00", "2025-10-26 03:01:00", 7320),
    "sydney_spring": Call("Australia/Sydney", "2025-10-05 01:59:00", "2025-10-05 03:01:00", 120),
    "sydney_fall": Call("Australia/Sydney", "2025-04-06 01:59:00", "2025-04-06 03:01:00", 7320),
}


def _instant(call: Call, text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(call.zone))


def _epoch_ms(call: Call, text: str) -> int:
    return int(_instant(call, text).timestamp()) * 1000


def _offset_text(call: Call, text: str) -> str:
    return _instant(call, text).isoformat()


def _input(fmt: str, call: Call) -> str:
    """One call, answered at once, in ``fmt``; billsec left to the reader where the
    format allows, else written as the true figure (which a wall-clock reading refuses
    on the fall-back day as more than the call's own end - answer)."""
    a, e, n = call.answered, call.ended, call.seconds
    if fmt == "asterisk":
        return (
            f'"acme","100","442079460000","default","","SIP/1","SIP/2","Dial","x",'
            f'"{a}","{a}","{e}",{n},{n},"ANSWERED","DOCUMENTATION"\n'
        )
    if fmt == "freeswitch-csv":
        return (
            f'"Alice","1000","442079460000","default","{a}","{a}","{e}","{n}","{n}",'
            '"NORMAL_CLEARING","u-1","","acme","PCMU","PCMU"\n'
        )
    if fmt == "freeswitch-json":
        variables = {
            "uuid": "u-1",
            "start_uepoch": str(_epoch_ms(call, a) * 1000),
            "answer_uepoch": str(_epoch_ms(call, a) * 1000),
            "end_uepoch": str(_epoch_ms(call, e) * 1000),
        }
        return json.dumps(
            {"variables": variables, "callflow": [{"caller_profile": {"destination_number": "44"}}]}
        )
    if fmt == "call-cdr":
        return (
            "call_id,to_num,start_ts,answer_ts,end_ts\n"
            f"c-1,442079460000,{_epoch_ms(call, a)},{_epoch_ms(call, a)},{_epoch_ms(call, e)}\n"
        )
    if fmt == "csv":
        return f"call_id,destination_number,started_at,answered_at,ended_at\nc-1,44,{a},{a},{e}\n"
    if fmt == "admin-api":
        # The API writes offsets: each side of the change has its own.
        return json.dumps(
            {
                "id": "api-1",
                "destination_number": "44",
                "started_at": _offset_text(call, a),
                "answered_at": _offset_text(call, a),
                "ended_at": _offset_text(call, e),
            }
        )
    if fmt == "platform-json":
        return json.dumps(
            {
                "call_uuid": "p-1",
                "to_number": "44",
                "initiation_time": a,
                "answer_time": a,
                "end_time": e,
            }
        )
    assert fmt == "json"
    return json.dumps(
        {
            "call_id": "j-1",
            "destination_number": "44",
            "started_at": a,
            "ended_at": e,
            "answered_at": a,
        }
    )


@pytest.mark.parametrize("fmt", sorted(CDR_FORMATS))
@pytest.mark.parametrize("case", sorted(CALLS))
def test_duration_across_a_daylight_saving_change_is_the_time_that_passed(
    fmt: str, case: str
) -> None:
    call = CALLS[case]
    source: io.IOBase
    if fmt == "parquet":
        # A binary format: the CSV call's columns, as a Parquet file of text columns.
        pytest.importorskip("pyarrow")
        import pyarrow.csv as pa_csv  # type: ignore[import-untyped]  # noqa: PLC0415
        import pyarrow.parquet as pq  # type: ignore[import-untyped]  # noqa: PLC0415

        text = _input("csv", call).encode()
        table = pa_csv.read_csv(
            io.BytesIO(text),
            convert_options=pa_csv.ConvertOptions(
                strings_can_be_null=False,
                column_types=dict.fromkeys(text.decode().split("\n")[0].split(","), "string"),
            ),
        )
        source = io.BytesIO()
        pq.write_table(table, source)
        source.seek(0)
    else:
        source = io.StringIO(_input(fmt, call))
    reader = read_cdrs(source, fmt, default_tz=ZoneInfo(call.zone))
    cdrs: list[CDR] = list(reader)
    assert reader.rejects == [], reader.rejects
    (cdr,) = cdrs
    assert cdr.answered_at is not None and cdr.ended_at is not None
    passed = cdr.ended_at.astimezone(UTC) - cdr.answered_at.astimezone(UTC)
    assert passed == timedelta(seconds=call.seconds)
    assert cdr.answered_at.astimezone(UTC) == _instant(call, call.answered).astimezone(UTC)
    assert cdr.billsec == call.seconds
    assert cdr.duration == call.seconds


@pytest.mark.parametrize(
    ("zone", "repeated"),
    [
        ("America/New_York", "2025-11-02 01:30:00"),
        ("Europe/Berlin", "2025-10-26 02:30:00"),
        ("Australia/Sydney", "2025-04-06 02:30:00"),
    ],
)
def test_a_wall_time_the_fall_back_repeats_is_a_rejected_row_not_a_guess(
    zone: str, repeated: str
) -> None:
    text = f"call_id,destination_number,started_at\nc-1,44,{repeated}\nc-2,44,2025-06-01 12:00:00\n"
    reader = read_cdrs(io.StringIO(text), "csv", default_tz=zone)
    assert [c.call_id for c in reader] == ["c-2"]
    (reject,) = reader.rejects
    assert reject.line == 2 and reject.field == "started_at"


def test_offsets_on_each_side_of_the_fall_back_are_read_exactly() -> None:
    # 01:59 EDT, then 01:01 EST an hour and two minutes later by wall clock: 2 minutes.
    text = (
        "call_id,destination_number,started_at,answered_at,ended_at\n"
        "c-1,44,2025-11-02T01:59:00-04:00,2025-11-02T01:59:00-04:00,2025-11-02T01:01:00-05:00\n"
    )
    (cdr,) = list(read_cdrs(io.StringIO(text), "csv"))
    assert cdr.billsec == cdr.duration == 120
