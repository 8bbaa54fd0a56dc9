"""Properties of rating (rating-rules.md), checked on random decks and calls.

Each property is checked against an independent oracle where one exists: a plain loop
over all rates for prefix selection (§5), a second-by-second step loop for billed
seconds and the exact sum (§3-4), ``decimal`` for rounding (§4) and pygtrie's own
``longest_prefix`` on decks without windows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import (
    ROUND_CEILING,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Decimal,
    localcontext,
)
from fractions import Fraction

import attrs
import pygtrie  # type: ignore[import-untyped]  # pygtrie ships no type information
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdrrating import (
    CDR,
    ChargeStatus,
    Direction,
    Disposition,
    Rate,
    RatePlan,
    Rater,
    RateStatus,
    Reason,
    Rounding,
    ValidationError,
    _rules,
    format_micros,
    rate,
    round_micros,
    to_micros,
)
from cdrrating._bands import tiers_of
from cdrrating._rules import normalise_number
from cdrrating.testing import strategies as cs

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

# -- oracles --------------------------------------------------------------------------------


def brute_steps(rate_: Rate, billsec: int) -> list[tuple[int, int, int]]:
    """(start, length, per_minute) of every step, found by walking the call one second
    at a time exactly as rating-rules §3 words it."""
    steps: list[tuple[int, int, int]] = []
    step_end = 0
    second = 0
    while second < billsec or second < step_end:
        if second == step_end:  # a new step starts here
            per_minute, increment = rate_.per_minute_micros, rate_.increment_seconds
            for tier in rate_.tiers:
                if tier.after_seconds <= second:
                    per_minute, increment = tier.per_minute_micros, tier.increment_seconds
            first = second == 0 and rate_.initial_seconds > 0
            length = rate_.initial_seconds if first else increment
            steps.append((second, length, per_minute))
            step_end = second + length
        second += 1
    return steps


def brute_exact(rate_: Rate, billsec: int) -> Fraction:
    """The exact amount in micros of rating-rules §4, before rounding."""
    steps = brute_steps(rate_, billsec)
    seconds_cost = sum((Fraction(length * price, 60) for _s, length, price in steps), Fraction(0))
    return rate_.connection_fee_micros + seconds_cost


def expected_cost(rate_: Rate, plan: RatePlan, billsec: int) -> int:
    if billsec <= rate_.grace_seconds:
        return 0
    exact = brute_exact(rate_, billsec)
    cost = round_micros(exact, quantum=plan.quantum_micros, mode=plan.rounding)
    cost = max(cost, rate_.minimum_charge_micros)
    if rate_.maximum_charge_micros is not None:
        cost = min(cost, rate_.maximum_charge_micros)
    return cost


def oracle_lookup(plan: RatePlan, number: str, at: datetime, direction: Direction) -> Rate | None:
    """rating-rules §5 as a plain loop over every rate of the plan."""
    digits = normalise_number(number, plan.access_prefixes)
    if digits is None:
        return None
    candidates = [
        r
        for r in plan.rates
        if r.status is RateStatus.ACTIVE
        and r.direction is direction
        and (r.valid_from is None or r.valid_from <= at)
        and (r.valid_until is None or at < r.valid_until)
        and digits.startswith(r.prefix)
    ]
    if not candidates:
        return None
    longest = max(len(r.prefix) for r in candidates)
    top = [r for r in candidates if len(r.prefix) == longest]
    best = max(r.priority for r in top)
    winners = [r for r in top if r.priority == best]
    assert len(winners) == 1, "rate_plans() promised a non-ambiguous plan"
    return winners[0]


def call(number: str, billsec: int, **kw: object) -> CDR:
    return CDR(call_id="c", started_at=T0, destination_number=number, billsec=billsec, **kw)  # type: ignore[arg-type]


def under(rate_: Rate) -> str:
    """A number under the rate's prefix, written after the access prefix so that a
    prefix such as ``00`` is not taken for one."""
    return "00" + rate_.prefix + "5"


# -- strategies local to these tests --------------------------------------------------------

ROUNDINGS = st.sampled_from(Rounding)
QUANTA = st.sampled_from([1, 7, 100, 10_000])


@st.composite
def single_rate_plans(draw: st.DrawFn, /, **rate_options: object) -> tuple[Rate, RatePlan]:
    """One active outbound rate in a plan with a random rounding and quantum."""
    rate_ = draw(cs.rates(directions="outbound", statuses="active", **rate_options))  # type: ignore[arg-type]
    plan = RatePlan([rate_], currency="EUR", rounding=draw(ROUNDINGS), quantum_micros=draw(QUANTA))
    return rate_, plan


def fixed_queries(plan: RatePlan) -> list[tuple[str, datetime, Direction]]:
    """Every number at and around each prefix of the plan, at every window boundary and
    a microsecond before it, in every direction: cheap, so checked exhaustively."""
    numbers = {"", "+", "abc", "00", "5", "0"}
    for r in plan.rates:
        for digits in (r.prefix, r.prefix + "0", r.prefix + "9", r.prefix[:-1], r.prefix + "12345"):
            numbers.update({digits, "00" + digits, "+" + digits, "011" + digits, "0000" + digits})
    times = {T0}
    for r in plan.rates:
        for edge in (r.valid_from, r.valid_until):
            if edge is not None:
                times.update({edge, edge - timedelta(microseconds=1)})
    return [(n, t, d) for n in sorted(numbers) for t in sorted(times) for d in Direction]


def queries(plan: RatePlan) -> st.SearchStrategy[list[tuple[str, datetime, Direction]]]:
    """A few drawn (number, at, direction) triples, with formatted numbers, on top of
    :func:`fixed_queries`."""
    numbers = cs.dialled_numbers(plan=plan, formatted=True) | cs.dialled_numbers(formatted=True)
    drawn = st.lists(st.tuples(numbers, cs.timestamps(), st.sampled_from(Direction)), max_size=5)
    return drawn.map(lambda extra: fixed_queries(plan) + extra)


# Plans take ~150 choices to draw; each one is then checked against hundreds of queries,
# so these tests use fewer examples than the profile's default.
PLAN_EXAMPLES = settings(max_examples=50)


# -- money (rating-rules §1) ----------------------------------------------------------------


@given(cs.micros(min_value=-(10**15), max_value=10**15))
def test_money_round_trips_exactly(amount: int) -> None:
    assert to_micros(format_micros(amount)) == amount
    assert to_micros(format_micros(amount, places=6)) == amount
    assert to_micros(format_micros(amount).replace(".", ","), decimal_separator=",") == amount
    as_decimal = Decimal(amount).scaleb(-6)
    assert to_micros(as_decimal) == amount
    assert to_micros(str(as_decimal)) == amount  # str() may use exponent form: "0E-6"
    assert Decimal(format_micros(amount)) == as_decimal
    assert to_micros(amount // 1_000_000) == (amount // 1_000_000) * 1_000_000


@given(st.integers(-(10**12), 10**12), st.integers(7, 12), ROUNDINGS)
def test_more_than_six_places_needs_a_rounding_mode(
    units: int, places: int, mode: Rounding
) -> None:
    value = Decimal(units).scaleb(-places)
    exact = Fraction(value) * 1_000_000
    if exact.denominator == 1:
        assert to_micros(value) == exact
    else:
        with pytest.raises(ValidationError):
            to_micros(value)
        with pytest.raises(ValidationError):
            to_micros(str(value))
    assert to_micros(value, rounding=mode) == round_micros(exact, mode=mode)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_are_refused(value: float) -> None:
    with pytest.raises(ValidationError, match="Decimal"):
        to_micros(value)  # type: ignore[arg-type]


DECIMAL_MODES = {
    Rounding.UP: ROUND_CEILING,
    Rounding.DOWN: ROUND_FLOOR,
    Rounding.HALF_UP: ROUND_HALF_UP,  # ties away from zero, as the library documents
    Rounding.HALF_EVEN: ROUND_HALF_EVEN,
}


QUANTA_2_5 = st.sampled_from([1, 2, 4, 5, 10, 25, 100, 500, 10_000, 1_000_000])


@st.composite
def exact_fractions(draw: st.DrawFn, quantum: int) -> Fraction:
    """Fractions whose denominator is 2^a·5^b (so a Decimal holds them exactly), half of
    them exact ties between two multiples of the quantum: random values almost never
    land on a tie, and ties are where the modes differ most."""
    if draw(st.booleans()):
        return Fraction(2 * draw(st.integers(-(10**9), 10**9)) + 1, 2) * quantum
    numerator = draw(st.integers(-(10**15), 10**15))
    return Fraction(numerator, 2 ** draw(st.integers(0, 8)) * 5 ** draw(st.integers(0, 8)))


@given(st.data(), QUANTA_2_5, ROUNDINGS)
def test_rounding_agrees_with_decimal(data: st.DataObject, quantum: int, mode: Rounding) -> None:
    value = data.draw(exact_fractions(quantum))
    with localcontext() as ctx:
        ctx.prec = 60
        steps = Decimal(value.numerator) / Decimal(value.denominator * quantum)
        expected = int(steps.to_integral_value(rounding=DECIMAL_MODES[mode])) * quantum
    assert round_micros(value, quantum=quantum, mode=mode) == expected
    assert round_micros(value, quantum=quantum, mode=mode.value) == expected


# -- steps and tiers (rating-rules §3) --------------------------------------------------------


def laid(rate_: Rate, billsec: int) -> tuple[int, int, list[tuple[int, int, int, int, int]]]:
    """The engine's steps for one rate: billed seconds, Σ seconds × price, and the runs."""
    runs: list[tuple[int, int, int, int, int]] = []
    billed, total = _rules.lay(
        billsec,
        _rules.first_step(rate_.initial_seconds, rate_.increment_seconds),
        rate_.per_minute_micros,
        _rules.rate_pieces(rate_.increment_seconds, rate_.per_minute_micros, tiers_of(rate_)),
        runs=runs,
    )
    return billed, total, runs


@given(cs.rates(with_fees=True), st.integers(1, 600))
def test_steps_agree_with_a_second_by_second_loop(rate_: Rate, billsec: int) -> None:
    billed, total, runs = laid(rate_, billsec)
    steps = [
        (start + i * length, length, per_minute)
        for _tag, start, count, length, per_minute in runs
        for i in range(count)
    ]
    assert steps == brute_steps(rate_, billsec)
    assert billed == sum(length for _s, length, _p in steps)
    assert rate_.connection_fee_micros + Fraction(total, 60) == brute_exact(rate_, billsec)


@given(cs.rates(with_tiers=False), st.integers(1, 10**7))
def test_untiered_steps_follow_the_closed_form(rate_: Rate, billsec: int) -> None:
    billed, total, runs = laid(rate_, billsec)
    assert total == billed * rate_.per_minute_micros
    assert len(runs) <= 2  # the first step, then one run of increments
    # The closed form of rating-rules §3.
    initial, increment = rate_.initial_seconds, rate_.increment_seconds
    if billsec <= initial:
        assert billed == initial
    else:
        assert billed == initial + -(-(billsec - initial) // increment) * increment


# -- rating a call (rating-rules §2-4) ----------------------------------------------------------


@given(single_rate_plans(), st.integers(1, 3_000))
def test_cost_is_the_exact_sum_rounded_once(pair: tuple[Rate, RatePlan], billsec: int) -> None:
    rate_, plan = pair
    charge = rate(call(under(rate_), billsec), plan)
    assert charge.status is ChargeStatus.RATED
    assert charge.cost_micros == expected_cost(rate_, plan, billsec)


@given(single_rate_plans(), st.integers(1, 3_000))
def test_billed_seconds_cover_billsec_and_fall_on_a_step(
    pair: tuple[Rate, RatePlan], billsec: int
) -> None:
    rate_, plan = pair
    charge = rate(call(under(rate_), billsec), plan)
    if billsec <= rate_.grace_seconds:
        assert (charge.billed_seconds, charge.cost_micros) == (0, 0)
        return
    assert charge.billed_seconds >= billsec
    steps = brute_steps(rate_, billsec)
    boundaries = {start + length for start, length, _p in steps}
    assert charge.billed_seconds in boundaries
    # The last step was needed: it starts before billsec.
    assert steps[-1][0] < billsec
    if not rate_.tiers:
        initial, increment = rate_.initial_seconds, rate_.increment_seconds
        assert charge.billed_seconds == initial or (
            charge.billed_seconds > initial and (charge.billed_seconds - initial) % increment == 0
        )


@given(single_rate_plans(), st.integers(0, 5_000), st.integers(0, 5_000))
def test_cost_never_decreases_when_billsec_grows(
    pair: tuple[Rate, RatePlan], a: int, b: int
) -> None:
    rate_, plan = pair
    shorter, longer = sorted((a, b))
    number = under(rate_)
    first = rate(call(number, shorter), plan)
    second = rate(call(number, longer), plan)
    assert first.cost_micros is not None and second.cost_micros is not None
    assert first.cost_micros <= second.cost_micros
    assert first.billed_seconds <= second.billed_seconds or longer <= rate_.grace_seconds


@PLAN_EXAMPLES
@given(st.data())
def test_unanswered_calls_cost_nothing(data: st.DataObject) -> None:
    plan = data.draw(cs.rate_plans())
    cdr = data.draw(
        cs.cdrs(
            numbers=cs.dialled_numbers(plan=plan, formatted=True) | cs.dialled_numbers(),
            dispositions=[d for d in Disposition if d is not Disposition.ANSWERED],
            allow_unanswered_billsec=True,
        )
        | cs.cdrs(numbers=cs.dialled_numbers(plan=plan), dispositions="ANSWERED", billsec=0)
    )
    charge = rate(cdr, plan)
    assert charge.status is ChargeStatus.UNANSWERED
    assert (charge.cost_micros, charge.connection_fee_micros, charge.billed_seconds) == (0, 0, 0)
    assert charge.currency == plan.currency


@given(single_rate_plans(), st.integers(1, 5_000))
def test_a_billable_call_costs_between_its_fee_and_its_maximum(
    pair: tuple[Rate, RatePlan], billsec: int
) -> None:
    rate_, plan = pair
    charge = rate(call(under(rate_), billsec), plan)
    cost = charge.cost_micros
    assert cost is not None
    if billsec <= rate_.grace_seconds:
        assert cost == 0 and charge.connection_fee_micros == 0
        return
    fee, cap = rate_.connection_fee_micros, rate_.maximum_charge_micros
    assert charge.connection_fee_micros == fee
    if cap is not None:
        assert cost <= cap
    assert cost >= min(rate_.minimum_charge_micros, cap if cap is not None else cost)
    # Rounding is monotone and the exact sum starts at the fee, so the cost is at least
    # the fee rounded the plan's way (then clamped); with rounding up, or a fee that is a
    # multiple of the quantum, that is the fee itself.
    floor = max(
        round_micros(fee, quantum=plan.quantum_micros, mode=plan.rounding),
        rate_.minimum_charge_micros,
    )
    assert cost >= (min(floor, cap) if cap is not None else floor)
    if plan.rounding is Rounding.UP or fee % plan.quantum_micros == 0:
        assert cost >= (min(fee, cap) if cap is not None else fee)


# -- which rate (rating-rules §5) ----------------------------------------------------------------


@PLAN_EXAMPLES
@given(st.data())
def test_lookup_equals_a_brute_force_oracle(data: st.DataObject) -> None:
    plan = data.draw(
        cs.rate_plans(max_size=16, access_prefixes=st.sampled_from([("00",), ("011", "00")]))
    )
    for number, at, direction in data.draw(queries(plan)):
        expected = oracle_lookup(plan, number, at, direction)
        assert plan.lookup(number, at, direction=direction) is expected, (number, at, direction)


@PLAN_EXAMPLES
@given(st.data())
def test_lookup_equals_pygtrie_longest_prefix_without_windows(data: st.DataObject) -> None:
    deck = cs.rates(prefixes=cs.prefixes(max_size=7, digits="123"), with_windows=False)
    plan = data.draw(cs.rate_plans(rates=deck, max_size=20))
    tries = {d: pygtrie.CharTrie() for d in Direction}
    for r in sorted(plan.rates, key=lambda r: r.priority):  # higher priority written last
        if r.status is RateStatus.ACTIVE:
            tries[r.direction][r.prefix] = r
    for number, at, direction in data.draw(queries(plan)):
        digits = normalise_number(number, plan.access_prefixes)
        expected = None if digits is None else tries[direction].longest_prefix(digits).get(None)
        assert plan.lookup(number, at, direction=direction) is expected


@PLAN_EXAMPLES
@given(st.data())
def test_selection_does_not_depend_on_the_order_of_the_rates(data: st.DataObject) -> None:
    plan = data.draw(cs.rate_plans(max_size=16))
    shuffled = RatePlan(
        data.draw(st.permutations(plan.rates)),
        currency=plan.currency,
        rounding=plan.rounding,
        quantum_micros=plan.quantum_micros,
    )
    assert shuffled == plan
    for number, at, direction in data.draw(queries(plan)):
        assert shuffled.lookup(number, at, direction=direction) is plan.lookup(
            number, at, direction=direction
        )
    cdr = data.draw(cs.cdrs(numbers=cs.dialled_numbers(plan=plan)))
    assert rate(cdr, shuffled) == rate(cdr, plan)


# -- records (issue 2 §3) ------------------------------------------------------------------------


@given(
    cs.cdrs(
        with_details=True,
        tenants=st.none() | st.sampled_from(["acme", "t-2"]),
        allow_unanswered_billsec=True,
    ),
    st.none() | cs.micros(),
    st.none() | st.sampled_from(["EUR", "USD"]),
)
def test_cdr_mapping_round_trips(cdr: CDR, cost: int | None, currency: str | None) -> None:
    cdr = attrs.evolve(cdr, cost_micros=cost, currency=currency)
    assert CDR.from_mapping(cdr.to_mapping()) == cdr


# -- plan chains (rating-rules §5, Rater) ----------------------------------------------------------

ACCESS = st.sampled_from([("00",), ("011",)])


@PLAN_EXAMPLES
@given(st.data())
def test_rater_tries_the_chain_in_order(data: st.DataObject) -> None:
    tenant_plan = data.draw(cs.rate_plans(name="tenant", access_prefixes=ACCESS))
    default_plan = data.draw(cs.rate_plans(name="default", access_prefixes=ACCESS))
    rater = Rater({"t": tenant_plan}, default=default_plan)
    numbers = (
        cs.dialled_numbers(plan=tenant_plan, formatted=True)
        | cs.dialled_numbers(plan=default_plan, formatted=True)
        | cs.dialled_numbers()
    )
    cdr = data.draw(cs.cdrs(numbers=numbers, tenants=["t", "other"]))
    charge = rater.rate(cdr)
    chain = [tenant_plan, default_plan] if cdr.tenant == "t" else [default_plan]
    assert list(rater.chain(cdr.tenant)) == chain
    for plan in chain:
        if plan.lookup(cdr.destination_number, cdr.started_at, direction=cdr.direction):
            assert charge == rate(cdr, plan)
            assert charge.plan is plan
            break
    else:
        assert charge.rate is None
        if not cdr.is_billable:
            assert (charge.status, charge.cost_micros) == (ChargeStatus.UNANSWERED, 0)
        elif not any(p.has_direction(cdr.direction) for p in chain):
            assert (charge.status, charge.cost_micros) == (ChargeStatus.DIRECTION_NOT_RATED, 0)
        else:
            assert charge.status is ChargeStatus.UNRATED
            assert charge.reason in {Reason.NO_RATE, Reason.INVALID_NUMBER}
    # An unrated call never costs 0: its cost is None, and only its cost is None.
    assert (charge.cost_micros is None) == (charge.status is ChargeStatus.UNRATED)


@PLAN_EXAMPLES
@given(st.data())
def test_a_default_catch_all_rates_whatever_the_tenant_plan_cannot(data: st.DataObject) -> None:
    tenant_plan = data.draw(cs.rate_plans(name="tenant"))
    default_plan = RatePlan(
        [Rate("", 1_000, direction=d) for d in Direction], currency="EUR", name="default"
    )
    cdr = data.draw(
        cs.cdrs(
            numbers=cs.dialled_numbers(plan=tenant_plan) | cs.dialled_numbers(),
            dispositions="ANSWERED",
            billsec=st.integers(1, 600),
            tenants="t",
        )
    )
    charge = Rater({"t": tenant_plan}, default=default_plan).rate(cdr)
    own = tenant_plan.lookup(cdr.destination_number, cdr.started_at, direction=cdr.direction)
    assert charge.status is ChargeStatus.RATED
    assert charge.plan is (tenant_plan if own is not None else default_plan)
    assert charge.rate is (
        own
        if own is not None
        else default_plan.rates[[r.direction for r in default_plan.rates].index(cdr.direction)]
    )


@given(cs.cdrs(dispositions="ANSWERED", billsec=st.integers(1, 100)))
def test_no_plan_at_all_is_unrated_not_free(cdr: CDR) -> None:
    charge = Rater({}).rate(cdr)
    assert (charge.status, charge.reason, charge.cost_micros) == (
        ChargeStatus.UNRATED,
        Reason.NO_PLAN,
        None,
    )
