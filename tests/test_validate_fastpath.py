"""check_aware's shortcut for fixed-offset datetimes decides as the full checks do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdrrating._validate import check_aware
from cdrrating.errors import ValidationError

OFFSETS = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


def _fits_in_utc(value: datetime) -> bool:
    try:
        value.astimezone(UTC)
    except (OverflowError, ValueError):
        return False
    return True


@given(st.datetimes(), OFFSETS)
def test_a_fixed_offset_datetime_is_accepted_exactly_when_it_has_an_instant(
    wall: datetime, zone: timezone
) -> None:
    value = wall.replace(tzinfo=zone)
    if _fits_in_utc(value):
        assert check_aware("at", value) is value
    else:
        with pytest.raises(ValidationError, match="year 1 to 9999"):
            check_aware("at", value)


@pytest.mark.parametrize(
    "value",
    [
        datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),
        datetime(9999, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-1))),
    ],
)
def test_the_calendar_edges_still_take_the_full_check(value: datetime) -> None:
    with pytest.raises(ValidationError, match="year 1 to 9999"):
        check_aware("at", value)


def test_naive_and_other_types_are_still_refused() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        check_aware("at", datetime(2026, 1, 1))
    with pytest.raises(ValidationError, match="timezone-aware"):
        check_aware("at", "2026-01-01T00:00:00Z")
