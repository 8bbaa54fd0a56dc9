from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType
from zoneinfo import ZoneInfo

import pytest

from cdrrating import CDR, Direction, Disposition, Rate, RatePlan, ValidationError, rate

from .conftest import T0

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("NO ANSWER", Disposition.NO_ANSWER),
        ("no_answer", Disposition.NO_ANSWER),
        ("answered", Disposition.ANSWERED),
        ("Busy", Disposition.BUSY),
        ("CANCELED", Disposition.CANCELLED),
    ],
)
def test_disposition_spellings(text: str, expected: Disposition) -> None:
    assert Disposition.parse(text) is expected


def test_unknown_disposition_lists_the_accepted_values() -> None:
    with pytest.raises(ValidationError) as info:
        CDR(call_id="x", started_at=T0, destination_number="1", disposition="HUNG UP")
    message = str(info.value)
    assert info.value.field == "disposition"
    assert "'HUNG UP'" in message
    for value in ("ANSWERED", "NO_ANSWER", "BUSY", "FAILED", "CONGESTION", "CANCELLED"):
        assert value in message


def test_duration_defaults_to_billsec() -> None:
    assert CDR(call_id="x", started_at=T0, destination_number="1", billsec=61).duration == 61


def test_extra_is_read_only_and_copied() -> None:
    source = {"codec": "PCMA"}
    cdr = CDR(call_id="x", started_at=T0, destination_number="1", extra=source)
    source["codec"] = "G729"
    assert cdr.extra["codec"] == "PCMA"
    assert isinstance(cdr.extra, MappingProxyType)
    with pytest.raises(TypeError):
        cdr.extra["mos"] = 4.1  # type: ignore[index]
    assert hash(cdr) == hash(CDR(call_id="x", started_at=T0, destination_number="1"))


def test_from_mapping_aliases_and_extra() -> None:
    cdr = CDR.from_mapping(
        {
            "uuid": "abc",
            "src": "+4930123",
            "dst": "0044207946",
            "start_time": "2025-04-22 10:00:00",
            "billable_duration": "30",
            "duration_sec": 40,
            "account_id": "acme",
            "codec": "OPUS",
            "mos": "4.2",
            "cost": "0.0125",
        }
    )
    assert (cdr.call_id, cdr.caller_number, cdr.destination_number) == (
        "abc",
        "+4930123",
        "0044207946",
    )
    assert cdr.started_at == datetime(2025, 4, 22, 10, tzinfo=UTC)
    assert (cdr.billsec, cdr.duration, cdr.tenant, cdr.cost_micros) == (30, 40, "acme", 12_500)
    assert dict(cdr.extra) == {"codec": "OPUS", "mos": "4.2"}
    assert cdr.disposition is Disposition.ANSWERED


def test_from_mapping_call_cdr_shape_with_epoch_ms() -> None:
    cdr = CDR.from_mapping(
        {
            "call_id": "c-1",
            "account_id": "t1",
            "from_num": "100",
            "to_num": "4930555",
            "start_ts": 1_745_316_000_000,
            "answer_ts": 1_745_316_005_000,
            "end_ts": "1745316065500",
            "duration_sec": 66,
            "answered": True,
            "disposition": None,
            "hangup_cause": "NORMAL_CLEARING",
            "queue_id": "q1",
            "agent_id": "a7",
            "cost_micros": 12,
        }
    )
    assert cdr.started_at == datetime(2025, 4, 22, 10, 0, tzinfo=UTC)
    assert cdr.billsec == 61  # ceil(60.5)
    assert (cdr.duration, cdr.disposition, cdr.cost_micros) == (66, Disposition.ANSWERED, 12)
    assert (cdr.queue_id, cdr.agent_id, cdr.hangup_cause) == ("q1", "a7", "NORMAL_CLEARING")


def test_answered_flag_false_means_no_answer() -> None:
    cdr = CDR.from_mapping({"id": "1", "start": T0, "dst": "44", "answered": "false"})
    assert cdr.disposition is Disposition.NO_ANSWER


def test_naive_timestamps_take_the_default_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    cdr = CDR.from_mapping(
        {"id": "1", "start": "2025-07-01 12:00:00", "dst": "44"}, default_tz=berlin
    )
    assert cdr.started_at == datetime(2025, 7, 1, 10, tzinfo=UTC)


def test_round_trip_keeps_offsets_and_extra() -> None:
    cdr = CDR(
        call_id="r",
        started_at=datetime(2025, 1, 1, 12, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        destination_number="91",
        answered_at=datetime(2025, 1, 1, 6, 30, 1, 250, tzinfo=UTC),
        billsec=3,
        duration=5,
        direction="inbound",
        extra={"src": "not an alias here", "n": 1},
    )
    back = CDR.from_mapping(cdr.to_mapping())
    assert back == cdr
    assert dict(back.extra) == {"src": "not an alias here", "n": 1}
    json.dumps(cdr.to_mapping())  # the mapping is JSON-ready


def test_plivo_fixture_parses() -> None:
    path = SHARED / "plivo-fixtures" / "callListResponse.json"
    if not path.exists():
        pytest.skip(f"shared data not present at {path}")
    objects = json.loads(path.read_text())["objects"]
    # The sample bills 924 s for a call answered at 15:45:02 and ended at 15:45:14:
    # a billsec larger than the record's own answer-to-end time is refused.
    for o in objects:
        with pytest.raises(ValidationError, match="at most the 12 s") as info:
            CDR.from_mapping(o)
        assert info.value.field == "bill_duration"
    cdrs = [CDR.from_mapping({**o, "bill_duration": 12}) for o in objects]
    assert all(c.started_at.tzinfo is not None for c in cdrs)
    assert {c.direction for c in cdrs} <= set(Direction)
    first = cdrs[0]
    assert first.call_id == objects[0]["call_uuid"]
    assert first.billsec == 12
    assert "billed_duration" in first.extra


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"billsec": -1}, "billsec"),
        ({"duration": -5}, "duration"),
        ({"billsec": 61, "duration": 60}, "billsec"),
        ({"started_at": datetime(2025, 1, 1)}, "started_at"),
        ({"destination_number": "1" * 51}, "destination_number"),
        ({"caller_number": "2" * 51}, "caller_number"),
        ({"direction": "sideways"}, "direction"),
        ({"call_id": ""}, "call_id"),
        ({"cost_micros": 0.5}, "cost_micros"),
        ({"cost_micros": -1}, "cost_micros"),
        ({"answered_at": T0 - timedelta(seconds=1)}, "answered_at"),
        ({"ended_at": T0 - timedelta(seconds=1)}, "ended_at"),
        (
            {"answered_at": T0 + timedelta(seconds=9), "ended_at": T0 + timedelta(seconds=5)},
            "ended_at",
        ),
        ({"billsec": 1.5}, "billsec"),
        ({"extra": ["not", "a", "mapping"]}, "extra"),
    ],
)
def test_bad_cdrs_name_the_field(kwargs: dict[str, object], field: str) -> None:
    base: dict[str, object] = {"call_id": "x", "started_at": T0, "destination_number": "44"}
    base.update(kwargs)
    with pytest.raises(ValidationError) as info:
        CDR(**base)  # type: ignore[arg-type]
    assert info.value.field == field
    assert field in str(info.value)
    assert "expected" in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"id": "1", "dst": "44"}, "started_at"),
        ({"start": "2025-01-01T00:00:00Z", "dst": "44"}, "call_id"),
        ({"id": "1", "start": "2025-01-01T00:00:00Z"}, "destination_number"),
        # Errors name the key as the row wrote it.
        ({"id": "1", "start": "yesterday-ish", "dst": "44"}, "start"),
        ({"id": "1", "start": 1.7e12, "dst": "44"}, "start"),
        ({"id": "1", "start": "2025-01-01T00:00:00Z", "dst": "44", "billsec": "ten"}, "billsec"),
        ({"id": "1", "start": "2025-01-01T00:00:00Z", "dst": "44", "cost": 0.1}, "cost"),
        (
            {"id": "1", "start": "2025-01-01T00:00:00Z", "dst": "44", "answered": "maybe"},
            "answered",
        ),
    ],
)
def test_bad_rows_name_the_field(row: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        CDR.from_mapping(row)
    assert info.value.field == field


def test_epoch_milliseconds_keep_millis() -> None:
    cdr = CDR.from_mapping({"id": "1", "start": "1745316000123", "dst": "44"})
    assert cdr.started_at.microsecond == 123_000


def test_constructor_derives_billsec_and_duration_from_timestamps() -> None:
    cdr = CDR(
        call_id="t",
        started_at=T0,
        destination_number="44",
        answered_at=T0 + timedelta(seconds=5),
        ended_at=T0 + timedelta(seconds=33, microseconds=1),
    )
    assert (cdr.billsec, cdr.duration) == (29, 34)
    given = CDR(
        call_id="t",
        started_at=T0,
        destination_number="44",
        billsec=3,
        answered_at=T0,
        ended_at=T0 + timedelta(seconds=9),
    )
    assert (given.billsec, given.duration) == (3, 9)


def test_with_charge_of_an_unrated_call_sets_no_currency() -> None:
    cdr = CDR(call_id="u", started_at=T0, destination_number="33", billsec=5)
    charge = rate(cdr, RatePlan([Rate("44", 1)], currency="EUR"))
    assert (cdr.with_charge(charge).cost_micros, cdr.with_charge(charge).currency) == (None, None)
