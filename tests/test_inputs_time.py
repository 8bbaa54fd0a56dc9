"""Times are read as instants, never guessed (rating-rules §2 and §6).

Durations across daylight-saving changes in three zones, epoch numbers that need a
unit, zone abbreviations, texts without a date, and wall times a zone skips or repeats.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdrrating import CDR, Rate, ValidationError

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
SYDNEY = ZoneInfo("Australia/Sydney")

# (zone, the instant of a change, "spring" when the clocks jump forward there)
TRANSITIONS = [
    (NEW_YORK, datetime(2024, 3, 10, 7, tzinfo=UTC), "spring"),  # 02:00 EST -> 03:00 EDT
    (NEW_YORK, datetime(2024, 11, 3, 6, tzinfo=UTC), "fall"),  # 02:00 EDT -> 01:00 EST
    (BERLIN, datetime(2024, 3, 31, 1, tzinfo=UTC), "spring"),  # 02:00 CET -> 03:00 CEST
    (BERLIN, datetime(2024, 10, 27, 1, tzinfo=UTC), "fall"),  # 03:00 CEST -> 02:00 CET
    (SYDNEY, datetime(2024, 10, 5, 16, tzinfo=UTC), "spring"),  # 02:00 AEST -> 03:00 AEDT
    (SYDNEY, datetime(2024, 4, 6, 16, tzinfo=UTC), "fall"),  # 03:00 AEDT -> 02:00 AEST
]
IDS = [f"{zone.key}-{kind}" for zone, _, kind in TRANSITIONS]


def _call_across(change: datetime, zone: ZoneInfo) -> tuple[datetime, datetime, datetime]:
    """Started 90 s and answered 60 s before the change, ended 60 s after it, written
    in the zone's local time (all three share one tzinfo object)."""
    return tuple(  # type: ignore[return-value]
        (change + timedelta(seconds=s)).astimezone(zone) for s in (-90, -60, 60)
    )


@pytest.mark.parametrize(("zone", "change", "kind"), TRANSITIONS, ids=IDS)
def test_the_transitions_are_real(zone: ZoneInfo, change: datetime, kind: str) -> None:
    # The fixtures above are right: the zone's offset changes at that instant.
    before = (change - timedelta(seconds=1)).astimezone(zone).utcoffset()
    after = change.astimezone(zone).utcoffset()
    assert before is not None
    assert after is not None
    assert (after > before) == (kind == "spring")


@pytest.mark.parametrize(("zone", "change", "kind"), TRANSITIONS, ids=IDS)
def test_constructor_bills_the_seconds_the_call_lasted(
    zone: ZoneInfo, change: datetime, kind: str
) -> None:
    started, answered, ended = _call_across(change, zone)
    cdr = CDR(
        call_id="c",
        started_at=started,
        answered_at=answered,
        ended_at=ended,
        destination_number="1",
    )
    assert (cdr.billsec, cdr.duration) == (120, 150)


@pytest.mark.parametrize(("zone", "change", "kind"), TRANSITIONS, ids=IDS)
def test_from_mapping_bills_the_seconds_the_call_lasted(
    zone: ZoneInfo, change: datetime, kind: str
) -> None:
    started, answered, ended = _call_across(change, zone)
    row = {"id": "c", "dst": "1"}
    # Written with their offsets, as ISO text, and as datetimes.
    for start, answer, end in (
        (started.isoformat(), answered.isoformat(), ended.isoformat()),
        (started, answered, ended),
    ):
        cdr = CDR.from_mapping({**row, "start": start, "answer": answer, "end": end})
        assert (cdr.billsec, cdr.duration) == (120, 150)
    # Written as local wall times without an offset, read in the zone (by name).
    naive = [t.replace(tzinfo=None).isoformat(sep=" ") for t in (started, answered, ended)]
    local = {**row, "start": naive[0], "answer": naive[1], "end": naive[2]}
    if kind == "spring":
        cdr = CDR.from_mapping(local, default_tz=zone.key)
        assert (cdr.billsec, cdr.duration) == (120, 150)
    else:  # the wall times around the change are shown twice that night: no guessing
        with pytest.raises(ValidationError, match="happens twice") as info:
            CDR.from_mapping(local, default_tz=zone.key)
        assert (info.value.field, info.value.value) == ("start", naive[0])


def test_new_york_spring_forward_example() -> None:
    # 01:59 EST to 03:01 EDT is two minutes, not 62.
    cdr = CDR.from_mapping(
        {
            "id": "c",
            "dst": "1",
            "start": "2024-03-10 01:59:00",
            "answer": "2024-03-10 01:59:00",
            "end": "2024-03-10 03:01:00",
        },
        default_tz="America/New_York",
    )
    assert cdr.billsec == 120
    assert cdr.duration == 120


def test_fall_back_with_fold_is_not_refused() -> None:
    # 01:59 EDT, then the clocks go back, then 01:01 EST: answered before it ended.
    answered = datetime(2024, 11, 3, 1, 59, tzinfo=NEW_YORK)
    ended = datetime(2024, 11, 3, 1, 1, fold=1, tzinfo=NEW_YORK)
    cdr = CDR(
        call_id="c",
        started_at=answered,
        answered_at=answered,
        ended_at=ended,
        destination_number="1",
    )
    assert cdr.billsec == 120
    # The other way round it did end before it was answered.
    with pytest.raises(ValidationError) as info:
        CDR(
            call_id="c",
            started_at=answered.replace(fold=1),
            answered_at=answered.replace(fold=1),
            ended_at=ended.replace(fold=0),
            destination_number="1",
        )
    assert info.value.field == "ended_at"


@given(
    start=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
    ),
    micros=st.integers(min_value=0, max_value=3 * 86_400 * 10**6),
    zone=st.sampled_from([NEW_YORK, BERLIN, SYDNEY, UTC]),
)
def test_billsec_is_the_ceiling_of_elapsed_time_in_any_zone(
    start: datetime, micros: int, zone: ZoneInfo
) -> None:
    end = start + timedelta(microseconds=micros)
    answered, ended = start.astimezone(zone), end.astimezone(zone)
    cdr = CDR(
        call_id="c",
        started_at=answered,
        answered_at=answered,
        ended_at=ended,
        destination_number="1",
    )
    assert cdr.billsec == -(-micros // 10**6)
    row = {"id": "c", "dst": "1", "start": answered, "answer": answered, "end": ended}
    assert CDR.from_mapping(row).billsec == cdr.billsec


def test_rate_validity_is_compared_as_instants() -> None:
    # The second 01:30 of the night the clocks go back (06:30 UTC) ...
    opens = datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=NEW_YORK)
    rate = Rate("1", 1, valid_from=opens)
    # ... is after the first 01:45 (05:45 UTC), though its wall clock reads earlier.
    assert not rate.in_force(datetime(2024, 11, 3, 1, 45, tzinfo=NEW_YORK))
    assert rate.in_force(datetime(2024, 11, 3, 1, 45, fold=1, tzinfo=NEW_YORK))
    with pytest.raises(ValidationError):
        Rate("1", 1, valid_from=opens, valid_until=datetime(2024, 11, 3, 1, 45, tzinfo=NEW_YORK))


# -- epoch numbers need a unit -----------------------------------------------------------


def _start(value: object, **kw: object) -> datetime:
    return CDR.from_mapping({"id": "c", "dst": "1", "start": value}, **kw).started_at  # type: ignore[arg-type]


def test_thirteen_digits_are_epoch_milliseconds_by_default() -> None:
    assert _start(1_745_316_000_123) == datetime(2025, 4, 22, 10, 0, 0, 123_000, tzinfo=UTC)
    assert _start("1745316000123") == datetime(2025, 4, 22, 10, 0, 0, 123_000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("20250422", "look like a date"),  # an ISO basic date, once read as 1970
        (20250422, "look like a date"),
        (1_745_316_000, "epoch seconds"),  # once read as 1970-01-21
        ("1745316000", "epoch seconds"),
        (1_745_316_000_000_000, "epoch microseconds"),
        (1_745_316_000_000_000_000, "epoch nanoseconds"),
        (10**20, "name the unit"),
        (0, "name the unit"),
        (-1_745_316_000_000, "name the unit"),
    ],
)
def test_other_magnitudes_are_refused_without_a_unit(value: object, hint: str) -> None:
    with pytest.raises(ValidationError, match=hint) as info:
        _start(value)
    assert (info.value.field, info.value.value) == ("start", value)


@pytest.mark.parametrize(
    ("unit", "value"),
    [
        ("s", 1_745_316_000),
        ("s", "1745316000"),
        ("ms", 1_745_316_000_000),
        ("us", 1_745_316_000_000_000),
        ("ns", 1_745_316_000_000_000_000),
    ],
)
def test_a_named_unit_reads_any_magnitude(unit: str, value: object) -> None:
    assert _start(value, epoch_unit=unit) == datetime(2025, 4, 22, 10, tzinfo=UTC)


def test_named_unit_edges() -> None:
    assert _start(0, epoch_unit="s") == datetime(1970, 1, 1, tzinfo=UTC)
    assert _start(1_745_316_000_000_001_999, epoch_unit="ns").microsecond == 1
    for bad in (10**20, -(10**20), 10**4000):
        with pytest.raises(ValidationError, match="years 1 to 9999"):
            _start(bad, epoch_unit="s")
    with pytest.raises(ValidationError) as info:
        _start(1_745_316_000, epoch_unit="minutes")
    assert info.value.field == "epoch_unit"


# -- text that names no single instant ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-04 10:00 EST", "zone name 'EST'"),
        ("2024-03-04 10:00 CET", "zone name 'CET'"),
        ("2024-03-04 10:00 GMT+3", "read both ways"),
        ("2024-03-04 10:00 UTC-05:00", "read both ways"),
        ("10:00", "full date"),
        ("Monday", "full date"),
        ("April 2025", "full date"),
        ("2024-03-10 02:30", "clocks jump past it"),  # skipped in New York
        ("2024-11-03 01:30", "happens twice"),  # repeated in New York
        ("\u0662\u0660\u0662\u0665-04-22", "ASCII"),
        ("2025-04-22T10:00:00" + " " * 100 + "x", "at most 64 characters"),
    ],
)
def test_ambiguous_text_is_refused(text: str, expected: str) -> None:
    with pytest.raises(ValidationError, match=expected) as info:
        _start(text, default_tz="America/New_York")
    assert info.value.value == text


def test_zone_names_are_read_through_tzinfos() -> None:
    start = _start("2024-03-04 10:00 EST", tzinfos={"EST": "America/New_York"})
    assert start.utcoffset() == timedelta(hours=-5)
    start = _start("2024-07-04 10:00 EST", tzinfos={"EST": NEW_YORK})
    assert start.utcoffset() == timedelta(hours=-4)  # the zone's own offset on that day
    for text in ("2024-03-04 10:00 UTC", "2024-03-04 10:00 GMT", "2024-03-04T10:00Z"):
        assert _start(text) == datetime(2024, 3, 4, 10, tzinfo=UTC)
    assert _start("2024-03-04 10:00 -0500") == datetime(2024, 3, 4, 15, tzinfo=UTC)
    with pytest.raises(ValidationError) as info:
        _start("2024-03-04 10:00 EST", tzinfos={"EST": "Not/AZone"})
    assert info.value.field == "tzinfos['EST']"


def test_default_tz_takes_a_zone_name_or_a_tzinfo() -> None:
    local = "2025-04-22 12:00:00"
    expected = datetime(2025, 4, 22, 10, tzinfo=UTC)
    assert _start(local, default_tz="Europe/Berlin") == expected
    assert _start(local, default_tz=BERLIN) == expected
    assert _start(local, default_tz=timezone(timedelta(hours=2))) == expected
    for bad in ("Europe/Nowhere", "", 5, None, "../../etc/passwd"):
        with pytest.raises(ValidationError) as info:
            _start(local, default_tz=bad)
        assert info.value.field == "default_tz"
    with pytest.raises(ValidationError) as info:
        Rate.parse({"prefix": "1", "rate": "1"}, default_tz="Mars/Base")
    assert info.value.field == "default_tz"


def test_naive_datetimes_are_refused_by_the_constructor_only() -> None:
    naive = datetime(2025, 4, 22, 10)
    with pytest.raises(ValidationError, match="naive"):
        CDR(call_id="c", started_at=naive, destination_number="1")
    assert _start(naive, default_tz="Europe/Berlin") == datetime(2025, 4, 22, 8, tzinfo=UTC)


def test_constructor_refuses_a_wall_time_the_zone_skips() -> None:
    with pytest.raises(ValidationError, match="clocks jump past it") as info:
        CDR(
            call_id="c",
            started_at=datetime(2024, 3, 10, 2, 30, tzinfo=NEW_YORK),
            destination_number="1",
        )
    assert info.value.field == "started_at"


@pytest.mark.parametrize(
    "value",
    [
        datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))),
        datetime(1, 1, 1, tzinfo=ZoneInfo("Asia/Tokyo")),
        "9999-12-31T23:59:59-05:00",
        "0001-01-01T00:00:00+05:00",
    ],
)
def test_instants_outside_the_calendar_in_utc_are_refused(value: object) -> None:
    with pytest.raises(ValidationError, match="year 1 to 9999") as info:
        _start(value)
    assert info.value.value == value


# -- billsec against the record's own clock ------------------------------------------------


def test_billsec_longer_than_answer_to_end_is_refused() -> None:
    row = {
        "id": "c",
        "dst": "1",
        "start": "2025-04-22T10:00:00.000001Z",
        "answer": "2025-04-22T10:00:00.000001Z",
        "end": "2025-04-22T10:00:12.000001Z",
    }
    assert CDR.from_mapping({**row, "billsec": 12}).billsec == 12
    with pytest.raises(ValidationError, match="at most the 12 s") as info:
        CDR.from_mapping({**row, "billable_seconds": 924})
    assert (info.value.field, info.value.value) == ("billable_seconds", 924)


def test_clocks_read_to_the_second_allow_one_second() -> None:
    # Answered 10:00:00.1 and ended 10:00:05.9 reads as 5 s; the switch billed 6.
    row = {"id": "c", "dst": "1", "start": "2025-04-22T10:00:00Z"}
    row |= {"answer": "2025-04-22T10:00:00Z", "end": "2025-04-22T10:00:05Z"}
    assert CDR.from_mapping({**row, "billsec": 6}).billsec == 6
    with pytest.raises(ValidationError, match="at most the 5 s"):
        CDR.from_mapping({**row, "billsec": 7})
