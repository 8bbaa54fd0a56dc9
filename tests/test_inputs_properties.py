"""Every way in refuses bad input with the library's own error, and nothing else.

Arbitrary mappings, text and numbers go to ``CDR.from_mapping``, ``Rate.parse``,
``to_micros`` and ``Schedule.parse``: each call either returns its result or raises
``ValidationError``. Hypothesis's ``deadline`` bounds each input's time (a hang
detector, generous on purpose); the inputs lean on the values that once escaped as
``OverflowError``, ``InvalidOperation``, ``TypeError`` or hung.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdrrating import CDR, Rate, ValidationError, to_micros
from cdrrating.cdr import _ALIASES
from cdrrating.schedule import Schedule

# One second per input is far above what any of these should take (microseconds).
BOUNDED = settings(
    deadline=timedelta(seconds=1),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

NASTY_TEXT = st.sampled_from(
    [
        "1e999999999",
        "-1E+999999999",
        "1e-999999999",
        "0e999999999",
        "1e99999999999999999999999999999999",
        "NaN",
        "sNaN",
        "-Infinity",
        "\u0661\u0662\u0663",  # Arabic-Indic 123
        "²",
        "\u0660\u066b\u0665",  # Arabic-Indic 0.5
        "20250422",
        "1745316000",
        "99999999999999999999",
        "-1",
        "2024-03-04 10:00 EST",
        "2024-03-04 10:00 GMT+3",
        "2024-03-10 02:30",
        "2024-11-03 01:30",
        "10:00",
        "Monday",
        "0000-00-00",
        "9999-12-31T23:59:59-05:00",
        "0001-01-01T00:00:00+05:00",
        "2026-02-30",
        "60/0",
        "30/6",
        "99999999999999999999/1",
        "Mon-Fri 08:00-20:00 except:DE",
        "25:00-26:00",
        "2026-12-24..2026-12-26",
        "*",
        "+44 20",
        "",
        " ",
        "\x00",
        "x" * 10_000,
        "9" * 5_000,
    ]
)

NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from([10**20, -(10**20), 10**4000, 2**63, -(2**63) - 1, 1_745_316_000_000]),
    st.floats(),
    st.decimals(),
    st.sampled_from(
        [
            Decimal("NaN"),
            Decimal("sNaN"),
            Decimal("Infinity"),
            Decimal("-Infinity"),
            Decimal("1E+999999999"),
            Decimal("1E-999999999"),
            Decimal("0E+999999999"),
            Decimal("1" * 200),
        ]
    ),
)

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    NUMBERS,
    st.text(max_size=40),
    NASTY_TEXT,
    st.binary(max_size=20),
    st.datetimes(timezones=st.none() | st.timezones()),
    st.dates(),
    st.times(),
)

VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)

CDR_KEYS = st.sampled_from(sorted(_ALIASES)) | st.text(max_size=12) | st.integers()
RATE_KEYS = st.sampled_from(
    [
        "prefix",
        "code",
        "Dial Code",
        "rate",
        "cost_per_minute",
        "per_min_micros",
        "connection_fee",
        "minimum_charge",
        "maximum_charge",
        "billing_increment",
        "initial_seconds",
        "increment_seconds",
        "grace_seconds",
        "priority",
        "status",
        "direction",
        "destination",
        "valid_from",
        "valid_until",
        "schedule",
        "weekdays",
        "hours",
        "time_from",
        "time_until",
        "dates",
        "only_holidays",
        "except_holidays",
        "id",
        "tenant",
    ]
) | st.text(max_size=12)


def _only_validation_errors(call: Any, *args: Any, **kwargs: Any) -> Any:
    """The call's result, or None when it raised ValidationError; any other exception
    fails the test."""
    error: ValidationError | None = None
    try:
        return call(*args, **kwargs)
    except ValidationError as e:
        error = e
    # The error is usable: its attributes are set and its message can be shown.
    assert isinstance(error.field, str)
    assert isinstance(error.expected, str)
    assert str(error)
    return None


@BOUNDED
@given(
    row=st.dictionaries(CDR_KEYS, VALUES, max_size=8),
    base=st.booleans(),
    default_tz=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Nowhere/Zone"]),
    epoch_unit=st.sampled_from([None, "s", "ms", "us", "ns"]),
)
def test_from_mapping_raises_only_validation_errors(
    row: dict[Any, Any], base: bool, default_tz: str, epoch_unit: Any
) -> None:
    if base:  # a mostly valid record with the arbitrary values laid over it
        row = {"id": "c1", "start": "2025-04-22T10:00:00Z", "dst": "4420", **row}
    cdr = _only_validation_errors(
        CDR.from_mapping, row, default_tz=default_tz, epoch_unit=epoch_unit
    )
    if cdr is not None:
        assert cdr.started_at.utcoffset() is not None
        assert 0 <= cdr.billsec <= cdr.duration


@BOUNDED
@given(
    row=st.dictionaries(RATE_KEYS, VALUES, max_size=8),
    base=st.booleans(),
    separator=st.sampled_from([".", ","]),
    dayfirst=st.booleans(),
)
def test_rate_parse_raises_only_validation_errors(
    row: dict[Any, Any], base: bool, separator: str, dayfirst: bool
) -> None:
    if base:
        row = {"prefix": "44", "rate": "0,01" if separator == "," else "0.01", **row}
    rate = _only_validation_errors(Rate.parse, row, decimal_separator=separator, dayfirst=dayfirst)
    if rate is not None:
        assert 0 <= rate.per_minute_micros < 10**18


@BOUNDED
@given(
    value=st.one_of(
        VALUES, st.from_regex(r"[+-]?[0-9]{0,20}(\.[0-9]{0,40})?([eE][+-]?[0-9]{1,12})?")
    ),
    separator=st.sampled_from([".", ","]),
    rounding=st.sampled_from([None, "up", "half_even"]),
)
def test_to_micros_raises_only_validation_errors(
    value: Any, separator: str, rounding: str | None
) -> None:
    micros = _only_validation_errors(
        to_micros, value, decimal_separator=separator, rounding=rounding
    )
    if micros is not None:
        # Every amount accepted fits the SQL store's signed 64-bit columns.
        assert -(2**63) < micros < 2**63


@BOUNDED
@given(
    text=st.one_of(
        VALUES,
        st.lists(
            st.sampled_from(
                [
                    "Mon-Fri",
                    "Sat,Sun",
                    "08:00-20:00",
                    "20:00-08:00",
                    "2026-12-24..2026-12-26",
                    "only:DE",
                    "except:UK",
                    "always",
                    "Fri-Mon",
                    "24:00-08:00",
                    "\u0660\u0668:\u0660\u0660-\u0662\u0660:\u0660\u0660",
                    "2026-13-01",
                    "only:",
                    "x",
                ]
            ),
            max_size=12,
        ).map(" ".join),
        st.text(max_size=60),
    )
)
def test_schedule_parse_raises_only_validation_errors(text: Any) -> None:
    schedule = _only_validation_errors(Schedule.parse, text)
    if schedule is not None:
        assert Schedule.parse(str(schedule)) == schedule


_PLAN = None


def _plan() -> Any:
    global _PLAN  # noqa: PLW0603 - one plan for every example, built on first use
    if _PLAN is None:
        from cdrrating import RatePlan, Tier  # noqa: PLC0415

        _PLAN = RatePlan(
            [Rate("44", 1_000, grace_seconds=3), Rate("4420", 2_000, tiers=[Tier(60, 500, 1)])],
            currency="EUR",
            access_prefixes=("00", "011"),
        )
    return _PLAN


def _call_billed(billsec: Any) -> dict[str, Any]:
    return {"call_id": "x", "start": "2026-01-01T00:00:00Z", "dst": "44", "billsec": billsec}


@BOUNDED
@given(
    st.lists(
        st.dictionaries(CDR_KEYS, VALUES, max_size=8) | VALUES | st.builds(_call_billed, NUMBERS),
        max_size=8,
    )
)
def test_rate_many_reports_every_row_and_never_raises(records: list[Any]) -> None:
    from cdrrating import Rater  # noqa: PLC0415

    result = Rater(default=_plan()).rate_many(records, progress=False)
    assert len(result) == len(records)
    failed = {e.position for e in result.errors}
    for position, charge in enumerate(result.charges):
        assert (charge is None) == (position in failed)
    assert len(failed) == len(result.errors)


@BOUNDED
@given(VALUES, st.none() | st.datetimes(timezones=st.none() | st.timezones()), VALUES)
def test_lookup_raises_only_validation_errors(number: Any, at: Any, direction: Any) -> None:
    plan = _plan()
    _only_validation_errors(plan.lookup, number, at)
    _only_validation_errors(plan.lookup, "+44 20 7946 0000", at, direction=direction)
