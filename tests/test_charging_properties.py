"""Charging sessions read back what they write, in both shapes, and refuse garbage with
ValidationError only."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from cdrrating.charging import ChargingSession
from cdrrating.errors import ValidationError
from cdrrating.testing.strategies import charging_sessions


@pytest.mark.parametrize("shape", ["ocpi", "list"])
@given(s=charging_sessions())
def test_to_mapping_round_trips(shape: Any, s: ChargingSession) -> None:
    assert ChargingSession.from_mapping(s.to_mapping(shape), shape=shape) == s


@pytest.mark.parametrize("shape", ["ocpi", "list"])
@given(s=charging_sessions(with_extra=False))
def test_round_trips_through_json_text(shape: Any, s: ChargingSession) -> None:
    # As a service stores it: JSON text, decimals written as strings (default=str), read
    # back exactly.
    text = json.dumps(s.to_mapping(shape), default=str)
    assert ChargingSession.from_mapping(json.loads(text, parse_float=Decimal)) == s


@given(s=charging_sessions(ongoing=False, min_periods=1))
def test_ended_sessions_with_periods_derive_their_period_ends(s: ChargingSession) -> None:
    ends = [s.period_end(i) for i in range(len(s.charging_periods))]
    assert ends[-1] == s.ended_at
    for period, end in zip(s.charging_periods, ends, strict=True):
        assert end is not None
        assert period.start <= end


_junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.floats(),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3)
    ),
    max_leaves=10,
)
_keys = st.sampled_from(
    [
        "id",
        "start_date_time",
        "end_date_time",
        "startedAt",
        "endedAt",
        "charging_periods",
        "chargingPeriods",
        "cdr_token",
        "cdr_location",
        "total_energy",
        "consumed",
        "location",
        "auth",
        "total_cost",
        "cost",
        "tariffs",
        "ongoing",
        "currency",
    ]
)


@given(data=st.dictionaries(_keys, _junk, max_size=8), shape=st.sampled_from(["ocpi", "list"]))
def test_garbage_raises_validation_error_only(data: dict[str, Any], shape: Any) -> None:
    refused: ValidationError | None = None
    try:
        ChargingSession.from_mapping(data, shape=shape)
    except ValidationError as error:
        refused = error
    assert refused is None or refused.field  # a refusal names the field at fault


def test_strategy_refuses_impossible_options() -> None:
    with pytest.raises(InvalidArgument):
        charging_sessions(min_periods=3, max_periods=1)
    with pytest.raises(InvalidArgument):
        charging_sessions(ongoing="yes")  # type: ignore[arg-type]
