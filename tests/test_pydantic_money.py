"""cdrrating.pydantic: exact money in pydantic models, JSON in and out, and its schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from types import MappingProxyType
from typing import Annotated

import pytest
from hypothesis import given
from hypothesis import strategies as st

if os.environ.get("CI") != "true":
    pytest.importorskip("pydantic", reason="cdrrating.pydantic needs pydantic 2")

import pydantic
from pydantic_core import PydanticSerializationError

from cdrrating import ValidationError, format_micros, to_micros
from cdrrating.money import MAX_MICROS
from cdrrating.pydantic import (
    ExactMoney,
    Money,
    NonNegativeMoney,
    dumps,
    from_micros,
    loads,
    validate_json,
)


class Price(pydantic.BaseModel):
    amount: Money
    fee: NonNegativeMoney | None = None
    capped: Annotated[Decimal, ExactMoney(ge=Decimal("0.5"), le=10)] = Decimal(1)


def errors_of(data: object) -> list[tuple[tuple[object, ...], str, str]]:
    with pytest.raises(pydantic.ValidationError) as caught:
        Price.model_validate(data)
    return [(e["loc"], e["type"], e["msg"]) for e in caught.value.errors()]


# -- what is accepted, exactly --------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_", "expected"),
    [
        ("0.0125", Decimal("0.0125")),
        (" 12.5 ", Decimal("12.5")),
        ("1e3", Decimal("1000")),
        (Decimal("0.000001"), Decimal("0.000001")),
        (7, Decimal(7)),
        (0.5, Decimal("0.5")),  # a float that is exactly the amount
        (2.25, Decimal("2.25")),
        (-0.015625, Decimal("-0.015625")),  # 2**-6: six places, exact in binary
        ("999999999999.999999", Decimal("999999999999.999999")),
    ],
)
def test_exact_amounts_are_accepted_unchanged(given_: object, expected: Decimal) -> None:
    assert Price.model_validate({"amount": given_}).amount == expected


@pytest.mark.parametrize(
    ("given_", "words"),
    [
        (0.1, "the float 0.1 is 0.100000000000000005551"),
        (Decimal("0.0000001"), "at most 6 decimal places"),
        ("0.1234567", "at most 6 decimal places"),
        (float("nan"), "a finite decimal amount"),
        (float("inf"), "a finite decimal amount"),
        (Decimal("NaN"), "a finite decimal amount"),
        (True, "a decimal amount"),
        ("12,5", "the decimal separator is '.'"),
        ("abc", "a decimal number"),
        ("1000000000000", "an amount below"),
        ([1], "a decimal amount"),
    ],
)
def test_inexact_or_bad_amounts_are_refused_naming_the_field(given_: object, words: str) -> None:
    [(loc, kind, message)] = errors_of({"amount": given_})
    assert loc == ("amount",)
    assert kind == "exact_money"
    assert words in message


def test_bounds_name_the_field() -> None:
    assert errors_of({"amount": 1, "fee": "-0.01"}) == [(("fee",), "exact_money", "an amount >= 0")]
    assert errors_of({"amount": 1, "capped": "10.000001"}) == [
        (("capped",), "exact_money", "an amount <= 10")
    ]
    assert errors_of({"amount": 1, "capped": "0.49"})[0][2] == "an amount >= 0.5"


def test_validate_outside_pydantic_raises_the_library_error() -> None:
    with pytest.raises(ValidationError) as caught:
        ExactMoney(ge=0).validate("-1", "price")
    assert caught.value.field == "price"
    assert ExactMoney().validate(3) == Decimal("3.00")


# -- JSON out: a string, never a float ------------------------------------------------------


def test_json_output_is_the_exact_decimal_text() -> None:
    price = Price.model_validate({"amount": "999999999999.999999", "fee": Decimal("0.1")})
    assert json.loads(price.model_dump_json()) == {
        "amount": "999999999999.999999",
        "fee": "0.10",
        "capped": "1.00",
    }
    # Python mode keeps the Decimal itself.
    assert price.model_dump()["amount"] == Decimal("999999999999.999999")


def test_an_unvalidated_value_is_written_canonically_or_refused() -> None:
    assert (
        Price.model_construct(amount=Decimal("1E+3"))
        .model_dump_json()
        .startswith('{"amount":"1000.00"')
    )
    with pytest.raises(PydanticSerializationError):
        Price.model_construct(amount=Decimal("0.0000001")).model_dump_json()


# -- JSON in: numbers read exactly ----------------------------------------------------------


def test_validate_json_keeps_every_digit_of_a_json_number() -> None:
    text = '{"amount": 999999999999.999999, "fee": 0.1}'
    price = validate_json(Price, text)
    assert price.amount == Decimal("999999999999.999999")
    assert price.fee == Decimal("0.1")
    # What pydantic's own JSON parser does with the same text: the number becomes a
    # float first, which cannot hold it, so Money refuses it rather than round it.
    with pytest.raises(pydantic.ValidationError, match="float"):
        Price.model_validate_json(text)


def test_validate_json_refuses_seven_places_even_when_a_float_would_hide_them() -> None:
    # 0.10000000000000001 is the float 0.1; read exactly it has 17 places.
    with pytest.raises(pydantic.ValidationError, match="at most 6 decimal places"):
        validate_json(Price, '{"amount": 0.10000000000000001}')


def test_loads() -> None:
    assert loads(b'{"a": 1.50, "b": 2, "c": [1e-3]}') == {
        "a": Decimal("1.50"),
        "b": 2,
        "c": [Decimal("0.001")],
    }
    for text in ('{"a": NaN}', '{"a": Infinity}', "[-Infinity]"):
        with pytest.raises(ValidationError) as caught:
            loads(text)
        assert caught.value.field == "json"
    with pytest.raises(ValidationError, match="valid JSON"):
        loads('{"a": ')


@given(st.integers(-MAX_MICROS, MAX_MICROS))
def test_every_amount_round_trips_through_json_exactly(micros: int) -> None:
    price = Price(amount=from_micros(micros))
    back = validate_json(Price, price.model_dump_json())
    assert to_micros(back.amount) == micros
    # And as a JSON number, written from the exact text.
    as_number = '{"amount": ' + format_micros(micros) + "}"
    assert to_micros(validate_json(Price, as_number).amount) == micros


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e13, max_value=1e13))
def test_a_float_is_accepted_exactly_when_it_is_an_amount_of_micros(value: float) -> None:
    exact = Fraction(value) * 1_000_000
    is_amount = exact.denominator == 1 and abs(exact) <= MAX_MICROS
    try:
        got = Price.model_validate({"amount": value}).amount
    except pydantic.ValidationError:
        assert not is_amount
    else:
        assert is_amount
        assert Fraction(got) == Fraction(value)


def test_from_micros() -> None:
    assert from_micros(12_500) == Decimal("0.0125")
    assert str(from_micros(1_000_000)) == "1.00"
    assert str(from_micros(-1)) == "-0.000001"
    with pytest.raises(ValidationError):
        from_micros(1.5)  # type: ignore[arg-type]


# -- the OpenAPI / JSON schema says the same ------------------------------------------------


def test_schema_a_number_or_decimal_text_in_a_string_out() -> None:
    validation = Price.model_json_schema(mode="validation")["properties"]
    serialization = Price.model_json_schema(mode="serialization")["properties"]
    number, text = validation["amount"]["anyOf"]
    assert number["type"] == "number"
    assert text["type"] == "string"
    assert "minimum" not in number
    assert validation["fee"]["anyOf"][0]["anyOf"][0]["minimum"] == 0
    assert validation["capped"]["anyOf"][0]["minimum"] == 0.5
    assert validation["capped"]["anyOf"][0]["maximum"] == 10
    assert serialization["amount"]["type"] == "string"
    assert "6 decimal places" in serialization["amount"]["description"]


@pytest.mark.parametrize(
    ("module", "blocked", "extra"),
    [
        ("cdrrating.pydantic", "pydantic", "pydantic"),
        ("cdrrating.fastapi", "fastapi", "fastapi"),
        ("cdrrating.sqlplans", "sqlalchemy", "sql"),
    ],
)
def test_a_missing_extra_is_named(module: str, blocked: str, extra: str) -> None:
    code = f"import sys; sys.modules[{blocked!r}] = None; import {module}"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert run.returncode != 0
    assert f"pip install 'cdrrating[{extra}]'" in run.stderr


def test_dumps_writes_decimals_as_exact_strings() -> None:
    value = {
        "cost": Decimal("999999999999.999999"),
        "at": datetime(2026, 3, 2, 10, tzinfo=UTC),
        "extra": MappingProxyType({"kWh": Decimal("12.345678901234")}),
        "periods": (1, 2.5),
    }
    text = dumps(value)
    assert json.loads(text) == {
        "cost": "999999999999.999999",
        "at": "2026-03-02T10:00:00+00:00",
        "extra": {"kWh": "12.345678901234"},
        "periods": [1, 2.5],
    }
    assert loads(dumps({"n": Decimal("0.1")})) == {"n": "0.1"}
    with pytest.raises(TypeError):
        dumps({"x": object()})
