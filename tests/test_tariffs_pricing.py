"""Reading OCPI tariffs, the reasons a session is not priced, restrictions at their
edges, explain() and batches."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cdrrating import ValidationError
from cdrrating.charging import CdrDimension, ChargingPeriod, ChargingSession, SessionLocation
from cdrrating.tariffs import (
    DayOfWeek,
    PriceComponent,
    SessionChargeStatus,
    Tariff,
    TariffElement,
    TariffRestrictions,
    UnpricedReason,
    currency_quantum,
    price_session,
    price_sessions,
)

START = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)  # a Monday


def energy_tariff(**kw: Any) -> Tariff:
    kw.setdefault("id", "T1")
    kw.setdefault("currency", "EUR")
    kw.setdefault(
        "elements",
        [TariffElement([PriceComponent(type="ENERGY", price_micros=250_000, vat=Decimal(10))])],
    )
    return Tariff(**kw)


def one_period(kwh: str = "10", minutes: int = 60, **kw: Any) -> ChargingSession:
    kw.setdefault("id", "s1")
    kw.setdefault("started_at", START)
    kw.setdefault("ended_at", kw["started_at"] + timedelta(minutes=minutes))
    dims = kw.pop("dims", {"ENERGY": kwh})
    period = ChargingPeriod(
        kw["started_at"],
        [CdrDimension(k, Decimal(v)) for k, v in dims.items()],
        kw.pop("tariff_id", None),
    )
    return ChargingSession(charging_periods=[period], **kw)


# -- reading tariffs ---------------------------------------------------------------------


def test_reads_every_field_of_a_tariff() -> None:
    t = Tariff.from_mapping(
        json.loads(
            """{
      "country_code": "DE", "party_id": "ALL", "id": "7", "currency": "eur", "type": "REGULAR",
      "min_price": {"excl_vat": 0.5}, "max_price": {"excl_vat": 20, "incl_vat": 24},
      "start_date_time": "2025-01-01T00:00:00Z", "end_date_time": "2026-01-01T00:00:00Z",
      "energy_mix": {"is_green_energy": true},
      "elements": [{"price_components": [
          {"type": "energy", "price": "0.3125", "vat": 19, "step_size": 1}],
        "restrictions": {"start_time": "22:00", "end_time": "06:00",
          "start_date": "2025-01-01", "end_date": "2025-07-01", "min_kwh": 0.5, "max_kwh": 50,
          "min_current": 6, "max_current": 32, "min_power": 3.7, "max_power": 22,
          "min_duration": 0, "max_duration": 7200,
          "day_of_week": ["SUNDAY", "MONDAY", "MONDAY"]}}],
      "last_updated": "2024-12-01T10:00:00Z"}""",
            parse_float=Decimal,
        )
    )
    assert (t.id, t.currency, t.country_code, t.party_id) == ("7", "EUR", "DE", "ALL")
    assert t.min_price is not None
    assert (t.min_price.excl_vat_micros, t.min_price.incl_vat_micros) == (500_000, None)
    component = t.elements[0].price_components[0]
    assert (component.price_micros, component.vat, component.price) == (
        312_500,
        Decimal(19),
        Decimal("0.3125"),
    )
    r = t.elements[0].restrictions
    assert r is not None
    assert (r.start_time, r.end_time) == (time(22), time(6))
    assert (r.start_date, r.end_date) == (date(2025, 1, 1), date(2025, 7, 1))
    assert r.day_of_week == (DayOfWeek.MONDAY, DayOfWeek.SUNDAY)  # one order, no repeats
    assert t.extra["energy_mix"]["is_green_energy"] is True
    assert Tariff.from_mapping(t.to_mapping()) == t


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"elements": []}, "elements"),
        ({"currency": "EURO"}, "currency"),
        (
            {"elements": [{"price_components": [{"type": "ENERGY", "price": "0.1"}]}]},
            "elements[0].price_components[0].step_size",
        ),
        (
            {"elements": [{"price_components": [{"type": "KWH", "price": 1, "step_size": 1}]}]},
            "elements[0].price_components[0].type",
        ),
        (
            {
                "elements": [
                    {"price_components": [{"type": "ENERGY", "price": 0.25, "step_size": 1}]}
                ]
            },
            "elements[0].price_components[0].price",
        ),
        (
            {
                "elements": [
                    {
                        "price_components": [{"type": "TIME", "price": "1", "step_size": 1}],
                        "tariff_restrictions": {"max_duration": 60},
                    }
                ]
            },
            "elements[0].tariff_restrictions",
        ),
        (
            {
                "elements": [
                    {
                        "price_components": [{"type": "TIME", "price": "1", "step_size": 1}],
                        "restrictions": {"start_time": "24:00"},
                    }
                ]
            },
            "elements[0].restrictions.start_time",
        ),
        (
            {
                "elements": [
                    {
                        "price_components": [{"type": "TIME", "price": "1", "step_size": 1}],
                        "restrictions": {"day_of_week": ["FUNDAY"]},
                    }
                ]
            },
            "elements[0].restrictions.day_of_week[0]",
        ),
        ({"min_price": {"excl_vat": "2"}, "max_price": {"excl_vat": "1"}}, "min_price.excl_vat"),
        (
            {
                "elements": [
                    {
                        "price_components": [
                            {"type": "TIME", "price": "1", "vat": 120, "step_size": 1}
                        ]
                    }
                ]
            },
            "elements[0].price_components[0].vat",
        ),
    ],
)
def test_tariff_errors_name_the_field(change: dict[str, Any], field: str) -> None:
    base: dict[str, Any] = {
        "id": "1",
        "currency": "EUR",
        "elements": [{"price_components": [{"type": "TIME", "price": "1", "step_size": 1}]}],
    }
    with pytest.raises(ValidationError) as info:
        Tariff.from_mapping({**base, **change})
    assert info.value.field == field


def test_currency_quantum() -> None:
    assert currency_quantum("EUR") == 10_000
    assert currency_quantum("JPY") == 1_000_000
    assert currency_quantum("KWD") == 1_000
    with pytest.raises(ValidationError):
        currency_quantum("eur")


# -- reasons a session is not priced --------------------------------------------------------


def test_unpriced_sessions_say_why_and_cost_nothing() -> None:
    t = energy_tariff(end_date_time=datetime(2026, 1, 1, tzinfo=UTC))
    cases = {
        UnpricedReason.ONGOING: ChargingSession(id="o", started_at=START),
        UnpricedReason.CURRENCY_MISMATCH: one_period(currency="USD"),
        UnpricedReason.TARIFF_MISMATCH: one_period(tariff_id="OTHER"),
        UnpricedReason.TARIFF_NOT_IN_FORCE: one_period(started_at=datetime(2026, 1, 1, tzinfo=UTC)),
    }
    for reason, session in cases.items():
        charge = price_session(session, t)
        assert charge.status is SessionChargeStatus.UNPRICED
        assert charge.reason is reason
        assert charge.cost_micros is None
        assert charge.cost_incl_vat_micros is None
        assert f"UNPRICED ({reason.value})" in charge.explain()


def test_a_local_restriction_needs_a_time_zone() -> None:
    night = TariffRestrictions(start_time=time(22), end_time=time(6))
    t = energy_tariff(
        elements=[
            TariffElement([PriceComponent(type="ENERGY", price_micros=100_000)], night),
            TariffElement([PriceComponent(type="ENERGY", price_micros=300_000)]),
        ]
    )
    charge = price_session(one_period(), t)
    assert charge.reason is UnpricedReason.NO_TIME_ZONE
    # 10:00 UTC is 11:00 in Berlin: the day price.
    assert price_session(one_period(), t, time_zone="Europe/Berlin").cost_micros == 3_000_000
    # 22:30 in Berlin: the night price, read in the location's own zone.
    late = one_period(
        started_at=datetime(2025, 3, 3, 21, 30, tzinfo=UTC),
        location=SessionLocation(time_zone="Europe/Berlin"),
    )
    assert price_session(late, t).cost_micros == 1_000_000
    bad_zone = one_period(location=SessionLocation(time_zone="Mars/Olympus"))
    assert price_session(bad_zone, t).reason is UnpricedReason.NO_TIME_ZONE
    # A tariff that reads no local time prices it all the same.
    assert price_session(bad_zone, energy_tariff()).cost_micros == 2_500_000


def test_a_power_restriction_needs_a_power_value() -> None:
    t = energy_tariff(
        elements=[
            TariffElement(
                [PriceComponent(type="ENERGY", price_micros=100_000)],
                TariffRestrictions(max_power=Decimal(11)),
            ),
            TariffElement([PriceComponent(type="ENERGY", price_micros=300_000)]),
        ]
    )
    charge = price_session(one_period(), t)
    assert charge.reason is UnpricedReason.MISSING_DIMENSION
    assert "max_power" in charge.detail
    slow = one_period(dims={"ENERGY": "10", "MAX_POWER": "7.4"})
    fast = one_period(dims={"ENERGY": "10", "MIN_POWER": "50"})  # the maximum is above 11
    assert price_session(slow, t).cost_micros == 1_000_000
    assert price_session(fast, t).cost_micros == 3_000_000


# -- restrictions at their edges ----------------------------------------------------------


BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("local", "price"),
    [
        (datetime(2025, 3, 3, 21, 59, tzinfo=BERLIN), 300_000),
        (datetime(2025, 3, 3, 22, 0, tzinfo=BERLIN), 100_000),  # start_time is inclusive
        (datetime(2025, 3, 4, 5, 59, tzinfo=BERLIN), 100_000),  # across midnight
        (datetime(2025, 3, 4, 6, 0, tzinfo=BERLIN), 300_000),  # end_time is exclusive
    ],
)
def test_time_of_day_window_wraps_midnight(local: datetime, price: int) -> None:
    t = energy_tariff(
        elements=[
            TariffElement(
                [PriceComponent(type="ENERGY", price_micros=100_000)],
                TariffRestrictions(start_time=time(22), end_time=time(6)),
            ),
            TariffElement([PriceComponent(type="ENERGY", price_micros=300_000)]),
        ]
    )
    s = one_period("1", started_at=local, location=SessionLocation(time_zone="Europe/Berlin"))
    assert price_session(s, t, quantum_micros=1).cost_micros == price


@pytest.mark.parametrize(
    ("day", "price"),
    [
        (date(2025, 3, 31), 300_000),
        (date(2025, 4, 1), 100_000),
        (date(2025, 4, 30), 100_000),
        (date(2025, 5, 1), 300_000),
    ],
)
def test_dates_end_date_exclusive(day: date, price: int) -> None:
    t = energy_tariff(
        elements=[
            TariffElement(
                [PriceComponent(type="ENERGY", price_micros=100_000)],
                TariffRestrictions(start_date=date(2025, 4, 1), end_date=date(2025, 5, 1)),
            ),
            TariffElement([PriceComponent(type="ENERGY", price_micros=300_000)]),
        ]
    )
    start = datetime(day.year, day.month, day.day, 0, 30, tzinfo=BERLIN)
    s = one_period("1", started_at=start, location=SessionLocation(time_zone="Europe/Berlin"))
    assert price_session(s, t, quantum_micros=1).cost_micros == price


def test_only_the_first_matching_element_of_a_dimension_prices_it() -> None:
    # Two ENERGY elements without restrictions: the first wins; a TIME component in a
    # later element still prices time (each dimension finds its own element).
    t = energy_tariff(
        elements=[
            TariffElement([PriceComponent(type="ENERGY", price_micros=100_000)]),
            TariffElement(
                [
                    PriceComponent(type="ENERGY", price_micros=900_000),
                    PriceComponent(type="TIME", price_micros=1_200_000),
                ]
            ),
        ]
    )
    charge = price_session(one_period("10", minutes=30), t, quantum_micros=1)
    assert charge.cost_micros == 1_000_000 + 600_000
    assert [(c.dimension.value, c.element) for c in charge.periods] == [
        ("ENERGY", 0),
        ("TIME", 1),
    ]


def test_a_session_without_periods_is_priced_from_its_totals() -> None:
    t = energy_tariff(
        elements=[
            TariffElement(
                [
                    PriceComponent(type="ENERGY", price_micros=250_000),
                    PriceComponent(type="PARKING_TIME", price_micros=6_000_000, step_size=900),
                ]
            )
        ]
    )
    s = ChargingSession(
        id="l",
        started_at=START,
        ended_at=START + timedelta(minutes=100),
        energy_wh=20_000,
        charging_seconds=3_600,
        parking_seconds=1_000,  # billed 1,800 s (step 900): 3.00
    )
    charge = price_session(s, t)
    assert charge.cost_micros == 5_000_000 + 3_000_000
    assert any("no charging periods" in n for n in charge.notes)


# -- explain --------------------------------------------------------------------------------


def test_explain_shows_every_step_to_the_cost() -> None:
    t = Tariff.from_mapping(
        {
            "id": "13",
            "currency": "EUR",
            "elements": [
                {
                    "price_components": [
                        {"type": "FLAT", "price": "0.50", "vat": "20", "step_size": 1},
                        {"type": "ENERGY", "price": "0.25", "vat": "10", "step_size": 1},
                        {"type": "PARKING_TIME", "price": "2.00", "vat": "20", "step_size": 900},
                    ]
                }
            ],
        }
    )
    start = datetime(2019, 6, 3, 10, tzinfo=BERLIN)
    s = ChargingSession(
        id="S-42",
        started_at=start,
        ended_at=start + timedelta(minutes=100),
        energy_wh=20_000,
        location=SessionLocation(time_zone="Europe/Berlin"),
        charging_periods=[
            ChargingPeriod(start, [CdrDimension("ENERGY", Decimal(20))]),
            ChargingPeriod(start + timedelta(minutes=60), [CdrDimension("ENERGY", Decimal(0))]),
        ],
    )
    assert price_session(s, t).explain() == (
        "Session S-42: 2019-06-03T10:00:00+02:00 to 2019-06-03T11:40:00+02:00, "
        "2 charging period(s), 20,000 Wh\n"
        "Tariff 13 (EUR): 1 element(s); rounding half_up to 10,000 micros; step policy "
        "per_dimension; local time in Europe/Berlin\n"
        "Period 1 from Mon 2019-06-03 10:00:00 CEST:\n"
        "  FLAT: element 1, 0.50 EUR (VAT 20%) = 500,000 micros\n"
        "  ENERGY: 20,000 Wh at 0.25 EUR/kWh (VAT 10%, step 1) (element 1) = 5,000,000 micros\n"
        "Period 2 from Mon 2019-06-03 11:00:00 CEST:\n"
        "  PARKING_TIME: 2,400 s at 2.00 EUR/h (VAT 20%, step 900) (element 1) "
        "= 1,333,333 1/3 (≈ 1,333,333.33) micros\n"
        "Dimensions:\n"
        "  FLAT: flat fee; 500,000 micros (incl. VAT 600,000)\n"
        "  ENERGY: 20,000 Wh, step 1 (element 1, the last used) -> 20,000 Wh billed; "
        "5,000,000 micros (incl. VAT 5,500,000)\n"
        "  PARKING_TIME: 2,400 s, step 900 (element 1, the last used) -> 2,700 s billed, "
        "166,666 2/3 (≈ 166,666.67) micros for the rest of the step; "
        "1,500,000 micros (incl. VAT 1,800,000)\n"
        "Note: period 1 measures no TIME or PARKING_TIME: its length (3,600 s) is counted "
        "as charging time\n"
        "Note: period 2 measures no TIME or PARKING_TIME: its length (2,400 s) is counted "
        "as parking time (no energy)\n"
        "Total excl. VAT: exact 7,000,000 micros, rounded once to 7,000,000\n"
        "Total incl. VAT: exact 7,900,000 micros, rounded once to 7,900,000\n"
        "Cost: 7.00 EUR (7,000,000 micros) excl. VAT, 7.90 EUR (7,900,000 micros) incl. VAT"
    )


# -- batches --------------------------------------------------------------------------------


def test_batch_resolves_tariffs_and_reports_every_record() -> None:
    a = energy_tariff(id="A")
    b = energy_tariff(
        id="B",
        elements=[TariffElement([PriceComponent(type="ENERGY", price_micros=500_000)])],
    )
    sessions: list[Any] = [
        one_period("10", id="1", tariff_id="A"),
        one_period("10", id="2", tariff_id="B"),
        {"id": "3", "startedAt": "not a time"},
        one_period("10", id="4", tariff_id="C"),
        ChargingSession(id="5", started_at=START, tariff_ids=("B",)),
        {
            "id": "6",
            "startedAt": "2025-03-03T10:00:00Z",
            "endedAt": "2025-03-03T11:00:00Z",
            "consumed": 4_000,
            "tariffIds": ["A"],
        },
    ]
    result = price_sessions(sessions, {"A": a, "B": b})
    assert len(result) == 6
    costs = [None if c is None else c.cost_micros for c in result]
    assert costs == [2_500_000, 5_000_000, None, None, None, 1_000_000]
    assert [(e.position, e.field) for e in result.errors] == [(2, "startedAt")]
    assert result.by_status == {"PRICED": 3, "UNPRICED": 2}
    assert result.by_reason == {"NO_TARIFF": 1, "ONGOING": 1}
    assert result.totals == {"EUR": 8_500_000}
    assert [(i, c.reason) for i, c in result.unpriced()] == [
        (3, UnpricedReason.NO_TARIFF),
        (4, UnpricedReason.ONGOING),
    ]
    assert not result.ok
    no_tariff = result.charges[3]
    assert no_tariff is not None
    assert "UNPRICED (NO_TARIFF): no tariff was found for this session" in no_tariff.explain()
    assert "6 sessions" in repr(result)
    assert "<table>" in result._repr_html_()


def test_batch_with_one_tariff_or_a_function() -> None:
    t = energy_tariff()
    sessions = [one_period("1", id="x"), one_period("2", id="y")]
    by_one = price_sessions(sessions, t)
    by_function = price_sessions(sessions, lambda s: t if s.id == "x" else None)
    assert [c.cost_micros for c in by_one if c is not None] == [250_000, 500_000]
    assert [c.reason for c in by_function if c is not None] == [None, UnpricedReason.NO_TARIFF]
    with pytest.raises(ValidationError):
        price_sessions(sessions, "T1")  # type: ignore[arg-type]
    # A bad option is the caller's: refused at once, not reported once per session.
    with pytest.raises(ValidationError, match="time_zone"):
        price_sessions(sessions, t, time_zone="Nowhere/Never")
    with pytest.raises(ValidationError, match="rounding"):
        price_sessions(sessions, t, rounding="sideways")
