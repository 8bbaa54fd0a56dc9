"""Hypothesis strategies for charging sessions and OCPI tariffs (re-exported by
:mod:`cdrrating.testing.strategies`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from cdrrating.charging import (
    SIGNED_DIMENSIONS,
    CdrDimension,
    ChargingPeriod,
    ChargingSession,
    DimensionType,
    SessionAuth,
    SessionLocation,
)
from cdrrating.tariffs import (
    DayOfWeek,
    PriceComponent,
    ReservationRestrictionType,
    Tariff,
    TariffDimensionType,
    TariffElement,
    TariffPrice,
    TariffRestrictions,
    TariffType,
)

__all__ = ["charging_sessions", "tariffs"]

MIN_START = datetime(2020, 1, 1)
MAX_START = datetime(2030, 12, 31)

_ZONES = (
    UTC,
    timezone(timedelta(hours=1)),
    timezone(timedelta(hours=-5)),
    ZoneInfo("Europe/Berlin"),
)
_ZONE_NAMES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata")
_ID_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789*-_"
_CURRENCIES = ("EUR", "USD", "GBP", "JPY", "KWD")

_ids = st.text(_ID_ALPHABET, min_size=1, max_size=12)
_maybe_ids = st.none() | _ids
_instants = st.datetimes(
    min_value=MIN_START,
    max_value=MAX_START,
    timezones=st.sampled_from(_ZONES),
    allow_imaginary=False,
)


def _decimals(
    max_value: int, places: int = 4, *, signed: bool = False
) -> st.SearchStrategy[Decimal]:
    low = -max_value * 10**places if signed else 0
    return st.integers(low, max_value * 10**places).map(lambda n: Decimal(n).scaleb(-places))


def _dimension(kind: DimensionType) -> st.SearchStrategy[CdrDimension]:
    return _decimals(500, signed=kind in SIGNED_DIMENSIONS).map(lambda v: CdrDimension(kind, v))


_json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.text(max_size=8)
    | _decimals(1000, 2)
)
_json: st.SearchStrategy[Any] = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text("abcxyz_", min_size=1, max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
# Keys no shape reads: extra holds what the session has no field for.
_extra = st.dictionaries(
    st.text("abcdefghij", min_size=1, max_size=6).map(lambda k: "x_" + k), _json, max_size=3
)


def _later(at: datetime, seconds: int) -> datetime:
    """``seconds`` of elapsed time after ``at``, in ``at``'s zone. Adding a timedelta to a
    datetime in a zone with daylight saving adds wall-clock time instead."""
    return (at.astimezone(UTC) + timedelta(seconds=seconds)).astimezone(at.tzinfo)


def _check_size(name: str, value: object, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgument(f"{name}={value!r} must be an int >= {minimum}")
    return value


@st.composite
def _sessions(
    draw: st.DrawFn, min_periods: int, max_periods: int, ongoing: bool | None, with_extra: bool
) -> ChargingSession:
    started = draw(_instants)
    offsets = sorted(
        draw(st.lists(st.integers(0, 6 * 3600), min_size=min_periods, max_size=max_periods))
    )
    periods = []
    for offset in offsets:
        kinds = draw(st.lists(st.sampled_from(DimensionType), min_size=1, max_size=4, unique=True))
        dims = tuple(draw(_dimension(k)) for k in kinds)
        periods.append(ChargingPeriod(_later(started, offset), dims, draw(st.none() | _ids)))
    is_ongoing = draw(st.booleans()) if ongoing is None else ongoing
    ended = None
    if not is_ongoing:
        last = offsets[-1] if offsets else 0
        ended = _later(started, last + draw(st.integers(0, 4 * 3600)))
    return ChargingSession(
        id=draw(_ids),
        started_at=started,
        ended_at=ended,
        energy_wh=draw(st.integers(0, 200_000)),
        charging_seconds=draw(st.none() | st.integers(0, 10**6)),
        parking_seconds=draw(st.none() | st.integers(0, 10**6)),
        location=SessionLocation(
            id=draw(_maybe_ids),
            country=draw(st.none() | st.sampled_from(("DEU", "NLD", "BEL"))),
            type=draw(st.none() | st.sampled_from(("ON_STREET", "PARKING_GARAGE"))),
            public=draw(st.none() | st.booleans()),
            time_zone=draw(st.none() | st.sampled_from(_ZONE_NAMES)),
        ),
        evse_id=draw(_maybe_ids),
        charge_box_id=draw(_maybe_ids),
        session_id=draw(_maybe_ids),
        auth=SessionAuth(
            uid=draw(_maybe_ids),
            type=draw(st.none() | st.sampled_from(("RFID", "APP_USER", "AD_HOC_USER"))),
            contract_id=draw(_maybe_ids),
        ),
        operator_id=draw(_maybe_ids),
        company_id=draw(_maybe_ids),
        roaming=draw(st.booleans()),
        currency=draw(st.none() | st.sampled_from(_CURRENCIES)),
        cost_micros=draw(st.none() | st.integers(-(10**12), 10**12)),
        cost_incl_vat_micros=draw(st.none() | st.integers(-(10**12), 10**12)),
        updated_at=draw(_instants),
        charging_periods=tuple(periods),
        tariff_ids=tuple(draw(st.lists(_ids, max_size=3))),
        extra=draw(_extra) if with_extra else {},
    )


def charging_sessions(
    *,
    min_periods: int = 0,
    max_periods: int = 5,
    ongoing: bool | None = None,
    with_extra: bool = True,
) -> st.SearchStrategy[ChargingSession]:
    """Valid :class:`~cdrrating.charging.ChargingSession` objects: every field drawn,
    charging periods in time order within the session, every dimension type.

    ``ongoing`` True or False draws only ongoing or only ended sessions (None: both);
    ``with_extra=False`` leaves ``extra`` empty. Every session drawn round-trips through
    ``to_mapping``/``from_mapping`` in both shapes.
    """
    lo = _check_size("min_periods", min_periods)
    hi = _check_size("max_periods", max_periods)
    if lo > hi:
        raise InvalidArgument(f"min_periods={lo!r} is greater than max_periods={hi!r}")
    if ongoing is not None and not isinstance(ongoing, bool):
        raise InvalidArgument(f"ongoing={ongoing!r} must be a bool or None")
    if not isinstance(with_extra, bool):
        raise InvalidArgument(f"with_extra={with_extra!r} must be a bool")
    return _sessions(lo, hi, ongoing, with_extra)


_TIMES = st.times().map(lambda t: t.replace(second=0, microsecond=0))


@st.composite
def _restrictions(draw: st.DrawFn, local: bool) -> TariffRestrictions:
    def maybe(strategy: st.SearchStrategy[Any]) -> Any:
        return draw(st.none() | strategy)

    start_date = maybe(st.dates(MIN_START.date(), MAX_START.date())) if local else None
    end_date = maybe(st.dates(start_date or MIN_START.date(), MAX_START.date())) if local else None
    min_kwh = maybe(_decimals(100, 2))
    max_kwh = maybe(_decimals(100, 2).map(lambda v: v + (min_kwh or 0)))
    min_duration = maybe(st.integers(0, 7200))
    return TariffRestrictions(
        start_time=maybe(_TIMES) if local else None,
        end_time=maybe(_TIMES) if local else None,
        start_date=start_date,
        end_date=end_date,
        min_kwh=min_kwh,
        max_kwh=max_kwh,
        min_current=maybe(_decimals(64, 1)),
        max_current=maybe(_decimals(64, 1)),
        min_power=maybe(_decimals(350, 1)),
        max_power=maybe(_decimals(350, 1)),
        min_duration=min_duration,
        max_duration=maybe(st.integers(0, 7200).map(lambda v: v + (min_duration or 0))),
        day_of_week=tuple(draw(st.lists(st.sampled_from(DayOfWeek), max_size=7, unique=True)))
        if local
        else (),
        reservation=maybe(st.sampled_from(ReservationRestrictionType)),
    )


@st.composite
def _tariffs(
    draw: st.DrawFn,
    dimensions: tuple[TariffDimensionType, ...],
    *,
    with_restrictions: bool,
    with_local_restrictions: bool,
    with_bounds: bool,
    with_vat: bool | None,
    with_dates: bool,
) -> Tariff:
    elements = []
    for _ in range(draw(st.integers(1, 4))):
        kinds = draw(st.lists(st.sampled_from(dimensions), min_size=1, max_size=4, unique=True))
        components = tuple(
            PriceComponent(
                type=k,
                price_micros=draw(st.integers(0, 100_000)) * 100,  # OCPI's 4 decimals
                vat=(
                    draw(st.none() | _decimals(30, 1))
                    if with_vat is None
                    else draw(_decimals(30, 1))
                    if with_vat
                    else None
                ),
                step_size=draw(st.sampled_from((1, 1, 60, 100, 300, 900, 1000))),
            )
            for k in kinds
        )
        restrictions = (
            draw(st.none() | _restrictions(with_local_restrictions)) if with_restrictions else None
        )
        elements.append(TariffElement(components, restrictions))
    low = high = None
    if with_bounds:
        low_excl = draw(st.none() | st.integers(0, 5_000).map(lambda n: n * 10_000))
        high_excl = draw(
            st.none() | st.integers(0, 20_000).map(lambda n: n * 10_000 + (low_excl or 0))
        )
        if low_excl is not None:
            low = TariffPrice(low_excl, draw(st.none() | st.just(low_excl * 12 // 10)))
        if high_excl is not None:
            high_incl = draw(st.none() | st.just(high_excl * 12 // 10))
            if low is not None and low.incl_vat_micros is not None and high_incl is not None:
                high_incl = max(high_incl, low.incl_vat_micros)
            high = TariffPrice(high_excl, high_incl)
    start = draw(st.none() | _instants) if with_dates else None
    end = (
        None
        if not with_dates
        else (
            draw(st.none() | _instants)
            if start is None
            else draw(st.none() | st.integers(1, 10**8).map(lambda s: _later(start, s)))
        )
    )
    return Tariff(
        id=draw(_ids),
        currency=draw(st.sampled_from(_CURRENCIES)),
        elements=tuple(elements),
        min_price=low,
        max_price=high,
        type=draw(st.none() | st.sampled_from(TariffType)),
        start_date_time=start,
        end_date_time=end,
        last_updated=draw(st.none() | _instants),
        country_code=draw(st.none() | st.sampled_from(("DE", "NL", "BE"))),
        party_id=draw(st.none() | st.sampled_from(("ALL", "TNM", "BEC"))),
        extra=draw(_extra),
    )


def tariffs(
    *,
    dimensions: Any = None,
    with_restrictions: bool = True,
    with_local_restrictions: bool = True,
    with_bounds: bool = True,
    with_vat: bool | None = None,
    with_dates: bool = True,
) -> st.SearchStrategy[Tariff]:
    """Valid OCPI 2.2.1 :class:`~cdrrating.tariffs.Tariff` objects.

    ``dimensions`` limits the price components to some types (e.g. ``["ENERGY"]``);
    ``with_restrictions=False`` draws elements without restrictions,
    ``with_local_restrictions=False`` none on times of day, dates or weekdays (so no
    time zone is needed to price with them); ``with_bounds=False`` no ``min_price`` or
    ``max_price``; ``with_vat`` True or False gives every component a VAT rate or none
    (None: either); ``with_dates=False`` draws tariffs in force at every instant (no
    ``start_date_time`` or ``end_date_time``). Every tariff drawn round-trips through
    ``to_mapping``/``from_mapping``.
    """
    if dimensions is None:
        kinds = tuple(TariffDimensionType)
    else:
        try:
            kinds = tuple(sorted({TariffDimensionType.parse(d) for d in dimensions}))
        except (TypeError, ValueError) as error:
            raise InvalidArgument(f"dimensions={dimensions!r}: {error}") from None
        if not kinds:
            raise InvalidArgument("dimensions must name at least one TariffDimensionType")
    for name, flag in (
        ("with_restrictions", with_restrictions),
        ("with_local_restrictions", with_local_restrictions),
        ("with_bounds", with_bounds),
        ("with_dates", with_dates),
    ):
        if not isinstance(flag, bool):
            raise InvalidArgument(f"{name}={flag!r} must be a bool")
    if with_vat is not None and not isinstance(with_vat, bool):
        raise InvalidArgument(f"with_vat={with_vat!r} must be a bool or None")
    return _tariffs(
        kinds,
        with_restrictions=with_restrictions,
        with_local_restrictions=with_local_restrictions,
        with_bounds=with_bounds,
        with_vat=with_vat,
        with_dates=with_dates,
    )
