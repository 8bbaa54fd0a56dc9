"""cdrrating.pydantic's API shapes: converters to and from the library's types, and
refusals that are the library's own, named at the field a client sent."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

if os.environ.get("CI") != "true":
    pytest.importorskip("pydantic", reason="cdrrating.pydantic needs pydantic 2")

import pydantic

from cdrrating import CDR, ChargeStatus, Rate, Reason, Rounding, ValidationError
from cdrrating.cdr import MAX_NUMBER_LEN
from cdrrating.plancache import PlanSettings
from cdrrating.pydantic import (
    CallBody,
    CDRCreate,
    CDROut,
    CDRPatch,
    ExportListing,
    Listing,
    Page,
    PlanIn,
    RateIn,
    RateOut,
    RatePatch,
    SessionListing,
)
from cdrrating.rates import MAX_DESTINATION_LEN, MAX_PREFIX_LEN
from cdrrating.repository import Page as RepositoryPage
from cdrrating.repository import StoredCDR, StoredRate
from cdrrating.testing.strategies import cdrs, micros, rates

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
CALL_FIELDS = (
    "call_id",
    "started_at",
    "destination_number",
    "caller_number",
    "direction",
    "disposition",
    "answered_at",
    "ended_at",
    "billsec",
    "duration",
)


def refusal(model: type[pydantic.BaseModel], data: dict[str, Any]) -> list[tuple[Any, str, str]]:
    with pytest.raises(pydantic.ValidationError) as caught:
        model.model_validate(data)
    return [(e["loc"], e["type"], e["msg"]) for e in caught.value.errors()]


def call(**kw: Any) -> dict[str, Any]:
    return {"started_at": T0, "destination_number": "442079460000", "billsec": 61} | kw


# -- round trips: model -> library type -> model ---------------------------------------------


@given(cdrs(with_details=True))
def test_a_call_body_round_trips_through_its_cdr(cdr: CDR) -> None:
    body = CDRCreate.from_cdr(cdr)
    back = body.to_cdr(tenant=cdr.tenant)
    assert CDRCreate.from_cdr(back) == body
    assert {f: getattr(back, f) for f in CALL_FIELDS} == {f: getattr(cdr, f) for f in CALL_FIELDS}
    assert back.tenant == cdr.tenant
    assert back.cost_micros is None  # a body is a call, not a price
    # ... and through JSON, as a client sends it
    assert CDRCreate.model_validate_json(body.model_dump_json()) == body


@given(cdrs())
def test_a_body_without_its_id_takes_the_path_id(cdr: CDR) -> None:
    body = CallBody.from_cdr(cdr)
    assert "call_id" not in CallBody.model_fields
    back = body.to_cdr(cdr.call_id, tenant="acme")
    assert (back.call_id, back.tenant) == (cdr.call_id, "acme")
    assert CallBody.from_cdr(back) == body


@given(cdrs(), st.sampled_from(list(ChargeStatus)), micros(max_value=10**9))
def test_a_stored_call_is_shown_with_its_exact_cost(
    cdr: CDR, status: ChargeStatus, cost: int
) -> None:
    priced = attrs.evolve(cdr, cost_micros=cost, currency="EUR")
    stored = StoredCDR(
        cdr=priced, status=status, reason=Reason.NO_RATE, created_at=T0, updated_at=T0
    )
    out = CDROut.from_stored(stored)
    assert out.cost is not None
    assert int(out.cost * 1_000_000) == cost
    assert (out.status, out.reason, out.currency) == (status.value, "NO_RATE", "EUR")
    assert CDRCreate.model_validate(out.model_dump(include=set(CALL_FIELDS))).to_cdr() == cdr
    assert isinstance(out.model_dump(mode="json")["cost"], str)
    unrated = CDROut.from_stored(StoredCDR(cdr=cdr, created_at=T0, updated_at=T0))
    assert (unrated.cost, unrated.status) == (None, None)


def api_rates() -> st.SearchStrategy[Rate]:
    """Rates the API can say: one increment, no tiers, fees, grace or windows."""
    return rates(
        increments=st.integers(1, 3600).map(lambda n: (n, n)),
        with_tiers=False,
        with_fees=False,
        with_grace=False,
    )


@given(api_rates())
def test_a_rate_body_round_trips_through_its_rate(rate: Rate) -> None:
    body = RateIn.from_rate(rate)
    back = body.to_rate(tenant=rate.tenant, id=rate.id)
    assert RateIn.from_rate(back) == body
    fields = ("prefix", "destination", "per_minute_micros", "initial_seconds", "increment_seconds")
    assert {f: getattr(back, f) for f in fields} == {f: getattr(rate, f) for f in fields}
    assert (back.status, back.tenant, back.id) == (rate.status, rate.tenant, rate.id)
    assert RateIn.model_validate_json(body.model_dump_json()) == body
    stored = StoredRate(rate=attrs.evolve(back, id="r1"), created_at=T0, updated_at=T0)
    out = RateOut.from_stored(stored)
    assert (out.id, out.cost_per_minute) == ("r1", body.cost_per_minute)
    assert RateIn.model_validate(out.model_dump(exclude={"id", "created_at", "updated_at"})) == body


@given(api_rates(), api_rates())
def test_a_rate_patch_changes_the_fields_sent(rate: Rate, other: Rate) -> None:
    sent = RateIn.from_rate(other).model_dump(include={"cost_per_minute", "billing_increment"})
    patch = RatePatch.model_validate(sent)
    patched = attrs.evolve(rate, **patch.changes())
    assert RateIn.from_rate(patched) == RateIn.from_rate(rate).model_copy(update=sent)


def test_a_rate_without_an_increment_keeps_rates_default() -> None:
    assert RateIn(prefix="44", cost_per_minute=Decimal(1)).to_rate().increment_seconds == (
        Rate(prefix="44", per_minute_micros=0).increment_seconds
    )


def test_a_cdr_patch_changes_the_fields_sent() -> None:
    cdr = CDRCreate.model_validate(call(call_id="c", duration=70)).to_cdr()
    patched = CDRPatch(disposition="BUSY", billsec=0).apply(attrs.evolve(cdr, cost_micros=5))
    assert (patched.disposition.value, patched.billsec, patched.duration) == ("BUSY", 0, 70)
    assert (patched.cost_micros, patched.currency) == (None, None)  # to be priced again
    assert CDRPatch().apply(cdr) == cdr


@pytest.mark.parametrize("rounding", list(Rounding))
def test_plan_settings_round_trip(rounding: Rounding) -> None:
    settings = PlanSettings(currency="USD", rounding=rounding, timezone="Europe/Berlin")
    body = PlanIn.from_settings(settings)
    assert body.to_settings() == settings
    assert PlanIn.from_settings(body.to_settings()) == body


def test_listings_become_repository_queries() -> None:
    query = Listing(search="uk", since="2026-03-01T00:00Z", limit=5).to_query("acme")
    assert (query.tenant, query.search, query.limit) == ("acme", "uk", 5)
    assert query.since == datetime(2026, 3, 1, tzinfo=UTC)
    assert ExportListing(format="json").to_query().limit == Listing().limit
    args = SessionListing(filter='{"kwh": {"$gt": 1.5}}', order="desc").query_arguments()
    assert (args["filter"], args["order"]) == ({"kwh": {"$gt": 1.5}}, "desc")
    with pytest.raises(ValidationError, match="filter"):
        SessionListing(filter="{not json").query_arguments()


def test_a_page_converts_each_item() -> None:
    stored = [
        StoredRate(
            rate=Rate(prefix=str(i), per_minute_micros=i, id=f"r{i}"), created_at=T0, updated_at=T0
        )
        for i in range(3)
    ]
    page = Page[RateOut].of(RepositoryPage(tuple(stored), next_cursor="n"), RateOut.from_stored)
    assert [r.id for r in page.items] == ["r0", "r1", "r2"]
    assert page.next_cursor == "n"


# -- refusals: the library's, at the field the client sent -----------------------------------


@pytest.mark.parametrize(
    ("model", "data", "field", "words"),
    [
        (CDRCreate, call(call_id=""), "call_id", "non-empty"),
        (CDRCreate, call(call_id="x" * 256), "call_id", "255"),
        (CallBody, call(destination_number="4" * 51), "destination_number", "50"),
        (CallBody, call(caller_number="1" * 51), "caller_number", "50"),
        (CallBody, call(direction="sideways"), "direction", "outbound"),
        (CallBody, call(disposition="MAYBE"), "disposition", "ANSWERED"),
        (CallBody, call(billsec=-1), "billsec", ">= 0"),
        (CallBody, call(billsec=80, duration=70), "billsec", "duration"),
        (CallBody, call(started_at=datetime(2026, 3, 2)), "started_at", "aware"),
        (CallBody, call(answered_at=T0 - timedelta(1)), "answered_at", "started_at"),
        (CDRPatch, {"billsec": -1}, "billsec", ">= 0"),
        (CDRPatch, {"destination_number": "4" * 51}, "destination_number", "50"),
        (CDRPatch, {"destination_number": None}, "destination_number", "str"),
        (RateIn, {"prefix": "4a", "cost_per_minute": 1}, "prefix", "digits"),
        (RateIn, {"prefix": "4" * 51, "cost_per_minute": 1}, "prefix", "50"),
        (
            RateIn,
            {"prefix": "4", "cost_per_minute": 1, "destination": "x" * 256},
            "destination",
            "255",
        ),
        (
            RateIn,
            {"prefix": "4", "cost_per_minute": 1, "billing_increment": 0},
            "billing_increment",
            ">= 1",
        ),
        (RateIn, {"prefix": "4", "cost_per_minute": 1, "status": "paused"}, "status", "active"),
        (RateIn, {"prefix": "4", "cost_per_minute": "-0.01"}, "cost_per_minute", ">= 0"),
        (RateIn, {"prefix": "4", "cost_per_minute": "0.0000001"}, "cost_per_minute", "6"),
        (RatePatch, {"billing_increment": 0}, "billing_increment", ">= 1"),
        (RatePatch, {"prefix": "+44"}, "prefix", "digits"),
        (RatePatch, {"cost_per_minute": None}, "cost_per_minute", "int"),
        (PlanIn, {"currency": "usd"}, "currency", "ISO 4217"),
        (PlanIn, {"currency": "USD", "timezone": "Mars/Base"}, "timezone", "Mars/Base"),
        (PlanIn, {"currency": "USD", "rounding": "sideways"}, "rounding", "up"),
        (Listing, {"limit": 0}, "limit", "limit"),
        (Listing, {"since": "yesterday"}, "since", "yesterday"),
    ],
)
def test_bad_values_are_refused_naming_the_field(
    model: type[pydantic.BaseModel], data: dict[str, Any], field: str, words: str
) -> None:
    errors = refusal(model, data)
    assert len(errors) == 1, errors
    loc, _kind, message = errors[0]
    assert loc == (field,)
    assert words in message


def test_a_library_refusal_is_a_value_error_with_the_librarys_message() -> None:
    [(loc, kind, message)] = refusal(RateIn, {"prefix": "44x", "cost_per_minute": 1})
    with pytest.raises(ValidationError) as library:
        Rate(prefix="44x", per_minute_micros=0)
    assert (loc, kind, message) == (("prefix",), "value_error", str(library.value))


def test_unknown_fields_are_refused() -> None:
    assert refusal(RateIn, {"prefix": "4", "cost_per_minute": 1, "colour": "red"})[0][0] == (
        "colour",
    )


@given(st.text(st.characters(codec="utf-8"), max_size=2 * MAX_NUMBER_LEN))
def test_a_number_is_accepted_exactly_when_cdr_accepts_it(number: str) -> None:
    try:
        CDR(call_id="c", started_at=T0, destination_number=number)
    except ValidationError as error:
        library: str | None = str(error)
    else:
        library = None
    if library is None:
        body = CallBody.model_validate(call(destination_number=number))
        assert body.destination_number == number
    else:
        [(loc, _, message)] = refusal(CallBody, call(destination_number=number))
        assert (loc, message) == (("destination_number",), library)


@given(st.text(alphabet="0123456789", max_size=2 * MAX_PREFIX_LEN))
def test_a_prefix_is_accepted_up_to_the_librarys_length(prefix: str) -> None:
    body = {"prefix": prefix, "cost_per_minute": "0.01"}
    if len(prefix) <= MAX_PREFIX_LEN:
        assert RateIn.model_validate(body).to_rate().prefix == prefix
    else:
        assert refusal(RateIn, body)[0][0] == ("prefix",)


def test_the_schema_shows_the_librarys_limits() -> None:
    rate = RateIn.model_json_schema()["properties"]
    assert rate["prefix"]["maxLength"] == MAX_PREFIX_LEN
    assert rate["destination"]["maxLength"] == MAX_DESTINATION_LEN
    assert rate["billing_increment"]["minimum"] == 1
    assert rate["status"]["enum"] == ["active", "inactive"]
    call_ = CallBody.model_json_schema()["properties"]
    assert call_["destination_number"]["maxLength"] == MAX_NUMBER_LEN
    assert call_["billsec"]["anyOf"][0]["minimum"] == 0
