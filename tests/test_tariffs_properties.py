"""Properties of tariffs and of pricing that hold for every tariff and session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from cdrrating.charging import CdrDimension, ChargingPeriod, ChargingSession
from cdrrating.errors import ValidationError
from cdrrating.money import Rounding
from cdrrating.tariffs import (
    SessionChargeStatus,
    Tariff,
    currency_quantum,
    price_session,
    price_sessions,
)
from cdrrating.testing.strategies import charging_sessions, tariffs

START = datetime(2024, 5, 6, 10, 0, tzinfo=UTC)


def _for_any_tariff(s: ChargingSession) -> ChargingSession:
    # No currency and no period naming a tariff: any tariff may price it.
    periods = tuple(attrs.evolve(p, tariff_id=None) for p in s.charging_periods)
    return attrs.evolve(s, currency=None, charging_periods=periods)


_priceable = charging_sessions(ongoing=False, with_extra=False).map(_for_any_tariff)


@given(t=tariffs())
def test_tariff_round_trips(t: Tariff) -> None:
    assert Tariff.from_mapping(t.to_mapping()) == t


def _energy_session(wh: int, minutes: int = 60) -> ChargingSession:
    return ChargingSession(
        id="e",
        started_at=START,
        ended_at=START + timedelta(minutes=minutes),
        charging_periods=(ChargingPeriod(START, (CdrDimension("ENERGY", Decimal(wh) / 1000),)),),
    )


@given(
    t=tariffs(dimensions=["ENERGY"], with_restrictions=False, with_dates=False),
    a=st.integers(0, 200_000),
    b=st.integers(0, 200_000),
)
def test_cost_is_monotone_in_energy_for_an_energy_only_tariff(t: Tariff, a: int, b: int) -> None:
    low, high = sorted((a, b))
    first = price_session(_energy_session(low), t)
    second = price_session(_energy_session(high), t)
    assert first.cost_micros is not None
    assert second.cost_micros is not None
    assert first.cost_micros <= second.cost_micros
    if first.cost_incl_vat_micros is not None and second.cost_incl_vat_micros is not None:
        assert first.cost_incl_vat_micros <= second.cost_incl_vat_micros


@given(
    t=tariffs(with_local_restrictions=False, with_dates=False),
    s=_priceable,
    mode=st.sampled_from(Rounding),
)
def test_min_and_max_price_bound_every_cost(t: Tariff, s: ChargingSession, mode: Rounding) -> None:
    charge = price_session(s, t, rounding=mode)
    if charge.status is SessionChargeStatus.UNPRICED:
        assert charge.cost_micros is None
        assert charge.reason is not None
        return
    cost = charge.cost_micros
    assert cost is not None
    if t.min_price is not None:
        assert cost >= t.min_price.excl_vat_micros
    if t.max_price is not None:
        assert cost <= t.max_price.excl_vat_micros
    incl = charge.cost_incl_vat_micros
    if incl is not None:
        if t.min_price is not None and t.min_price.incl_vat_micros is not None:
            assert incl >= t.min_price.incl_vat_micros
        if t.max_price is not None and t.max_price.incl_vat_micros is not None:
            assert incl <= t.max_price.incl_vat_micros


@given(
    t=tariffs(with_local_restrictions=False, with_bounds=False, with_dates=False),
    s=_priceable,
    mode=st.sampled_from(Rounding),
    quantum=st.sampled_from([None, 1, 100, 10_000, 1_000_000]),
)
def test_one_rounding_of_the_exact_sum(
    t: Tariff, s: ChargingSession, mode: Rounding, quantum: int | None
) -> None:
    charge = price_session(s, t, rounding=mode, quantum_micros=quantum)
    assume(charge.status is SessionChargeStatus.PRICED)
    q = currency_quantum(t.currency) if quantum is None else quantum
    assert charge.exact_micros is not None
    assert charge.cost_micros is not None
    # The exact sum is the sum of the dimensions, which is the sum of the periods plus
    # what the step sizes added: nothing is rounded before the end.
    assert charge.exact_micros == sum((d.amount for d in charge.dimensions), Fraction(0))
    assert charge.exact_micros == sum((c.amount for c in charge.periods), Fraction(0)) + sum(
        (d.step_amount for d in charge.dimensions), Fraction(0)
    )
    # Each dimension is billed in whole steps: the fewest that cover its volume.
    for d in charge.dimensions:
        if d.step_size is not None:
            assert d.billed_volume % d.step_size == 0
            assert 0 <= d.billed_volume - d.volume < d.step_size
    for exact, cost in (
        (charge.exact_micros, charge.cost_micros),
        (charge.exact_incl_vat_micros, charge.cost_incl_vat_micros),
    ):
        if exact is None:
            assert cost is None
            continue
        assert cost is not None
        assert cost % q == 0
        if mode in (Rounding.HALF_UP, Rounding.HALF_EVEN):
            assert abs(exact - cost) <= Fraction(q, 2)
        elif mode is Rounding.UP:
            assert 0 <= cost - exact < q
        else:
            assert 0 <= exact - cost < q


@given(
    t=tariffs(with_local_restrictions=False),
    sessions=st.lists(charging_sessions(with_extra=False), max_size=5),
    junk_at=st.lists(st.integers(0, 5), max_size=2),
)
def test_batch_prices_or_reports_every_session(
    t: Tariff, sessions: list[ChargingSession], junk_at: list[int]
) -> None:
    records: list[object] = list(sessions)
    for position in sorted(set(junk_at)):
        records.insert(min(position, len(records)), {"id": "bad", "startedAt": "not a time"})
    result = price_sessions(records, t)  # type: ignore[arg-type]
    assert len(result) == len(records)
    bad = {e.position for e in result.errors}
    for position, record in enumerate(records):
        charge = result.charges[position]
        if isinstance(record, ChargingSession):
            assert charge is not None
            assert charge == price_session(record, t)
        else:
            assert charge is None
            assert position in bad


def test_tariff_strategy_refuses_impossible_options() -> None:
    with pytest.raises(InvalidArgument):
        tariffs(dimensions=[])
    with pytest.raises(InvalidArgument):
        tariffs(dimensions=["WATTS"])
    with pytest.raises(InvalidArgument):
        tariffs(with_vat="yes")  # type: ignore[arg-type]


@given(
    t=tariffs(with_restrictions=False, with_dates=False),
    wh=st.integers(100, 100_000),
    share=st.integers(1, 99),
    seconds=st.integers(2, 36_000),
    cut=st.integers(1, 99),
)
def test_splitting_a_period_changes_nothing_without_restrictions(
    t: Tariff, wh: int, share: int, seconds: int, cut: int
) -> None:
    # Steps apply to each dimension's total over the session, not per period: cutting a
    # period in two (its energy shared between the halves) leaves the price as it was.
    # Both halves deliver energy: a half with none would be parking time.
    end = START + timedelta(seconds=seconds)
    at = START + timedelta(seconds=max(1, seconds * cut // 100))
    first_wh = wh * share // 100

    def energy(w: int) -> tuple[CdrDimension, ...]:
        return (CdrDimension("ENERGY", Decimal(w) / 1000),)

    whole = ChargingSession(
        id="w",
        started_at=START,
        ended_at=end,
        charging_periods=(ChargingPeriod(START, energy(wh)),),
    )
    split = attrs.evolve(
        whole,
        charging_periods=(
            ChargingPeriod(START, energy(first_wh)),
            ChargingPeriod(at, energy(wh - first_wh)),
        ),
    )
    a, b = price_session(whole, t), price_session(split, t)
    assert (a.exact_micros, a.exact_incl_vat_micros) == (b.exact_micros, b.exact_incl_vat_micros)
    assert (a.cost_micros, a.cost_incl_vat_micros) == (b.cost_micros, b.cost_incl_vat_micros)


@given(
    t=tariffs(),
    s=charging_sessions(with_extra=False).map(_for_any_tariff),
    policy=st.sampled_from(["per_dimension", "last_time_dimension"]),
)
def test_every_valid_session_is_priced_or_reported(
    t: Tariff, s: ChargingSession, policy: str
) -> None:
    # Whatever the restrictions, zones and reservations: a cost, or a reason; never an
    # exception, and explain() always tells it.
    charge = price_session(s, t, step_policy=policy)
    assert (charge.cost_micros is None) == (charge.status is SessionChargeStatus.UNPRICED)
    assert (charge.reason is None) == (charge.status is SessionChargeStatus.PRICED)
    assert charge.explain()


_junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12) | st.floats(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "price",
                    "vat",
                    "step_size",
                    "price_components",
                    "restrictions",
                    "start_time",
                    "min_kwh",
                    "day_of_week",
                    "reservation",
                    "excl_vat",
                ]
            ),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@given(
    data=st.fixed_dictionaries(
        {},
        optional={
            "id": _junk,
            "currency": st.sampled_from(["EUR", "eur", "", 5]),
            "elements": _junk,
            "min_price": _junk,
            "max_price": _junk,
            "start_date_time": _junk,
            "type": _junk,
        },
    )
)
def test_tariff_garbage_raises_validation_error_only(data: dict[str, object]) -> None:
    refused: ValidationError | None = None
    try:
        Tariff.from_mapping(data)
    except ValidationError as error:
        refused = error
    assert refused is None or refused.field
