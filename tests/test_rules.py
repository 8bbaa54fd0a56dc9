"""rating-rules.md: every worked example (E1–E14) and every rule, with exact figures."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cdrrating import (
    CDR,
    ChargeStatus,
    Disposition,
    PlanError,
    Rate,
    RatePlan,
    Rater,
    Reason,
    Rounding,
    Tier,
    rate,
)

from .conftest import T0, make_cdr, one_rate_plan


def cost_of(r: Rate, billsec: int, **cdr_kw: object) -> tuple[int, int | None]:
    charge = rate(make_cdr(billsec, prefix_number(r), **cdr_kw), one_rate_plan(r))
    return charge.billed_seconds, charge.cost_micros


def prefix_number(r: Rate) -> str:
    return (r.prefix + "0000000000")[:12]


# -- the worked examples, exactly as the table states them ------------------------------------


def test_e1_sixty_sixty_rounds_up_to_two_minutes() -> None:
    assert cost_of(Rate("44", 1_000_000, initial_seconds=60, increment_seconds=60), 61) == (
        120,
        2_000_000,
    )


def test_e2_per_second_ceiling_of_fraction() -> None:
    assert cost_of(Rate("44", 1_000_000), 61) == (61, 1_016_667)


@pytest.mark.parametrize(
    ("billsec", "billed", "cost"), [(32, 36, 3_600), (57, 60, 6_000), (75, 78, 7_800)]
)
def test_e3_thirty_six(billsec: int, billed: int, cost: int) -> None:
    r = Rate("44", 6_000, initial_seconds=30, increment_seconds=6)
    assert cost_of(r, billsec) == (billed, cost)


def test_e4_increments_counted_after_the_initial_block() -> None:
    assert cost_of(Rate("44", 60_000, initial_seconds=30, increment_seconds=7), 32) == (37, 37_000)


def test_e5_connection_fee_added_once() -> None:
    r = Rate("44", 100_000, connection_fee_micros=150_000)
    assert cost_of(r, 24) == (24, 190_000)


def test_e6_no_answer_costs_nothing_and_no_fee() -> None:
    r = Rate("44", 100_000, connection_fee_micros=100_000)
    charge = rate(make_cdr(0, disposition="NO ANSWER"), one_rate_plan(r))
    assert (charge.status, charge.billed_seconds, charge.cost_micros) == (
        ChargeStatus.UNANSWERED,
        0,
        0,
    )
    assert charge.connection_fee_micros == 0


def test_e7_answered_with_zero_billsec_costs_nothing() -> None:
    r = Rate("44", 100_000, connection_fee_micros=100_000)
    charge = rate(make_cdr(0, disposition="ANSWERED"), one_rate_plan(r))
    assert (charge.status, charge.billed_seconds, charge.cost_micros) == (
        ChargeStatus.UNANSWERED,
        0,
        0,
    )


def test_e8_no_drift_over_many_increments() -> None:
    assert cost_of(Rate("44", 100_000), 180) == (180, 300_000)


def test_e9_tier_after_sixty_seconds() -> None:
    r = Rate("44", 1_000_000, initial_seconds=60, increment_seconds=1, tiers=[Tier(60, 500_000, 1)])
    assert cost_of(r, 90) == (90, 1_250_000)


def test_e10_minimum_charge() -> None:
    r = Rate("44", 10_000, initial_seconds=60, increment_seconds=60, minimum_charge_micros=50_000)
    assert cost_of(r, 10) == (60, 50_000)


def test_e11_maximum_charge() -> None:
    r = Rate("44", 1_000_000, maximum_charge_micros=10_000_000)
    assert cost_of(r, 3_600) == (3_600, 10_000_000)


@pytest.mark.parametrize(("billsec", "billed", "cost"), [(5, 0, 0), (6, 6, 100_000)])
def test_e12_grace(billsec: int, billed: int, cost: int) -> None:
    r = Rate("44", 1_000_000, grace_seconds=5, connection_fee_micros=0)
    assert cost_of(r, billsec) == (billed, cost)


def test_e12_grace_waives_the_connection_fee_too() -> None:
    r = Rate("44", 1_000_000, grace_seconds=5, connection_fee_micros=70_000)
    charge = rate(make_cdr(5), one_rate_plan(r))
    assert (charge.status, charge.cost_micros, charge.connection_fee_micros) == (
        ChargeStatus.RATED,
        0,
        0,
    )
    assert rate(make_cdr(6), one_rate_plan(r)).cost_micros == 170_000


def test_e13_longest_prefix_wins_after_normalisation() -> None:
    plan = RatePlan(
        [
            Rate("4420", 2_000, initial_seconds=60, increment_seconds=60),
            Rate("44", 1_000, initial_seconds=60, increment_seconds=60),
        ],
        currency="GBP",
    )
    charge = rate(make_cdr(60, "+44 20 7946 0000"), plan)
    assert (charge.billed_seconds, charge.cost_micros, charge.prefix) == (60, 2_000, "4420")
    assert charge.number == "442079460000"


def test_e14_inactive_longer_prefix_does_not_block() -> None:
    plan = RatePlan(
        [
            Rate("4420", 2_000, initial_seconds=60, increment_seconds=60, status="inactive"),
            Rate("44", 1_000, initial_seconds=60, increment_seconds=60),
        ],
        currency="GBP",
    )
    charge = rate(make_cdr(60, "442079460000"), plan)
    assert (charge.billed_seconds, charge.cost_micros, charge.prefix) == (60, 1_000, "44")


# -- §3 increments and tiers ------------------------------------------------------------------


def test_initial_zero_makes_the_first_step_an_increment() -> None:
    r = Rate("44", 60_000, initial_seconds=0, increment_seconds=30)
    assert cost_of(r, 1) == (30, 30_000)
    assert cost_of(r, 31) == (60, 60_000)


def test_call_shorter_than_initial_bills_the_initial_block() -> None:
    assert cost_of(Rate("44", 60_000, initial_seconds=60, increment_seconds=6), 1) == (60, 60_000)


def test_tier_example_from_the_rules_text() -> None:
    # 1/s for the first 30 s in 1 s steps, then 0.5/s in 60 s steps: a 60 s call is 30
    # one-second steps and one 60 s step, 90 s billed.
    r = Rate("44", 60_000_000, tiers=[Tier(30, 30_000_000, 60)])
    billed, cost = cost_of(r, 60)
    assert billed == 90
    assert cost == 30 * 1_000_000 + 60 * 500_000


def test_step_started_before_a_tier_completes_at_its_own_length() -> None:
    # 60/60 with a tier after 90 s: the step at 60 runs to 120 at the base price.
    r = Rate("44", 60_000, initial_seconds=60, increment_seconds=60, tiers=[Tier(90, 6_000, 1)])
    assert cost_of(r, 100) == (120, 120_000)
    # At 121 s the step starting at 120 (>= 90) uses the tier: 1 s at 6,000/min.
    assert cost_of(r, 121) == (121, 120_000 + 100)


def test_step_can_jump_over_a_whole_tier() -> None:
    r = Rate(
        "44",
        60_000,
        initial_seconds=100,
        increment_seconds=1,
        tiers=[Tier(30, 1, 1), Tier(60, 120_000, 1)],
    )
    # The initial 100 s step covers both tiers' starts; the next step (at 100) uses the
    # last tier with after <= 100, i.e. the one from 60 s.
    assert cost_of(r, 101) == (101, 100_000 + 2_000)


# -- §4 price: one exact sum, one rounding --------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (Rounding.UP, 1_016_700),
        (Rounding.DOWN, 1_016_600),
        (Rounding.HALF_UP, 1_016_700),
        (Rounding.HALF_EVEN, 1_016_700),
    ],
)
def test_rounding_modes_to_four_decimals(mode: Rounding, expected: int) -> None:
    r = Rate("44", 1_000_000)
    plan = RatePlan([r], currency="EUR", rounding=mode, quantum_micros=100)
    assert rate(make_cdr(61), plan).cost_micros == expected  # exact 1,016,666.67


def test_half_modes_differ_on_an_exact_tie() -> None:
    # 3 s at 10,000/min = 500 micros exactly: a tie at quantum 1,000.
    r = Rate("44", 10_000)
    costs = {
        mode: rate(
            make_cdr(3), RatePlan([r], currency="EUR", rounding=mode, quantum_micros=1_000)
        ).cost_micros
        for mode in Rounding
    }
    assert costs == {
        Rounding.UP: 1_000,
        Rounding.DOWN: 0,
        Rounding.HALF_UP: 1_000,
        Rounding.HALF_EVEN: 0,
    }


def test_never_rounded_per_step() -> None:
    # 0.0001/min per-second steps: each step is 1.67 micros; per-step ceiling would bill
    # 2 × 600 = 1,200 micros, the exact sum is 1,000.
    assert cost_of(Rate("44", 100), 600) == (600, 1_000)


def test_rounding_happens_before_minimum_and_maximum() -> None:
    r = Rate("44", 1_000_000, minimum_charge_micros=16_667, maximum_charge_micros=16_667)
    assert cost_of(r, 1) == (1, 16_667)  # exact 16,666.67 → 16,667 → min/max hold


# -- §5 which rate ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dialled",
    [
        "+44 20 7946 0000",
        "0044 20 7946 0000",
        "(44) 20-7946.0000",
        "442079460000",
        "+0044 2079460000",
    ],
)
def test_number_normalisation(dialled: str) -> None:
    plan = one_rate_plan(Rate("4420", 1_000))
    assert rate(make_cdr(60, dialled), plan).number == "442079460000"


def test_only_one_access_prefix_is_stripped() -> None:
    plan = RatePlan([Rate("0044", 1), Rate("44", 2)], currency="EUR")
    assert rate(make_cdr(60, "000044123"), plan).prefix == "0044"


def test_custom_access_prefixes() -> None:
    plan = RatePlan([Rate("44", 1_000_000)], currency="USD", access_prefixes=("011",))
    assert rate(make_cdr(60, "01144123"), plan).prefix == "44"
    assert rate(make_cdr(60, "0044123"), plan).status is ChargeStatus.UNRATED


@pytest.mark.parametrize("dialled", ["anonymous", "*97", "44A123", "", "+", "٤٤١٢٣"])
def test_invalid_numbers_are_unrated_not_free(dialled: str) -> None:
    charge = rate(make_cdr(60, dialled), one_rate_plan(Rate("", 1_000)))
    assert (charge.status, charge.reason, charge.cost_micros) == (
        ChargeStatus.UNRATED,
        Reason.INVALID_NUMBER,
        None,
    )


def test_catch_all_only_when_nothing_longer_matches() -> None:
    plan = RatePlan([Rate("", 9_000), Rate("44", 1_000)], currency="EUR")
    assert rate(make_cdr(60, "4412"), plan).prefix == "44"
    assert rate(make_cdr(60, "3312"), plan).prefix == ""


def test_higher_priority_wins_on_the_same_prefix() -> None:
    plan = RatePlan([Rate("44", 1_000, priority=0), Rate("44", 2_000, priority=5)], currency="EUR")
    assert rate(make_cdr(60), plan).rate == Rate("44", 2_000, priority=5)


def test_validity_window_is_half_open() -> None:
    old = Rate("44", 1_000, valid_until=T0)
    new = Rate("44", 2_000, valid_from=T0)
    plan = RatePlan([old, new], currency="EUR")
    assert rate(make_cdr(60, started_at=T0), plan).rate == new
    assert rate(make_cdr(60, started_at=T0 - timedelta(microseconds=1)), plan).rate == old


def test_expired_longer_prefix_does_not_block_a_shorter_one() -> None:
    plan = RatePlan([Rate("4420", 5, valid_until=T0), Rate("44", 1_000)], currency="EUR")
    assert rate(make_cdr(60), plan).prefix == "44"


def test_rate_of_other_direction_does_not_block() -> None:
    plan = RatePlan([Rate("4420", 5, direction="inbound"), Rate("44", 1_000)], currency="EUR")
    assert rate(make_cdr(60), plan).prefix == "44"


def test_no_candidate_is_unrated_no_rate_with_cost_none() -> None:
    charge = rate(make_cdr(60, "3312"), one_rate_plan(Rate("44", 1_000)))
    assert (charge.status, charge.reason, charge.cost_micros) == (
        ChargeStatus.UNRATED,
        Reason.NO_RATE,
        None,
    )


def test_no_plan_is_unrated_no_plan() -> None:
    charge = rate(make_cdr(60), None)
    assert (charge.status, charge.reason, charge.cost_micros) == (
        ChargeStatus.UNRATED,
        Reason.NO_PLAN,
        None,
    )
    assert Rater().rate(make_cdr(60, tenant="t")).reason is Reason.NO_PLAN


def test_direction_without_rates_is_free_and_says_so() -> None:
    plan = one_rate_plan(Rate("44", 1_000))
    charge = rate(make_cdr(60, "s", direction="inbound"), plan)
    assert (charge.status, charge.cost_micros, charge.reason) == (
        ChargeStatus.DIRECTION_NOT_RATED,
        0,
        None,
    )


def test_direction_with_rates_but_no_match_is_unrated() -> None:
    plan = RatePlan([Rate("44", 1_000), Rate("800", 1, direction="inbound")], currency="EUR")
    charge = rate(make_cdr(60, "3312", direction="inbound"), plan)
    assert (charge.status, charge.reason, charge.cost_micros) == (
        ChargeStatus.UNRATED,
        Reason.NO_RATE,
        None,
    )


def test_fallback_chain_and_which_plan_rated() -> None:
    account = RatePlan([Rate("4420", 1_500)], currency="EUR", name="account")
    reseller = RatePlan([Rate("44", 2_000)], currency="EUR", name="reseller")
    system = RatePlan([Rate("", 9_000)], currency="EUR", name="system")
    rater = Rater({"acme": [account, reseller]}, default=system)
    assert rater.rate(make_cdr(60, "442079460000", tenant="acme")).plan is account
    london_less = rater.rate(make_cdr(60, "441619460000", tenant="acme"))
    assert (london_less.plan, london_less.cost_micros) == (reseller, 2_000)
    assert london_less.plans_tried == (account,)
    elsewhere = rater.rate(make_cdr(60, "3312", tenant="acme"))
    assert (elsewhere.plan, elsewhere.plans_tried) == (system, (account, reseller))
    assert rater.rate(make_cdr(60, "3312", tenant="unknown")).plan is system
    assert "fell back" in elsewhere.explain()


def test_unrated_in_every_plan_of_the_chain() -> None:
    rater = Rater(
        {"acme": RatePlan([Rate("44", 1)], currency="EUR")},
        default=RatePlan([Rate("49", 1)], currency="EUR"),
    )
    charge = rater.rate(make_cdr(60, "3312", tenant="acme"))
    assert (charge.status, charge.reason, charge.cost_micros) == (
        ChargeStatus.UNRATED,
        Reason.NO_RATE,
        None,
    )


def test_ambiguous_plan_names_both_rates() -> None:
    with pytest.raises(Exception, match=r"id 'a'.*id 'b'") as info:
        RatePlan([Rate("44", 1, id="a"), Rate("44", 2, id="b")], currency="EUR")
    assert isinstance(info.value, PlanError)
    assert isinstance(info.value, ValueError)


def test_overlapping_windows_at_equal_priority_are_ambiguous() -> None:
    with pytest.raises(PlanError):
        RatePlan(
            [Rate("44", 1, valid_until=T0 + timedelta(days=2)), Rate("44", 2, valid_from=T0)],
            currency="EUR",
        )
    # Touching windows ([a, b) and [b, c)) and inactive duplicates are fine.
    RatePlan([Rate("44", 1, valid_until=T0), Rate("44", 2, valid_from=T0)], currency="EUR")
    RatePlan([Rate("44", 1), Rate("44", 2, status="inactive")], currency="EUR")
    RatePlan([Rate("44", 1), Rate("44", 2, direction="inbound")], currency="EUR")


# -- §2 what is billed ------------------------------------------------------------------------


@pytest.mark.parametrize("disposition", [d for d in Disposition if d is not Disposition.ANSWERED])
def test_every_unanswered_disposition_is_free(disposition: Disposition) -> None:
    r = Rate("44", 1_000_000, connection_fee_micros=100_000, minimum_charge_micros=5)
    # billsec > 0 with a non-answered disposition (Asterisk does report this): still free.
    charge = rate(make_cdr(60, disposition=disposition), one_rate_plan(r))
    assert (charge.status, charge.cost_micros, charge.connection_fee_micros) == (
        ChargeStatus.UNANSWERED,
        0,
        0,
    )


def test_billsec_derived_from_timestamps_rounds_up() -> None:
    cdr = CDR.from_mapping(
        {
            "call_id": "x",
            "destination_number": "44",
            "start": "2026-03-02T10:00:00Z",
            "answer": "2026-03-02T10:00:05Z",
            "end": "2026-03-02T10:01:05.200Z",
        }
    )
    assert cdr.billsec == 61
    assert cdr.duration == 66


def test_charges_carry_the_plan_currency() -> None:
    charge = rate(make_cdr(60), RatePlan([Rate("44", 1)], currency="JPY"))
    assert charge.currency == "JPY"
    assert make_cdr(60).with_charge(charge).currency == "JPY"
