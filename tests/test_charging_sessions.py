"""Charging sessions read from OCPI 2.2.1 CDRs and from the list-API shape: fields,
validation at the edge, and errors that name the field by its path."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from cdrrating import ValidationError
from cdrrating.charging import (
    CdrDimension,
    ChargingPeriod,
    ChargingSession,
    DimensionType,
    SessionAuth,
    SessionLocation,
)
from cdrrating.tariffs import Tariff, price_session

# The CDR example of the OCPI 2.2.1 CDRs module.
OCPI_CDR = """{
  "country_code": "BE",
  "party_id": "BEC",
  "id": "12345",
  "start_date_time": "2015-06-29T21:39:09Z",
  "end_date_time": "2015-06-29T23:37:32Z",
  "cdr_token": {"uid": "012345678", "type": "RFID", "contract_id": "DE8ACC12E46L89"},
  "auth_method": "WHITELIST",
  "cdr_location": {
    "id": "LOC1", "name": "Gent Zuid", "address": "F.Rooseveltlaan 3A", "city": "Gent",
    "postal_code": "9000", "country": "BEL",
    "coordinates": {"latitude": "3.729944", "longitude": "51.047599"},
    "evse_uid": "3256", "evse_id": "BE*BEC*E041503003", "connector_id": "1",
    "connector_standard": "IEC_62196_T2", "connector_format": "SOCKET",
    "connector_power_type": "AC_1_PHASE"
  },
  "currency": "EUR",
  "tariffs": [{
    "country_code": "BE", "party_id": "BEC", "id": "12", "currency": "EUR",
    "elements": [{"price_components": [
      {"type": "TIME", "price": 2.00, "vat": 10.0, "step_size": 300}]}],
    "last_updated": "2015-02-02T14:15:01Z"
  }],
  "charging_periods": [{
    "start_date_time": "2015-06-29T21:39:09Z",
    "dimensions": [{"type": "TIME", "volume": 1.973}],
    "tariff_id": "12"
  }],
  "total_cost": {"excl_vat": 4.00, "incl_vat": 4.40},
  "total_energy": 15.342,
  "total_time": 1.973,
  "total_time_cost": {"excl_vat": 4.00, "incl_vat": 4.40},
  "last_updated": "2015-06-29T22:01:13Z"
}"""

LIST_SESSION: dict[str, Any] = {
    "id": "7f3c",
    "sessionId": "S-1",
    "operatorId": "op-9",
    "company": {"id": "co-1", "name": "Fleet Ltd"},
    "auth": {"idTag": {"uid": "04A2B3"}, "type": "RFID"},
    "location": {
        "id": "L-77",
        "country": "DEU",
        "isPublic": True,
        "type": "PARKING_GARAGE",
        "timeZone": "Europe/Berlin",
    },
    "isRoaming": False,
    "consumed": 12_345,
    "evseId": "DE*ABC*E1",
    "chargeBoxId": "CB-1",
    "startedAt": "2025-03-01T08:00:00+01:00",
    "endedAt": "2025-03-01T09:30:00+01:00",
    "updatedAt": "2025-03-01T09:31:00+01:00",
    "currency": "EUR",
    "cost": "4.20",
    "vehicle": {"plate": "B-X 1"},
}


def ocpi() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(OCPI_CDR, parse_float=Decimal)
    return data


def test_reads_the_ocpi_cdr_example() -> None:
    s = ChargingSession.from_mapping(ocpi())
    assert s.id == "12345"
    assert s.started_at == datetime(2015, 6, 29, 21, 39, 9, tzinfo=UTC)
    assert s.ended_at == datetime(2015, 6, 29, 23, 37, 32, tzinfo=UTC)
    assert not s.ongoing
    assert s.energy_wh == 15_342
    assert s.charging_seconds == 7_103  # 1.973 h = 7,102.8 s, to the nearest second
    assert s.parking_seconds is None
    assert s.location == SessionLocation(id="LOC1", country="BEL")
    assert s.evse_id == "BE*BEC*E041503003"
    assert s.auth == SessionAuth(uid="012345678", type="RFID", contract_id="DE8ACC12E46L89")
    assert s.operator_id == "BEC"
    assert s.roaming
    assert (s.currency, s.cost_micros, s.cost_incl_vat_micros) == ("EUR", 4_000_000, 4_400_000)
    assert s.tariff_ids == ("12",)
    assert s.charging_periods == (
        ChargingPeriod(
            datetime(2015, 6, 29, 21, 39, 9, tzinfo=UTC),
            (CdrDimension(DimensionType.TIME, Decimal("1.973")),),
            "12",
        ),
    )
    # What has no field is kept as written.
    assert s.extra["auth_method"] == "WHITELIST"
    assert s.extra["cdr_location"]["connector_id"] == "1"
    assert s.extra["total_time_cost"]["incl_vat"] == Decimal("4.40")
    assert s.extra["tariffs"][0]["elements"][0]["price_components"][0]["step_size"] == 300


def test_the_cdr_example_is_priced_as_it_reports() -> None:
    # The CDR carries its tariff: 1.973 h of charging at 2.00/h in 5-minute steps is
    # billed as 2 hours: 4.00 excl. VAT, 4.40 incl., the total_cost the CDR reports.
    s = ChargingSession.from_mapping(ocpi())
    tariff = Tariff.from_mapping(s.extra["tariffs"][0])
    charge = price_session(s, tariff)
    assert (charge.cost_micros, charge.cost_incl_vat_micros) == (
        s.cost_micros,
        s.cost_incl_vat_micros,
    )


def test_reads_the_list_shape() -> None:
    s = ChargingSession.from_mapping(LIST_SESSION)
    berlin = timezone(timedelta(hours=1))
    assert s.started_at == datetime(2025, 3, 1, 8, tzinfo=berlin)
    assert (s.energy_wh, s.cost_micros, s.currency) == (12_345, 4_200_000, "EUR")
    assert s.location == SessionLocation(
        id="L-77", country="DEU", type="PARKING_GARAGE", public=True, time_zone="Europe/Berlin"
    )
    assert (s.operator_id, s.company_id, s.charge_box_id, s.session_id) == (
        "op-9",
        "co-1",
        "CB-1",
        "S-1",
    )
    assert s.auth == SessionAuth(uid="04A2B3", type="RFID")
    assert not s.roaming
    assert not s.ongoing  # derived: it has an end
    assert s.extra == {"vehicle": {"plate": "B-X 1"}, "company": {"name": "Fleet Ltd"}}
    assert ChargingSession.from_mapping(s.to_mapping("list")) == s


def test_ongoing_list_session() -> None:
    data = {**LIST_SESSION, "endedAt": None, "ongoing": True}
    s = ChargingSession.from_mapping(data)
    assert s.ongoing
    assert s.ended_at is None
    with pytest.raises(ValidationError) as info:
        ChargingSession.from_mapping({**LIST_SESSION, "ongoing": True})
    assert info.value.field == "ongoing"


def test_extra_is_frozen() -> None:
    s = ChargingSession.from_mapping(LIST_SESSION)
    with pytest.raises(TypeError):
        s.extra["vehicle"]["plate"] = "changed"
    assert hash(s) == hash(ChargingSession.from_mapping(LIST_SESSION))


def test_shape_is_told_apart_or_named() -> None:
    with pytest.raises(ValidationError) as info:
        ChargingSession.from_mapping({"id": "x"})
    assert info.value.field == "shape"
    both = {**ocpi(), "startedAt": "2025-01-01T00:00:00Z"}
    with pytest.raises(ValidationError):
        ChargingSession.from_mapping(both)
    assert ChargingSession.from_mapping(both, shape="ocpi").id == "12345"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {
                "charging_periods": [
                    {
                        "start_date_time": "2015-06-29T21:39:09Z",
                        "dimensions": [{"type": "TIME", "volume": 1.5}],
                    }
                ]
            },
            "charging_periods[0].dimensions[0].volume",
        ),
        (
            {
                "charging_periods": [
                    {
                        "start_date_time": "2015-06-29T21:39:09Z",
                        "dimensions": [{"type": "WATTS", "volume": "1"}],
                    }
                ]
            },
            "charging_periods[0].dimensions[0].type",
        ),
        (
            {
                "charging_periods": [
                    {
                        "start_date_time": "2015-06-29T20:00:00Z",
                        "dimensions": [{"type": "TIME", "volume": "1"}],
                    }
                ]
            },
            "charging_periods[0].start_date_time",
        ),
        (
            {"charging_periods": [{"start_date_time": "2015-06-29T21:39:09Z", "dimensions": []}]},
            "charging_periods[0].dimensions",
        ),
        ({"cdr_location": {"id": "L", "country": ["BEL"]}}, "cdr_location.country"),
        ({"cdr_token": "RFID"}, "cdr_token"),
        ({"total_cost": {"excl_vat": "4.0000001"}}, "total_cost.excl_vat"),
        ({"total_energy": "-1"}, "total_energy"),
        ({"currency": "euro"}, "currency"),
        ({"end_date_time": "2015-06-29T20:00:00Z"}, "end_date_time"),
        ({"last_updated": None}, "last_updated"),
        ({"total_parking_time": "3"}, "total_parking_time"),
    ],
)
def test_ocpi_errors_name_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        ChargingSession.from_mapping({**ocpi(), **change})
    assert info.value.field == field


def test_floats_are_refused_with_the_way_out() -> None:
    data = json.loads(OCPI_CDR)  # floats, as json.loads gives them by default
    with pytest.raises(ValidationError) as info:
        ChargingSession.from_mapping(data)
    assert "parse_float=decimal.Decimal" in str(info.value)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"startedAt": "yesterday"}, "startedAt"),
        ({"consumed": "12.5"}, "consumed"),
        ({"location": {"isPublic": "yes"}}, "location.isPublic"),
        ({"auth": {"idTag": {"uid": 5.5}}}, "auth.idTag.uid"),
        ({"cost": 4.2}, "cost"),
        ({"isRoaming": "no"}, "isRoaming"),
        ({"endedAt": "2025-03-01T07:00:00+01:00"}, "endedAt"),
    ],
)
def test_list_errors_name_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        ChargingSession.from_mapping({**LIST_SESSION, **change})
    assert info.value.field == field


def test_constructor_invariants() -> None:
    start = datetime(2025, 1, 1, 10, tzinfo=UTC)
    with pytest.raises(ValidationError, match="started_at"):
        ChargingSession(id="a", started_at=datetime(2025, 1, 1))
    with pytest.raises(ValidationError, match="ongoing"):
        ChargingSession(id="a", started_at=start, ongoing=False)
    with pytest.raises(ValidationError, match="ended_at"):
        ChargingSession(id="a", started_at=start, ended_at=start - timedelta(seconds=1))
    with pytest.raises(ValidationError, match=r"charging_periods\[1\]\.start"):
        ChargingSession(
            id="a",
            started_at=start,
            charging_periods=[
                ChargingPeriod(start + timedelta(minutes=5), [CdrDimension("ENERGY", Decimal(1))]),
                ChargingPeriod(start, [CdrDimension("ENERGY", Decimal(1))]),
            ],
        )
    with pytest.raises(ValidationError, match=r"dimensions\[1\]\.type"):
        ChargingPeriod(
            start, [CdrDimension("ENERGY", Decimal(1)), CdrDimension("energy", Decimal(2))]
        )
    with pytest.raises(ValidationError, match="currency"):
        ChargingSession(id="a", started_at=start, currency="eur")


def test_power_and_current_may_be_negative_energy_may_not() -> None:
    # OCPI 2.2.1: power and current flowing from the EV to the grid are negative.
    assert CdrDimension("POWER", Decimal("-7.4")).volume == Decimal("-7.4")
    assert CdrDimension(DimensionType.MIN_CURRENT, Decimal(-16)).volume == -16
    with pytest.raises(ValidationError, match="volume"):
        CdrDimension("ENERGY", Decimal("-0.1"))
    with pytest.raises(ValidationError, match="volume"):
        CdrDimension("TIME", 1.5)  # type: ignore[arg-type]


def test_parking_splits_total_time() -> None:
    data = {**ocpi(), "total_time": Decimal("2.5"), "total_parking_time": Decimal("0.5")}
    s = ChargingSession.from_mapping(data)
    assert (s.charging_seconds, s.parking_seconds) == (7_200, 1_800)
    out = s.to_mapping()
    assert (out["total_time"], out["total_parking_time"]) == (Decimal("2.5"), Decimal("0.5"))


def test_totals_of_a_dimension() -> None:
    start = datetime(2025, 1, 1, 10, tzinfo=UTC)
    s = ChargingSession(
        id="a",
        started_at=start,
        ended_at=start + timedelta(hours=1),
        charging_periods=[
            ChargingPeriod(start, [CdrDimension("ENERGY", Decimal("1.25"))]),
            ChargingPeriod(start + timedelta(minutes=30), [CdrDimension("ENERGY", Decimal("2"))]),
        ],
    )
    assert s.total("energy") == Decimal("3.25")
    assert s.total(DimensionType.TIME) == 0
    assert s.period_end(0) == start + timedelta(minutes=30)
    assert s.period_end(1) == s.ended_at
    assert s.updated_at == s.ended_at  # the default: when it ended
