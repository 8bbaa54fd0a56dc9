"""What a notebook shows: cheap reprs and escaped, row-limited HTML."""

from __future__ import annotations

from cdrrating import Rate, RatePlan, Rater, rate

from .conftest import make_cdr

EVIL = "<script>alert('x')</script>"


def test_plan_html_is_escaped_and_row_limited() -> None:
    rates = [Rate(str(1000 + i), i, destination=EVIL) for i in range(50)]
    plan = RatePlan(rates, currency="EUR", name=EVIL)
    html = plan._repr_html_()
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert html.count("<tr>") == 1 + 20  # header + the first 20 rates
    assert "20 of 50 rows shown" in html
    assert len(repr(plan)) < 200


def test_batch_and_charge_html() -> None:
    plan = RatePlan([Rate("44", 1_000_000, destination=EVIL)], currency="EUR")
    result = Rater(default=plan).rate_many(
        [
            make_cdr(60, call_id=EVIL),
            {"call_id": "bad", "started_at": EVIL, "destination_number": "1"},
        ]
    )
    html = result._repr_html_()
    assert "<script>" not in html
    assert "rejected records" in html and "started_at" in html
    assert "1.00 EUR" in html
    charge = rate(make_cdr(60, call_id=EVIL), plan)
    assert "<script>" not in charge._repr_html_()
    assert charge._repr_html_().startswith("<pre>")
