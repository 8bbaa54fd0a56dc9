from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from cdrrating import Rounding, ValidationError, format_micros, round_micros, to_micros


@pytest.mark.parametrize(
    ("value", "kw", "expected"),
    [
        ("0.0125", {}, 12_500),
        (Decimal("0.0125"), {}, 12_500),
        ("0,0125", {"decimal_separator": ","}, 12_500),
        (3, {}, 3_000_000),
        ("-1.5", {}, -1_500_000),
        (" 12 ", {}, 12_000_000),
        (".5", {}, 500_000),
        ("1e-6", {}, 1),
        ("0.0000005", {"rounding": "half_even"}, 0),
        ("0.0000015", {"rounding": "half_even"}, 2),
        ("0.0000001", {"rounding": "up"}, 1),
    ],
)
def test_to_micros_exact(value: object, kw: dict[str, str], expected: int) -> None:
    assert to_micros(value, **kw) == expected  # type: ignore[arg-type]


def test_more_than_six_places_needs_a_rounding_mode() -> None:
    with pytest.raises(ValidationError, match="at most 6 decimal places"):
        to_micros("0.0000001")


def test_floats_are_refused_with_a_hint() -> None:
    with pytest.raises(ValidationError) as info:
        to_micros(0.45)  # type: ignore[arg-type]
    assert "Decimal('0.45')" in str(info.value)
    assert "'0.45'" in str(info.value)
    assert info.value.field == "amount"


@pytest.mark.parametrize("bad", ["abc", "1.2.3", "", "1,5", "NaN", "Infinity", True])
def test_not_a_decimal(bad: object) -> None:
    with pytest.raises(ValidationError):
        to_micros(bad)  # type: ignore[arg-type]


def test_comma_mode_refuses_a_point() -> None:
    with pytest.raises(ValidationError, match="ambiguous"):
        to_micros("1.234,5", decimal_separator=",")


def test_comma_hint_in_point_mode() -> None:
    # The hint speaks of the separator, not of a Python argument a file user never sees.
    with pytest.raises(ValidationError, match=r"the decimal separator is '\.' here") as info:
        to_micros("0,5")
    assert "decimal_separator=" not in str(info.value)


@pytest.mark.parametrize(
    ("micros", "currency", "places", "text"),
    [
        (12_500, "EUR", None, "0.0125 EUR"),
        (300_000, None, None, "0.30"),
        (2_000_000, "USD", None, "2.00 USD"),
        (-1, None, None, "-0.000001"),
        (1_016_667, None, 6, "1.016667"),
        (5_000_000, None, 0, "5"),
    ],
)
def test_format(micros: int, currency: str | None, places: int | None, text: str) -> None:
    assert format_micros(micros, currency, places=places) == text


def test_format_never_loses_digits() -> None:
    with pytest.raises(ValidationError):
        format_micros(1_016_667, places=2)


@pytest.mark.parametrize(
    ("value", "quantum", "mode", "expected"),
    [
        (Fraction(2_500, 1), 1_000, Rounding.HALF_EVEN, 2_000),
        (Fraction(3_500, 1), 1_000, Rounding.HALF_EVEN, 4_000),
        (Fraction(2_500, 1), 1_000, Rounding.HALF_UP, 3_000),
        (Fraction(-2_500, 1), 1_000, Rounding.HALF_UP, -3_000),
        (Fraction(2_001, 1), 1_000, Rounding.UP, 3_000),
        (Fraction(2_999, 1), 1_000, Rounding.DOWN, 2_000),
        (Fraction(-1, 3), 1, Rounding.UP, 0),
        (Fraction(-1, 3), 1, Rounding.DOWN, -1),
    ],
)
def test_round_micros(value: Fraction, quantum: int, mode: Rounding, expected: int) -> None:
    assert round_micros(value, quantum=quantum, mode=mode) == expected


def test_rounding_mode_names() -> None:
    assert Rounding.parse("HALF-EVEN") is Rounding.HALF_EVEN
    with pytest.raises(ValidationError, match="up, down, half_up, half_even"):
        Rounding.parse("bankers")
    with pytest.raises(ValidationError):
        round_micros(1, quantum=0)


def test_round_micros_refuses_floats() -> None:
    with pytest.raises(ValidationError):
        round_micros(0.5)  # type: ignore[arg-type]
    assert round_micros(Decimal("0.1")) == 1
