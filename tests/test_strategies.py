"""The strategies of cdrrating.testing keep their promises (and refuse impossible options)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from cdrrating import CDR, Direction, Disposition, Rate, RatePlan, RateStatus, Tier
from cdrrating._validate import ceil_seconds
from cdrrating.plan import normalise_number
from cdrrating.testing import strategies as cs


@given(st.data())
def test_micros_respect_their_bounds(data: st.DataObject) -> None:
    lo = data.draw(st.integers(-(10**12), 10**12))
    hi = data.draw(st.integers(lo, lo + 10**12))
    value = data.draw(cs.micros(min_value=lo, max_value=hi))
    assert type(value) is int
    assert lo <= value <= hi


@given(cs.prefixes(min_size=1, max_size=4, digits="12"))
def test_prefixes_use_only_the_digits_asked_for(prefix: str) -> None:
    assert 1 <= len(prefix) <= 4
    assert set(prefix) <= {"1", "2"}


@given(st.data())
def test_dialled_numbers_normalise_under_their_prefixes(data: st.DataObject) -> None:
    pool = data.draw(st.lists(cs.prefixes(max_size=5), min_size=1, max_size=4))
    access = data.draw(st.sampled_from([("00",), ("011", "00"), ("0",), ()]))
    formatted = data.draw(st.booleans())
    number = data.draw(
        cs.dialled_numbers(
            prefixes=pool, min_size=5, max_size=12, formatted=formatted, access_prefixes=access
        )
    )
    digits = normalise_number(number, access)
    assert digits is not None
    assert 5 <= len(digits) <= 12
    assert any(digits.startswith(p) for p in pool)
    assert len(number) <= 50
    if not formatted:
        assert number.isdigit()


@given(st.data())
def test_dialled_numbers_under_a_plan_find_its_prefixes(data: st.DataObject) -> None:
    plan = data.draw(
        cs.rate_plans(min_size=1, access_prefixes=st.sampled_from([("00",), ("011",)]))
    )
    number = data.draw(cs.dialled_numbers(plan=plan, formatted=True))
    digits = plan.normalise(number)
    assert any(digits.startswith(r.prefix) for r in plan)


@given(cs.rates(with_windows=True))
def test_rates_are_valid_and_windows_ordered(rate: Rate) -> None:
    assert isinstance(rate, Rate)
    if rate.valid_from is not None and rate.valid_until is not None:
        assert rate.valid_from < rate.valid_until
    if rate.maximum_charge_micros is not None:
        assert rate.maximum_charge_micros >= rate.minimum_charge_micros


@given(
    cs.rates(
        prefixes=["44", "4420"],
        directions="inbound",
        statuses=[RateStatus.ACTIVE],
        priorities=st.just(7),
        increments=(30, 6),
        per_minute_micros=1_000,
        with_tiers=False,
        with_fees=False,
        with_grace=False,
    )
)
def test_rates_options_are_applied(rate: Rate) -> None:
    assert rate.prefix in {"44", "4420"}
    assert rate.direction is Direction.INBOUND
    assert rate.status is RateStatus.ACTIVE
    assert (rate.priority, rate.increment, rate.per_minute_micros) == (7, "30/6", 1_000)
    assert rate.tiers == ()
    assert (rate.connection_fee_micros, rate.minimum_charge_micros, rate.grace_seconds) == (0, 0, 0)
    assert rate.maximum_charge_micros is None
    assert (rate.valid_from, rate.valid_until) == (None, None)


@given(cs.tiers(min_size=1))
def test_tiers_are_strictly_increasing(tiers: tuple[Tier, ...]) -> None:
    afters = [t.after_seconds for t in tiers]
    assert afters == sorted(set(afters))
    Rate("1", 0, tiers=tiers)  # accepted by the constructor


# Many rates on one prefix with one priority: every plan would be ambiguous without the
# strategy's repair.
CROWDED = cs.rates(
    prefixes=["1", "12"], directions="outbound", statuses="active", priorities=0, with_windows=True
)


@given(
    cs.rate_plans(
        rates=CROWDED,
        min_size=2,
        max_size=8,
        currency="USD",
        rounding="half_even",
        quantum_micros=100,
        name="crowded",
    )
)
def test_rate_plans_are_never_ambiguous(plan: RatePlan) -> None:
    # The plan was built, so RatePlan found no ambiguity; rebuilding it must agree.
    assert RatePlan(plan.rates, currency="USD") is not None
    assert 2 <= len(plan) <= 8
    assert (plan.currency, plan.rounding.value, plan.quantum_micros, plan.name) == (
        "USD",
        "half_even",
        100,
        "crowded",
    )


def _check_cdr_invariants(cdr: CDR) -> None:
    assert cdr.started_at.utcoffset() is not None
    assert 0 <= cdr.billsec <= cdr.duration
    if cdr.answered_at is not None:
        assert cdr.started_at <= cdr.answered_at
    if cdr.ended_at is not None:
        assert (cdr.answered_at or cdr.started_at) <= cdr.ended_at
        assert cdr.duration == ceil_seconds(cdr.ended_at, cdr.started_at)
    if cdr.answered_at is not None and cdr.ended_at is not None:
        assert cdr.billsec == ceil_seconds(cdr.ended_at, cdr.answered_at)


@given(cs.cdrs(with_details=True))
def test_cdrs_keep_the_invariants(cdr: CDR) -> None:
    _check_cdr_invariants(cdr)
    if cdr.disposition is not Disposition.ANSWERED:
        assert cdr.billsec == 0
        assert cdr.answered_at is None


@given(
    cs.cdrs(
        allow_unanswered_billsec=True,
        billsec=st.integers(1, 100),
        dispositions=["BUSY", "no answer"],
        with_timestamps=False,
    )
)
def test_cdrs_with_messy_unanswered_billsec(cdr: CDR) -> None:
    _check_cdr_invariants(cdr)
    assert cdr.disposition in {Disposition.BUSY, Disposition.NO_ANSWER}
    assert cdr.billsec >= 1


@given(
    cs.cdrs(
        numbers=st.just("441234"),
        directions=Direction.INBOUND,
        dispositions="answered",
        billsec=42,
        tenants=["a", "b"],
        with_timestamps=False,
        timestamps=st.just(datetime(2025, 6, 1, tzinfo=UTC)),
    )
)
def test_cdrs_options_are_applied(cdr: CDR) -> None:
    assert (cdr.destination_number, cdr.direction, cdr.disposition, cdr.billsec) == (
        "441234",
        Direction.INBOUND,
        Disposition.ANSWERED,
        42,
    )
    assert cdr.tenant in {"a", "b"}
    assert cdr.answered_at is None and cdr.ended_at is None
    assert cdr.started_at == datetime(2025, 6, 1, tzinfo=UTC)


@given(
    cs.timestamps(
        min_value=datetime(2025, 1, 1, tzinfo=UTC), max_value=datetime(2025, 1, 2, tzinfo=UTC)
    )
)
def test_timestamps_are_aware_and_in_range(when: datetime) -> None:
    assert when.utcoffset() is not None
    assert datetime(2025, 1, 1, tzinfo=UTC) <= when <= datetime(2025, 1, 2, tzinfo=UTC)


# -- st.from_type through the entry point ---------------------------------------------------


@given(st.from_type(CDR), st.from_type(Rate), st.from_type(RatePlan), st.from_type(Tier))
def test_from_type_uses_the_registered_strategies(
    cdr: CDR, rate: Rate, plan: RatePlan, tier: tuple[Tier, ...]
) -> None:
    assert isinstance(cdr, CDR)
    assert isinstance(rate, Rate)
    assert isinstance(plan, RatePlan)
    assert isinstance(tier, tuple)


def test_from_type_works_in_a_fresh_interpreter() -> None:
    # Nothing from cdrrating.testing is imported first: only the entry point can make
    # from_type(CDR) produce valid CDRs (attrs inference would fail on the validators).
    code = (
        "from hypothesis import strategies as st, given, settings\n"
        "import sys\n"
        "from cdrrating import CDR\n"
        "seen = []\n"
        "@settings(max_examples=20, database=None)\n"
        "@given(st.from_type(CDR))\n"
        "def t(c): seen.append(c)\n"
        "t()\n"
        "assert len(seen) > 1 and all(isinstance(c, CDR) for c in seen)\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_testing_package_is_import_light() -> None:
    code = "import sys, cdrrating.testing; print('hypothesis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- impossible options ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: cs.micros(min_value=5, max_value=4),
        lambda: cs.micros(min_value=1.5),  # type: ignore[arg-type]
        lambda: cs.prefixes(min_size=3, max_size=2),
        lambda: cs.prefixes(max_size=51),
        lambda: cs.prefixes(digits="1a"),
        lambda: cs.dialled_numbers(prefixes=["44"], plan=RatePlan([], currency="EUR")),
        lambda: cs.dialled_numbers(prefixes=["123456"], max_size=4),
        lambda: cs.dialled_numbers(prefixes="44"),
        lambda: cs.dialled_numbers(prefixes=["4x"]),
        lambda: cs.dialled_numbers(min_size=0),
        lambda: cs.dialled_numbers(access_prefixes=["+"]),
        lambda: cs.rates(prefixes=[]),
        lambda: cs.rates(prefixes=["+44"]),
        lambda: cs.rates(directions="sideways"),
        lambda: cs.rates(increments=(1, 0)),
        lambda: cs.rates(per_minute_micros=-1),
        lambda: cs.rates(timestamps=cs.timestamps()),  # windows are off
        lambda: cs.rates(with_tiers="yes"),  # type: ignore[arg-type]
        lambda: cs.tiers(min_size=2, max_size=1),
        lambda: cs.rate_plans(rates=[Rate("1", 0)]),  # type: ignore[arg-type]
        lambda: cs.rate_plans(min_size=3, max_size=2),
        lambda: cs.rate_plans(currency="euro"),
        lambda: cs.rate_plans(quantum_micros=0),
        lambda: cs.rate_plans(rounding="sideways"),
        lambda: cs.rate_plans(access_prefixes="00"),
        lambda: cs.cdrs(numbers="441234"),  # type: ignore[arg-type]
        lambda: cs.cdrs(billsec=-1),
        lambda: cs.cdrs(dispositions=["ANSWERED", "HUNG"]),
        lambda: cs.cdrs(tenants=[" "]),
        lambda: cs.timestamps(min_value=datetime(2025, 1, 1)),  # naive
        lambda: cs.timestamps(
            min_value=datetime(2025, 1, 2, tzinfo=UTC), max_value=datetime(2025, 1, 1, tzinfo=UTC)
        ),
    ],
)
def test_impossible_options_raise_invalid_argument(build: object) -> None:
    with pytest.raises(InvalidArgument):
        build()  # type: ignore[operator]


@pytest.mark.parametrize(
    "strategy",
    [
        # Only a drawn value can show these: the options themselves are well-formed.
        cs.dialled_numbers(prefixes=st.just("1234567"), max_size=5),
        cs.cdrs(timestamps=st.just(datetime(2025, 1, 1) + timedelta(0))),  # naive
        cs.cdrs(billsec=st.just(-3)),
    ],
)
def test_impossible_draws_raise_invalid_argument(strategy: st.SearchStrategy[object]) -> None:
    @given(strategy)
    def draw_one(_value: object) -> None:
        raise AssertionError("unreachable: the draw must fail")

    with pytest.raises(InvalidArgument):
        draw_one()
