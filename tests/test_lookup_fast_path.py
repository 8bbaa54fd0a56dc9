"""RatePlan.lookup's shortcut past check_aware, and its argument checks, decide as before."""

from __future__ import annotations

from collections import UserString
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from cdrrating import Direction, Rate, RatePlan
from cdrrating._validate import check_aware
from cdrrating.errors import ValidationError

PLAN = RatePlan([Rate("44", 1), Rate("1", 2, direction="inbound")], currency="EUR")
T0 = datetime(2026, 1, 5, tzinfo=UTC)

OFFSETS = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


class _Moment(datetime):
    """A datetime subclass: not the exact type lookup's shortcut takes."""


# The first and last days of the calendar are where a fixed offset can push the instant
# off it; a zone's spring-forward hour is a wall time that does not exist there.
EDGES = st.datetimes(max_value=datetime(1, 1, 2)) | st.datetimes(min_value=datetime(9999, 12, 31))
WALLS = st.one_of(st.datetimes(), EDGES)
AWARE = st.builds(lambda wall, zone: wall.replace(tzinfo=zone), WALLS, OFFSETS | st.timezones())
VALUES = st.one_of(
    AWARE,
    WALLS,  # naive
    AWARE.map(lambda dt: _Moment.fromtimestamp(0, UTC).replace(**_fields(dt))),
    st.dates(),
    st.text(max_size=5),
    st.integers(),
)


def _fields(dt: datetime) -> dict[str, Any]:
    return {
        "year": dt.year, "month": dt.month, "day": dt.day, "hour": dt.hour,
        "minute": dt.minute, "second": dt.second, "microsecond": dt.microsecond,
        "tzinfo": dt.tzinfo, "fold": dt.fold,
    }  # fmt: skip


def _outcome(fn: Any) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except ValidationError as e:
        return "refused", (e.field, e.expected)


class _NoOffset(tzinfo):
    """A tzinfo that names no offset: the datetime is as good as naive."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


@given(VALUES)
@example(datetime(2026, 3, 29, 2, 30, tzinfo=ZoneInfo("Europe/Berlin")))  # skipped
@example(datetime(2026, 10, 25, 2, 30, tzinfo=ZoneInfo("Europe/Berlin")))  # repeated
@example(datetime(2026, 1, 5, tzinfo=_NoOffset()))
@example(datetime(1, 1, 1, tzinfo=timezone(timedelta(minutes=1))))
@example(datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(minutes=-1))))
@example(datetime(1, 1, 1, tzinfo=timezone(timedelta(minutes=-1))))
def test_lookup_accepts_and_refuses_at_exactly_as_check_aware(value: Any) -> None:
    checked = _outcome(lambda: check_aware("at", value))
    looked = _outcome(lambda: PLAN.lookup("4420", value))
    if checked[0] == "ok":
        assert looked == ("ok", Rate("44", 1))
    else:
        assert looked == checked


def test_the_number_is_checked_before_the_time_and_the_direction() -> None:
    for at, direction in [(T0, "outbound"), (datetime(2026, 1, 5), "sideways"), (None, 3)]:
        for number in [4420, b"4420", UserString("4420"), None]:
            with pytest.raises(ValidationError) as info:
                PLAN.lookup(number, at, direction=direction)  # type: ignore[arg-type]
            assert info.value.field == "number"


def test_the_time_is_checked_before_the_direction() -> None:
    with pytest.raises(ValidationError) as info:
        PLAN.lookup("4420", datetime(2026, 1, 5), direction="sideways")
    assert info.value.field == "at"


@pytest.mark.parametrize("direction", ["sideways", "", 3, None, ["outbound"], Direction])
def test_a_direction_that_does_not_exist_is_refused_naming_it(direction: Any) -> None:
    with pytest.raises(ValidationError) as info:
        PLAN.lookup("4420", T0, direction=direction)
    assert info.value.field == "direction"


@pytest.mark.parametrize(
    ("direction", "number", "expected"),
    [
        (Direction.OUTBOUND, "4420", Rate("44", 1)),
        ("outbound", "4420", Rate("44", 1)),
        ("OUTBOUND", "4420", Rate("44", 1)),
        (" Inbound ", "1212", Rate("1", 2, direction="inbound")),
        (Direction.INBOUND, "4420", None),
        (Direction.INTERNAL, "4420", None),  # a direction the plan does not price
        ("internal", "4420", None),
    ],
)
def test_each_spelling_of_a_direction_finds_its_index(
    direction: Any, number: str, expected: Rate | None
) -> None:
    assert PLAN.lookup(number, T0, direction=direction) == expected


def test_the_shortcut_takes_only_datetimes_it_can_vouch_for() -> None:
    # A date is not a datetime; a datetime subclass and a zoneinfo zone take the full
    # checks, which still accept them.
    with pytest.raises(ValidationError):
        PLAN.lookup("4420", date(2026, 1, 5))  # type: ignore[arg-type]
    moment = _Moment(2026, 1, 5, tzinfo=UTC)
    assert PLAN.lookup("4420", moment) == Rate("44", 1)
    with pytest.raises(ValidationError, match="year 1 to 9999"):
        PLAN.lookup("4420", datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))))
