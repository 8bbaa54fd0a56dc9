"""Rate deck and rate notice readers."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cdrrating import RateStatus, Tier
from cdrrating.formats import FormatError, RateCsvReader, RateNoticeReader, expand_codes, read_rates

FIXTURES = Path(__file__).parent / "fixtures" / "formats"


def _key(rate):  # type: ignore[no-untyped-def]
    return (
        rate.prefix,
        rate.per_minute_micros,
        rate.initial_seconds,
        rate.increment_seconds,
        rate.valid_from,
        rate.status,
        rate.tiers,
        rate.connection_fee_micros,
    )


def test_notice_matches_its_normalised_form() -> None:
    """The held-out pair: the messy notice and the vendor tool's normalised CSV agree on
    every prefix, price, increment, date and status."""
    notice = RateNoticeReader(FIXTURES / "acme_rate_notice.csv")
    normalised = RateCsvReader(FIXTURES / "acme_rate_notice_tcxc.csv")
    a, b = list(notice), list(normalised)
    assert notice.rejects == normalised.rejects == []
    assert len(a) == len(b) == 25
    assert sorted(map(_key, a)) == sorted(map(_key, b))


def test_notice_details() -> None:
    reader = RateNoticeReader(FIXTURES / "acme_rate_notice.csv")
    rates = {r.prefix: r for r in reader}
    assert reader.currency == "USD"
    assert reader.metadata["issue_date"] == "16/09/2026"
    assert reader.notes == [
        "Rates are subject to change without notice. All prices in USD per minute, excluding taxes."
    ]
    assert {"49172", "49173", "49174"} <= set(rates)
    assert {f"4474{n:02d}" for n in range(10)} <= set(rates)
    assert rates["33607"].source_prefix == "336 07, 336 08"
    assert rates["521"].valid_from == datetime(2026, 10, 1, tzinfo=UTC)  # New: dated
    assert rates["49152"].valid_from == datetime(2026, 9, 23, tzinfo=UTC)  # Increase: dated
    assert rates["49152"].increment == "60/1"
    assert rates["49152"].per_minute_micros == 49_500
    assert rates["49152"].destination == "Germany - Mobile - Vodafone"
    assert rates["49"].valid_from is None  # Unchanged: in force now
    assert rates["33607"].valid_from is None  # Decrease: applies at once
    closed = rates["234805"]
    assert closed.status is RateStatus.INACTIVE
    assert closed.valid_from == datetime(2026, 9, 20, tzinfo=UTC)
    assert reader.summary.rows == 8 and reader.summary.records == 25


def test_notice_unknown_change_code_is_rejected() -> None:
    text = "Country,Dial Codes,Rate,Effective,Billing,Change\nX,49,0.01,01/01/2026,60/60,Maybe\n"
    reader = RateNoticeReader(io.StringIO(text))
    assert list(reader) == []
    assert reader.rejects[0].line == 2
    assert reader.rejects[0].field == "change"


@pytest.mark.parametrize(
    ("cell", "codes"),
    [
        ("49152, 49162, 49172-49174", ["49152", "49162", "49172", "49173", "49174"]),
        ("234803; 234806; 234703", ["234803", "234806", "234703"]),
        ("336 07, 336 08", ["33607", "33608"]),
        ("+521", ["521"]),
        ("49152 49162", ["49152", "49162"]),
        ("44 20", ["4420"]),
        ("1-876", ["1876"]),
        ("0099-0101", ["0099", "0100", "0101"]),
    ],
)
def test_expand_codes(cell: str, codes: list[str]) -> None:
    assert expand_codes(cell) == codes


@pytest.mark.parametrize("cell", ["4.9152E+4", "49174-49172", "4917-4", "49a", "1-2-3"])
def test_expand_codes_refuses_what_it_cannot_read_safely(cell: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        expand_codes(cell)


def test_expand_codes_caps_ranges() -> None:
    with pytest.raises(ValueError, match="at most 10"):
        expand_codes("4400-4499", max_range=10)


def test_semicolon_deck_with_decimal_comma_and_day_first_dates() -> None:
    reader = read_rates(FIXTURES / "rates_deck_semicolon.csv", decimal_separator=",", dayfirst=True)
    rates = {r.prefix: r for r in reader}
    assert reader.rejects == []
    london = rates["4420"]
    assert (london.per_minute_micros, london.increment, london.connection_fee_micros) == (
        8_000,
        "30/6",
        15_000,
    )
    assert london.valid_from == datetime(2026, 9, 1, tzinfo=UTC)
    assert rates["1876"].status is RateStatus.INACTIVE  # status "closed"
    assert rates["1876"].source_prefix == "1-876"


def test_per_second_prices_become_per_minute() -> None:
    rates = {r.prefix: r for r in RateCsvReader(FIXTURES / "rates_per_second.csv")}
    assert rates["49"].per_minute_micros == 12_000  # 0.0002/s
    assert rates["4917"].per_minute_micros == 45_000
    assert rates["4917"].increment == "30/6"
    text = "prefix,rate\n44,0.0001\n"
    (r,) = list(RateCsvReader(io.StringIO(text), price_unit="second"))
    assert r.per_minute_micros == 6_000


def test_second_price_becomes_a_tier() -> None:
    text = "Prefix,Price 1,Price N,Interval 1,Interval N\n44,0.10,0.05,60,6\n"
    (r,) = list(RateCsvReader(io.StringIO(text)))
    assert r.per_minute_micros == 100_000
    assert r.tiers == (Tier(60, 50_000, 6),)


def test_mapping_names_unusual_columns() -> None:
    text = "Indicatif,Tarif,Pas\n33,0.02,60/60\n"
    (r,) = list(
        RateCsvReader(
            io.StringIO(text), mapping={"Indicatif": "prefix", "Tarif": "rate", "Pas": "billing"}
        )
    )
    assert (r.prefix, r.per_minute_micros, r.increment) == ("33", 20_000, "60/60")


def test_deck_header_without_price_is_a_clear_error() -> None:
    with pytest.raises(FormatError, match=r"line 1: .*price column.*found prefix, destination"):
        list(RateCsvReader(io.StringIO("prefix,destination\n44,UK\n")))


def test_notice_without_header_in_first_lines_is_a_clear_error() -> None:
    with pytest.raises(FormatError, match="no rate deck header"):
        list(RateNoticeReader(io.StringIO("just,some,text\n" * 60)))


def test_bad_rows_are_rejected_with_their_line() -> None:
    text = "prefix,rate,billing\n44,0.01,60/60\n45,abc,60/60\n46,0.01\n47,0.01,60/0\n48,0.02,1/1\n"
    reader = RateCsvReader(io.StringIO(text))
    assert [r.prefix for r in reader] == ["44", "48"]
    assert [(r.line, r.field) for r in reader.rejects] == [
        (3, "rate"),
        (4, None),
        (5, "billing_increment"),
    ]
    assert "truncated" in reader.rejects[1].reason
