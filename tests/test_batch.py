from __future__ import annotations

import pytest

from cdrrating import (
    CDR,
    ChargeStatus,
    Rate,
    RatePlan,
    Rater,
    Tier,
    ValidationError,
    rate,
    to_micros,
)

from .conftest import make_cdr


def deck(price_44: int = 1_000_000) -> RatePlan:
    return RatePlan(
        [
            Rate("44", price_44, destination="UK"),
            Rate("4420", 2_000_000, destination="London"),
            Rate("800", 1, direction="inbound"),
        ],
        currency="EUR",
    )


def test_rate_many_keeps_order_and_reports_bad_rows() -> None:
    rows: list[object] = [
        make_cdr(60, "442079460000", call_id="a"),
        {
            "call_id": "b",
            "started_at": "2026-03-02T10:00:00Z",
            "destination_number": "4477",
            "billsec": "30",
        },
        {
            "call_id": "c",
            "started_at": "2026-03-02T10:00:00Z",
            "destination_number": "44",
            "billsec": "9",
            "duration": "5",
        },
        make_cdr(0, "4477", call_id="d", disposition="BUSY"),
        "not a record",
        make_cdr(60, "3312", call_id="f"),
        make_cdr(60, "5", call_id="g", direction="internal"),
    ]
    result = Rater(default=deck()).rate_many(rows)  # type: ignore[arg-type]
    assert len(result) == len(rows)
    assert [c.call_id if c else None for c in result.charges] == [
        "a",
        "b",
        None,
        "d",
        None,
        "f",
        "g",
    ]
    assert [(e.position, e.field) for e in result.errors] == [(2, "billsec"), (4, "row")]
    assert "billsec" in result.errors[0].error
    assert result.by_status == {"RATED": 2, "UNANSWERED": 1, "UNRATED": 1, "DIRECTION_NOT_RATED": 1}
    assert result.by_reason == {"NO_RATE": 1}
    assert result.totals == {"EUR": 2_000_000 + 500_000}
    london = result.by_destination[("EUR", "London")]
    assert (london.calls, london.answered, london.billed_seconds, london.cost_micros) == (
        1,
        1,
        60,
        2_000_000,
    )
    uk = result.by_destination[("EUR", "UK")]
    assert (uk.calls, uk.answered, uk.cost_micros) == (2, 1, 500_000)
    assert not result.ok
    assert "7 records" in repr(result)


def test_progress_callback_sees_every_record() -> None:
    seen: list[tuple[int, int | None]] = []
    cdrs = [make_cdr(1, call_id=str(i)) for i in range(2_500)]
    Rater(default=deck()).rate_many(cdrs, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(1_000, 2_500), (2_000, 2_500), (2_500, 2_500)]


def test_progress_false_and_generators() -> None:
    result = Rater(default=deck()).rate_many(
        (make_cdr(1, call_id=str(i)) for i in range(3)), progress=False
    )
    assert len(result) == 3 and result.ok


def test_rerating_shows_what_changed() -> None:
    cdrs = [
        make_cdr(60, "447700900000", call_id="uk"),
        make_cdr(60, "442079460000", call_id="ldn"),
        make_cdr(60, "3312", call_id="fr"),
    ]
    before = Rater(default=deck()).rate_many(cdrs)
    after = Rater(default=deck(price_44=1_200_000)).rate_many(cdrs)
    changes = after.changes(before)
    assert [(c.call_id, c.before_micros, c.after_micros, c.delta_micros) for c in changes] == [
        ("uk", 1_000_000, 1_200_000, 200_000)
    ]
    # The same against costs stored on the CDRs from the first rating:
    stored = before.rated_cdrs()
    assert [c.cost_micros for c in stored] == [1_000_000, 2_000_000, None]
    again = Rater(default=deck(price_44=1_200_000)).rate_many(stored)
    assert [c.call_id for c in again.changes()] == ["uk"]
    with pytest.raises(ValueError, match="same 3 records"):
        after.changes(Rater(default=deck()).rate_many(cdrs[:1]))


def test_explain_names_the_winner_the_losers_and_the_sum() -> None:
    plan = RatePlan(
        [
            Rate("4420", 2_000, initial_seconds=60, increment_seconds=60, destination="London"),
            Rate("44", 1_000, initial_seconds=60, increment_seconds=60),
            Rate("442", 7, status="inactive"),
            Rate("4420", 9, direction="inbound"),
        ],
        currency="GBP",
        name="retail",
    )
    text = rate(make_cdr(61, "+44 20 7946 0000"), plan).explain()
    for needle in [
        "normalised 442079460000",
        "prefix '4420' (London) won",
        "prefix '442' priority 0: status inactive",
        "direction inbound",
        "prefix '44' priority 0: shorter prefix",
        "0-60 s: 1 × 60 s",
        "60-120 s: 1 × 60 s",
        "Billed seconds: 120",
        "Exact sum: 4,000 micros",
        "Rounded once (up, quantum 1)",
        "Cost: 0.004 GBP (4,000 micros)",
        "Plan retail",
    ]:
        assert needle in text, needle


def test_explain_shows_fractions_tiers_min_and_max() -> None:
    r = Rate(
        "1",
        1_000_000,
        initial_seconds=60,
        tiers=[Tier(60, 500_000, 1)],
        maximum_charge_micros=1_100_000,
    )
    text = rate(make_cdr(90, "1555"), RatePlan([r], currency="USD")).explain()
    assert "60-90 s: 30 × 1 s at 0.50 USD/min = 250,000 micros" in text
    assert "Maximum charge applied" in text
    text = rate(
        make_cdr(61, "1555"),
        RatePlan([Rate("1", 1_000_000, minimum_charge_micros=2_000_000)], currency="USD"),
    ).explain()
    assert "Exact sum: 1,016,666 2/3" in text
    assert "Minimum charge applied: 2.00 USD" in text


@pytest.mark.parametrize(
    ("cdr", "needle"),
    [
        (make_cdr(60, "3312"), "UNRATED (NO_RATE)"),
        (make_cdr(60, "anonymous"), "UNRATED (INVALID_NUMBER)"),
        (make_cdr(0, "4420", disposition="BUSY"), "UNANSWERED"),
        (make_cdr(60, "100", direction="internal"), "DIRECTION_NOT_RATED"),
    ],
)
def test_explain_non_rated(cdr: CDR, needle: str) -> None:
    assert needle in rate(cdr, deck()).explain()


def test_explain_grace_and_no_plan() -> None:
    plan = RatePlan([Rate("44", 1, grace_seconds=10)], currency="EUR")
    assert "Grace: billsec 5 <= grace 10 s" in rate(make_cdr(5), plan).explain()
    assert "NO_PLAN" in rate(make_cdr(5), None).explain()


def test_charge_repr_and_with_charge() -> None:
    charge = rate(make_cdr(60, "442079460000"), deck())
    assert repr(charge) == (
        "Charge(call_id='c1', status=RATED, cost=2.00 EUR, billed_seconds=60, prefix='4420')"
    )
    billed = make_cdr(60).with_charge(charge)
    assert (billed.cost_micros, billed.currency) == (2_000_000, "EUR")
    assert charge.status is ChargeStatus.RATED


def test_plivo_billing_matches_our_cost() -> None:
    # Plivo's own fixture: 924 s at 0.0085/min in 60 s increments billed 960 s, 0.136.
    cdr = CDR.from_mapping(
        {
            "call_uuid": "p",
            "initiation_time": "2015-07-26 15:44:49+05:30",
            "to_number": "14153268174",
            "bill_duration": 924,
            "call_duration": 924,
        }
    )
    plan = RatePlan(
        [Rate("1", to_micros("0.0085"), initial_seconds=60, increment_seconds=60)], currency="USD"
    )
    charge = rate(cdr, plan)
    assert (charge.billed_seconds, charge.cost_micros) == (960, to_micros("0.13600"))


def test_rate_refuses_a_list_of_plans() -> None:
    with pytest.raises(ValidationError) as info:
        rate(make_cdr(1), [deck()])  # type: ignore[arg-type]
    assert info.value.field == "plan"
