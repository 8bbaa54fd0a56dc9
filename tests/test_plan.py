from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cdrrating import Rate, RatePlan, ValidationError

from .conftest import T0


def test_lookup_and_normalise() -> None:
    plan = RatePlan(
        [Rate("4420", 2), Rate("44", 1), Rate("1", 3, direction="inbound")], currency="EUR"
    )
    assert plan.lookup("+44 20 7946 0000", T0) == Rate("4420", 2)
    assert plan.lookup("447700900000", T0) == Rate("44", 1)
    assert plan.lookup("12125550000", T0) is None
    assert plan.lookup("12125550000", T0, direction="inbound") == Rate("1", 3, direction="inbound")
    assert plan.lookup("anonymous", T0) is None
    assert plan.normalise("0044 (20) 7946-0000") == "442079460000"
    with pytest.raises(ValidationError, match="number"):
        plan.normalise("anonymous")


def test_lookup_short_numbers_and_long_prefixes() -> None:
    plan = RatePlan([Rate("123456789", 9), Rate("12", 2), Rate("", 0)], currency="EUR")
    assert plan.lookup("1", T0) == Rate("", 0)
    assert plan.lookup("12", T0) == Rate("12", 2)
    assert plan.lookup("1234", T0) == Rate("12", 2)
    assert plan.lookup("12345678", T0) == Rate("12", 2)
    assert plan.lookup("123456789", T0) == Rate("123456789", 9)


def test_windows_within_one_prefix() -> None:
    a = Rate("44", 1, valid_until=T0)
    b = Rate("44", 2, valid_from=T0, valid_until=T0 + timedelta(days=1))
    plan = RatePlan([a, b], currency="EUR")
    assert plan.lookup("441", T0 - timedelta(days=5)) == a
    assert plan.lookup("441", T0 + timedelta(hours=1)) == b
    assert plan.lookup("441", T0 + timedelta(days=2)) is None


def test_rates_under_and_iteration_order() -> None:
    rates = [
        Rate("49", 1),
        Rate("4420", 2),
        Rate("44", 3),
        Rate("442", 4, status="inactive"),
        Rate("", 5),
    ]
    plan = RatePlan(rates, currency="EUR")
    assert [r.prefix for r in plan] == ["", "44", "442", "4420", "49"]
    assert len(plan) == 5
    assert [r.prefix for r in plan.rates_under("44")] == ["44", "442", "4420"]
    assert plan.rates_under("3") == ()
    assert [r.prefix for r in plan.rates_under("")] == ["", "44", "442", "4420", "49"]
    assert [r.prefix for r in plan.matching_rates("+44 20 1")] == ["4420", "442", "44", ""]


def test_plan_equality_ignores_input_order() -> None:
    rates = [Rate("49", 1), Rate("4420", 2), Rate("44", 3)]
    assert RatePlan(rates, currency="EUR") == RatePlan(list(reversed(rates)), currency="EUR")
    assert RatePlan(rates, currency="EUR") != RatePlan(rates, currency="USD")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"currency": "euro"}, "currency"),
        ({"currency": "EUR", "quantum_micros": 0}, "quantum_micros"),
        ({"currency": "EUR", "rounding": "nearest"}, "rounding"),
        ({"currency": "EUR", "access_prefixes": ("+",)}, "access_prefixes"),
    ],
)
def test_bad_plan_arguments(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        RatePlan([Rate("44", 1)], **kwargs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_non_rates_refused() -> None:
    with pytest.raises(ValidationError, match=r"rates\[1\]"):
        RatePlan([Rate("44", 1), {"prefix": "49"}], currency="EUR")  # type: ignore[list-item]


def test_check_findings() -> None:
    shadowed = Rate("44", 1, priority=0, id="low")
    rates = [
        Rate("44", 2, priority=5, id="high"),
        shadowed,
        Rate("49", 1, priority=1, id="windowed", valid_from=T0, valid_until=T0 + timedelta(days=1)),
        Rate("49", 2, priority=0, id="survives"),
        Rate("33", 1, valid_until=T0, id="old"),
        Rate.parse({"prefix": "+1 (212)", "rate": "0.01", "id": "typed"}),
    ]
    findings = RatePlan(rates, currency="EUR").check(at=T0)
    codes = sorted((f.code, f.rates[0].id) for f in findings)
    assert codes == [("expired", "old"), ("never_wins", "low"), ("non_digit_prefix", "typed")]
    never = next(f for f in findings if f.code == "never_wins")
    assert "'low'" in never.message and "'44'" in never.message


def test_repr_is_cheap_and_informative() -> None:
    plan = RatePlan([Rate("44", 1)] * 1, currency="EUR", name="retail")
    assert repr(plan) == "RatePlan('retail', 1 rates, EUR, rounding=up, quantum_micros=1)"


def test_lookup_skips_a_longer_prefix_with_nothing_in_force() -> None:
    plan = RatePlan([Rate("4420", 2, valid_until=T0), Rate("44", 1)], currency="EUR")
    assert plan.lookup("442079460000", T0) == Rate("44", 1)
    assert plan.lookup("442079460000", T0 - timedelta(seconds=1)) == Rate("4420", 2, valid_until=T0)


def test_probe_strategy_does_not_change_answers() -> None:
    # A deck of mostly short prefixes picks the head table; one of long prefixes does not.
    short = [Rate(str(p), p) for p in range(10, 100)] + [
        Rate("4420791", 1),
        Rate("44207946", 7),
        Rate("4", 5),
        Rate("491", 3),
    ]
    long_ = [Rate(f"{p}{q:04d}", q) for p in (44, 49) for q in range(0, 3000, 7)] + [Rate("4", 5)]
    for rates in (short, long_):
        plan = RatePlan(rates, currency="EUR")
        by_prefix = {r.prefix: r for r in rates}
        for number in [
            "442079460000",
            "442079100",
            "4420",
            "44",
            "4",
            "49000712345",
            "4400991",
            "491234",
            "3",
            "99",
        ]:
            expected = next(
                (
                    by_prefix[number[:n]]
                    for n in range(len(number), -1, -1)
                    if number[:n] in by_prefix
                ),
                None,
            )
            assert plan.lookup(number, T0) == expected, number
    heads_used = [
        bool(next(iter(RatePlan(r, currency="EUR")._compiled.indexes.values())).heads)
        for r in (short, long_)
    ]
    assert heads_used == [True, False]


def test_lookup_direction_spelling_and_errors() -> None:
    plan = RatePlan([Rate("44", 1)], currency="EUR")
    assert plan.lookup("4412", T0, direction="OUTBOUND") == Rate("44", 1)
    assert plan.lookup("4412", T0, direction="inbound") is None
    with pytest.raises(ValidationError) as info:
        plan.lookup("4412", T0, direction="sideways")
    assert info.value.field == "direction"


def test_plan_error_names_rates_without_ids_distinctly() -> None:
    with pytest.raises(ValidationError) as info:
        RatePlan([Rate("44", 1_000), Rate("44", 1_200)], currency="EUR")
    assert "1000 micros/min" in str(info.value) and "1200 micros/min" in str(info.value)


def test_a_number_that_is_only_an_access_prefix_is_invalid_on_any_deck() -> None:
    # Plain digits are tried as dialled first; stripping the access prefix leaves nothing.
    from cdrrating import CDR, rate  # noqa: PLC0415

    plan = RatePlan([Rate("44", 1_000)], currency="EUR")
    call = CDR(
        call_id="c", started_at=datetime(2026, 1, 1, tzinfo=UTC), destination_number="00",
        billsec=60,
    )  # fmt: skip
    assert plan.lookup("00") is None
    reason = rate(call, plan).reason
    assert reason is not None
    assert reason.value == "INVALID_NUMBER"
