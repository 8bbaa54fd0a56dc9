"""One test per kind of bad input that once got past the entry points.

Unbounded work, wrong error types, other scripts' digits, errors that spoke of Python
arguments and internal units, and one way to read an enum from text.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from decimal import Decimal
from typing import Any

import pytest

from cdrrating import (
    CDR,
    Direction,
    Disposition,
    Rate,
    RateStatus,
    Rounding,
    ValidationError,
    to_micros,
)
from cdrrating.money import MAX_AMOUNT_UNITS, MAX_MICROS
from cdrrating.schedule import BandPolicy, Schedule

BASE = {"id": "c1", "start": "2025-04-22T10:00:00Z", "dst": "4420"}

# -- unbounded work ------------------------------------------------------------------------

# Each of these once built a number with a billion digits (or tried to). They run in a
# child process so that a regression fails on the timeout instead of hanging the suite.
_HANGS = """
import json
from decimal import Decimal
from cdrrating import CDR, Rate, ValidationError, to_micros

BASE = {"id": "c1", "start": "2025-04-22T10:00:00Z", "dst": "4420"}
cases = {
    "text": lambda: to_micros("1e999999999"),
    "text-tiny": lambda: to_micros("1e-999999999", rounding="up"),
    "decimal": lambda: to_micros(Decimal("1e999999999")),
    "decimal-tiny": lambda: to_micros(Decimal("1e-999999999"), rounding="up"),
    "deck-cell": lambda: Rate.parse({"prefix": "44", "rate": "1e999999999"}),
    "deck-micros": lambda: Rate.parse({"prefix": "44", "per_min_micros": Decimal("1e999999999")}),
    "json-number": lambda: CDR.from_mapping(
        json.loads('{"id": "c", "dst": "1", "start": "2025-04-22T10:00:00Z",'
                   ' "cost": 1e999999999}', parse_float=Decimal)
    ),
    "billsec": lambda: CDR.from_mapping({**BASE, "billsec": Decimal("1e999999999")}),
    "duration": lambda: CDR.from_mapping({**BASE, "duration": Decimal("-1e999999999")}),
    "epoch": lambda: CDR.from_mapping({**BASE, "start": 10**100000}, epoch_unit="s"),
}
for name, call in cases.items():
    try:
        call()
    except ValidationError as e:
        print(name, e.field)
    else:
        print(name, "accepted")
"""


def test_huge_exponents_are_refused_before_any_arithmetic() -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_HANGS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.split("\n")[:-1] == [
        "text amount",
        "text-tiny amount",
        "decimal amount",
        "decimal-tiny amount",
        "deck-cell rate",
        "deck-micros per_min_micros",
        "json-number cost",
        "billsec billsec",
        "duration duration",
        "epoch start",
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1e999999999", "below 1,000,000,000,000"),
        (Decimal("1E+12"), "below 1,000,000,000,000"),
        (MAX_AMOUNT_UNITS, "below 1,000,000,000,000"),
        (-MAX_AMOUNT_UNITS, "below 1,000,000,000,000"),
        ("999999999999.9999999", "below 1,000,000,000,000"),  # rounds up to 10**12
        ("1" * 41, "below 1,000,000,000,000"),
        ("0." + "1" * 41, "at most 40 significant digits"),
        ("1e-31", "at most 30 decimal places"),
        ("1" * 65, "at most 64 characters"),
        ("1e99999999999999999999999999999999", "below 1,000,000,000,000"),
    ],
)
def test_amounts_have_limits(value: Any, expected: str) -> None:
    with pytest.raises(ValidationError, match=expected):
        to_micros(value, rounding="up")


def test_the_largest_amounts_fit_a_signed_64_bit_integer() -> None:
    assert MAX_MICROS == 10**18 - 1 < 2**63 - 1
    assert to_micros(MAX_AMOUNT_UNITS - 1) == MAX_MICROS - 999_999
    assert to_micros("-999999999999.999999") == -MAX_MICROS
    assert to_micros("0e999999999") == 0  # nothing, whatever its exponent
    assert to_micros("1.000000000000000000000000000000000") == 1_000_000  # zeros are no places
    assert to_micros("1e-30", rounding="up") == 1
    with pytest.raises(ValidationError, match="<= 999,999,999,999,999,999"):
        Rate("44", MAX_MICROS + 1)
    with pytest.raises(ValidationError):
        CDR(
            call_id="c",
            started_at=CDR.from_mapping(BASE).started_at,
            destination_number="1",
            billsec=10**10,
        )


# -- wrong error types ---------------------------------------------------------------------


class _Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"billsec": Decimal("Infinity")}, "billsec"),
        ({"billsec": Decimal("NaN")}, "billsec"),
        ({"billsec": Decimal("sNaN")}, "billsec"),
        ({"billsec": "\u00b2"}, "billsec"),  # superscript two: str.isdigit() but not int()
        ({"billsec": 1.5}, "billsec"),
        ({"billsec": 10**5000}, "billsec"),
        ({"start": 10**20}, "start"),
        ({"start": "99999999999999999999"}, "start"),
        ({"start": 1.7e12}, "start"),
        ({"start": b"2025-04-22"}, "start"),
        ({"start": ["2025-04-22"]}, "start"),
        ({"start": "0000-00-00"}, "start"),
        ({"id": 10**5000}, "id"),
        ({"id": b"c1"}, "id"),
        ({"dst": {"nested": [1, 2]}}, "dst"),
        ({"tenant": 1.5}, "tenant"),
        ({"tenant": True}, "tenant"),
        ({"cost": Decimal("-Infinity")}, "cost"),
        ({"cost": "1,5"}, "cost"),
        ({"cost_micros": "9" * 30}, "cost_micros"),
        ({"direction": 5}, "direction"),
        ({"disposition": _Unprintable()}, "disposition"),
        ({"extra": [1]}, "extra"),
    ],
)
def test_from_mapping_raises_validation_error(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        CDR.from_mapping({**BASE, **overrides})
    assert info.value.field == field
    assert str(info.value)  # every value can be described, even 10**5000


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"prefix": 10**5000, "rate": "1"}, "prefix"),
        ({"prefix": b"44", "rate": "1"}, "prefix"),
        ({"prefix": "44", "rate": Decimal("NaN")}, "rate"),
        ({"prefix": "44", "per_min_micros": Decimal("Infinity")}, "per_min_micros"),
        ({"prefix": "44", "rate": "1", "billing_increment": "9" * 5000}, "billing_increment"),
        ({"prefix": "44", "rate": "1", "priority": "9" * 5000}, "priority"),
        ({"prefix": "44", "rate": "1", "destination": ["x"]}, "destination"),
        ({"prefix": "44", "rate": "1", "valid_from": 10**20}, "valid_from"),
        ({"prefix": "44", "rate": "1", "schedule": {"a": 1}}, "schedule"),
        ({"prefix": "44", "rate": "1", "hours": b"08:00-20:00"}, "hours"),
    ],
)
def test_rate_parse_raises_validation_error(row: dict[Any, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        Rate.parse(row)
    assert info.value.field == field


def test_keys_that_are_not_text_name_no_column() -> None:
    row: dict[Any, Any] = {"prefix": "44", "rate": "1", 10**5000: "x", b"rate": "2", None: 1}
    rate = Rate.parse(row)
    assert rate.per_minute_micros == 1_000_000
    odd: dict[Any, Any] = {**BASE, 7: "x", ("a",): 1}
    cdr = CDR.from_mapping(odd)
    assert dict(cdr.extra) == {7: "x", ("a",): 1}


def test_schedule_constructor_refuses_mixed_dates_without_a_type_error() -> None:
    with pytest.raises(ValidationError) as info:
        Schedule(dates=[("2026-01-01", 5)])
    assert info.value.field == "dates"


# -- ASCII digits only ----------------------------------------------------------------------

ARABIC_123 = "\u0661\u0662\u0663"


@pytest.mark.parametrize(
    "call",
    [
        lambda: to_micros(ARABIC_123),
        lambda: to_micros("\uff11.5"),  # fullwidth one
        lambda: Rate.parse({"prefix": "\u0664\u0664", "rate": "1"}),
        lambda: Rate.parse({"prefix": "44", "rate": "1", "billing_increment": "\u0666\u0660"}),
        lambda: CDR.from_mapping({**BASE, "billsec": ARABIC_123}),
        lambda: CDR.from_mapping({**BASE, "start": ARABIC_123 * 5}),
        lambda: Schedule.parse("\u0660\u0668:\u0660\u0660-\u0662\u0660:\u0660\u0660"),
    ],
)
def test_digits_of_other_scripts_are_refused_everywhere(call: Any) -> None:
    with pytest.raises(ValidationError):
        call()


# -- messages speak the user's column and value --------------------------------------------


def test_a_deck_error_names_the_column_and_the_cell_as_written() -> None:
    with pytest.raises(ValidationError) as info:
        Rate.parse({"Dial Code": "44", "Cost Per Minute": "-0.01"})
    assert (info.value.field, info.value.value) == ("Cost Per Minute", "-0.01")
    assert "micros" not in str(info.value)
    with pytest.raises(ValidationError) as info:
        Rate.parse({"Prefix": "44", "Rate": "1", "Minimum Charge": "2", "Maximum Charge": "1"})
    assert (info.value.field, info.value.value) == ("Maximum Charge", "1")
    assert str(info.value).endswith("expected at least the minimum charge (2)")
    with pytest.raises(ValidationError) as info:
        Rate.parse(
            {"Prefix": "44", "Rate": "1", "Valid From": "2026-02-01", "Expires": "2026-01-01"}
        )
    assert (info.value.field, info.value.value) == ("Expires", "2026-01-01")
    with pytest.raises(ValidationError) as info:
        Rate.parse({"prefix": "44", "Rate": "0,5"})
    assert "decimal_separator" not in str(info.value)
    assert "the decimal separator is '.' here" in str(info.value)


def test_a_row_error_names_the_key_and_the_value_as_written() -> None:
    with pytest.raises(ValidationError) as info:
        CDR.from_mapping({**BASE, "answer_time": "2025-04-22T09:00:00Z"})
    assert (info.value.field, info.value.value) == ("answer_time", "2025-04-22T09:00:00Z")
    with pytest.raises(ValidationError) as info:
        CDR.from_mapping({**BASE, "bill_duration": "-5"})
    assert (info.value.field, info.value.value) == ("bill_duration", "-5")


def test_validation_error_keeps_its_parts() -> None:
    error = ValidationError("rate", "-0.01", "an amount of at least 0")
    assert (error.field, error.value, error.expected) == (
        "rate",
        "-0.01",
        "an amount of at least 0",
    )
    assert str(ValidationError("x", 10**5000, "small")) == (
        "x: got an integer of about 5,001 digits, expected small"
    )
    assert "cannot be shown" in str(ValidationError("x", _Unprintable(), "y"))


# -- one way to read an enum ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("parse", "text", "member"),
    [
        (Direction.parse, " Inbound ", Direction.INBOUND),
        (Disposition.parse, "no answer", Disposition.NO_ANSWER),
        (Disposition.parse, "No-Answer", Disposition.NO_ANSWER),
        (Disposition.parse, "NOANSWER", Disposition.NO_ANSWER),
        (Disposition.parse, "canceled", Disposition.CANCELLED),
        (RateStatus.parse, "Disabled", RateStatus.INACTIVE),
        (Rounding.parse, "HALF-EVEN", Rounding.HALF_EVEN),
        (Rounding.parse, "half even", Rounding.HALF_EVEN),
        (BandPolicy.parse, "START", BandPolicy.START),
    ],
)
def test_enums_read_loosely_written_names(parse: Any, text: str, member: Any) -> None:
    assert parse(text) is member
    assert parse(member) is member


@pytest.mark.parametrize(
    "parse",
    [Direction.parse, Disposition.parse, RateStatus.parse, Rounding.parse, BandPolicy.parse],
)
@pytest.mark.parametrize("bad", ["nope", "", 5, None, b"up", "x" * 1000])
def test_enums_refuse_alike(parse: Any, bad: object) -> None:
    with pytest.raises(ValidationError, match=r"expected one of \w+, \w+") as info:
        parse(bad, field="the_column")
    assert info.value.field == "the_column"


def test_json_rows_with_decimal_numbers_are_exact() -> None:
    row = json.loads(
        '{"id": "c", "dst": "1", "start": 1745316000000, "cost": 0.0125}', parse_float=Decimal
    )
    assert CDR.from_mapping(row).cost_micros == 12_500
