from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cdrrating import Direction, Rate, RateStatus, Tier, ValidationError, parse_increment

from .conftest import T0


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("60/60", (60, 60)),
        ("30/6", (30, 6)),
        ("6", (6, 6)),
        (6, (6, 6)),
        (" 1 / 1 ", (1, 1)),
        ("0/30", (0, 30)),
    ],
)
def test_parse_increment(spec: object, expected: tuple[int, int]) -> None:
    assert parse_increment(spec) == expected


@pytest.mark.parametrize("spec", ["60/0", "0", "a/b", "60/", "1.5", -1, None])
def test_bad_increments(spec: object) -> None:
    with pytest.raises(ValidationError):
        parse_increment(spec)


def test_parse_full_row() -> None:
    r = Rate.parse(
        {
            "Prefix": "+44 20",
            "Destination": "UK London",
            "Rate": "0,0125",
            "Billing_Increment": "30/6",
            "connection_fee": "0,01",
            "Status": "Closed",
            "Effective_Date": "23/09/2026",
            "direction": "INBOUND",
            "priority": "3",
            "grace_seconds": "4",
            "minimum_charge": "0,02",
            "maximum_charge": "5",
            "id": "r-1",
        },
        decimal_separator=",",
        dayfirst=True,
    )
    assert r == Rate(
        "4420",
        12_500,
        connection_fee_micros=10_000,
        initial_seconds=30,
        increment_seconds=6,
        status="inactive",
        valid_from=datetime(2026, 9, 23, tzinfo=UTC),
        direction="inbound",
        priority=3,
        grace_seconds=4,
        minimum_charge_micros=20_000,
        maximum_charge_micros=5_000_000,
        destination="UK London",
        id="r-1",
    )
    assert r.source_prefix == "+44 20"
    assert r.status is RateStatus.INACTIVE and r.direction is Direction.INBOUND


def test_parse_micros_columns_and_single_increment() -> None:
    r = Rate.parse(
        {
            "prefix": "49",
            "per_min_micros": "7800",
            "billing_increment": 6,
            "connection_fee_micros": 5,
        }
    )
    assert (
        r.per_minute_micros,
        r.initial_seconds,
        r.increment_seconds,
        r.connection_fee_micros,
    ) == (7_800, 6, 6, 5)


def test_parse_two_increment_columns() -> None:
    r = Rate.parse(
        {
            "prefix": "49",
            "cost_per_minute": "0.01",
            "initial_seconds": "60",
            "increment_seconds": "1",
        }
    )
    assert r.increment == "60/1"


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"prefix": "44A", "rate": "0.1"}, "prefix"),
        ({"prefix": "44"}, "rate"),
        ({"prefix": "44", "rate": 0.1}, "rate"),
        ({"prefix": "44", "rate": "cheap"}, "rate"),
        ({"prefix": "44", "rate": "0.1", "billing_increment": "60/0"}, "billing_increment"),
        ({"prefix": "44", "rate": "0.1", "status": "maybe"}, "status"),
        ({"prefix": "44", "rate": "0.1", "direction": "up"}, "direction"),
        ({"prefix": "44", "rate": "0.1", "valid_from": "someday"}, "valid_from"),
        # The deck's own column, not the micros field it never had.
        ({"prefix": "44", "rate": "-0.1"}, "rate"),
    ],
)
def test_parse_errors_name_the_field(row: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Rate.parse(row)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [
        (("44a", 1), {}, "prefix"),
        (("4" * 51, 1), {}, "prefix"),
        (("44", 1.5), {}, "per_minute_micros"),
        (("44", -1), {}, "per_minute_micros"),
        (("44", 1), {"increment_seconds": 0}, "increment_seconds"),
        (("44", 1), {"initial_seconds": -1}, "initial_seconds"),
        (("44", 1), {"grace_seconds": -1}, "grace_seconds"),
        (("44", 1), {"connection_fee_micros": 0.01}, "connection_fee_micros"),
        (
            ("44", 1),
            {"minimum_charge_micros": 10, "maximum_charge_micros": 5},
            "maximum_charge_micros",
        ),
        (("44", 1), {"tiers": [Tier(60, 1), Tier(30, 1)]}, "tiers[1].after_seconds"),
        (("44", 1), {"tiers": [Tier(60, 1), Tier(60, 2)]}, "tiers[1].after_seconds"),
        (("44", 1), {"tiers": ["60:1"]}, "tiers[0]"),
        (("44", 1), {"valid_from": datetime(2026, 1, 1)}, "valid_from"),
        (("44", 1), {"valid_from": T0, "valid_until": T0}, "valid_until"),
        (("44", 1), {"destination": "x" * 256}, "destination"),
        (("44", 1), {"status": "gone"}, "status"),
        (("44", 1), {"direction": "both"}, "direction"),
        (("44", 1), {"priority": "high"}, "priority"),
    ],
)
def test_bad_rates_name_the_field(
    args: tuple[object, ...], kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        Rate(*args, **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"after_seconds": 0, "per_minute_micros": 1}, "tier.after_seconds"),
        (
            {"after_seconds": 10, "per_minute_micros": 1, "increment_seconds": 0},
            "tier.increment_seconds",
        ),
        ({"after_seconds": 10, "per_minute_micros": 0.5}, "tier.per_minute_micros"),
    ],
)
def test_bad_tiers(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Tier(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_float_error_says_how_to_pass_money() -> None:
    with pytest.raises(ValidationError, match=r"to_micros\(Decimal\('0.45'\)\)"):
        Rate("44", 0.45)  # type: ignore[arg-type]


def test_parse_never_makes_a_silent_catch_all() -> None:
    with pytest.raises(ValidationError) as info:
        Rate.parse({"rate": "0.01"})
    assert info.value.field == "prefix"
    with pytest.raises(ValidationError):
        Rate.parse({"prefix": "  ", "rate": "0.01"})
    assert Rate.parse({"prefix": "*", "rate": "0.01"}).prefix == ""
    assert Rate.parse({"Dial Code": "+44 20", "Rate": "0.01"}).prefix == "4420"
