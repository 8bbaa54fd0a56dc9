"""The exact price of one charging session under a tariff: :func:`price_session`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, tzinfo
from fractions import Fraction
from typing import Any, Literal

import attrs

from cdrrating._rules import ceil_div, clamp, covers
from cdrrating._validate import check_int, epoch_micros, to_tzinfo
from cdrrating.charging import ChargingPeriod, ChargingSession, DimensionType
from cdrrating.errors import ValidationError
from cdrrating.money import Rounding, round_micros
from cdrrating.tariffs._charge import (
    _COMPONENT_OF,
    _FLATS,
    _PER_PRICE,
    CostDimension,
    DimensionCost,
    PeriodCost,
    SessionCharge,
    SessionChargeStatus,
    StepPolicy,
    UnpricedReason,
    _num,
    _with_vat,
)
from cdrrating.tariffs._model import (
    _CURRENCY,
    ReservationRestrictionType,
    Tariff,
    TariffElement,
    TariffPrice,
    TariffRestrictions,
)

#: A rounding quantum beyond a thousand currency units is no currency's.
_MAX_QUANTUM = 1_000 * 1_000_000


# -- pricing: the rules ----------------------------------------------------------------------

#: Minor units of the ISO 4217 currencies that do not have two; every other has two.
_MINOR_UNITS = {
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(
        (
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ),
        0,
    ),
}


def currency_quantum(currency: str) -> int:
    """The currency's smallest unit in micros (ISO 4217 minor units): 10,000 for EUR
    (cents), 1,000,000 for JPY, 1,000 for KWD."""
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise ValidationError("currency", currency, "an ISO 4217 code of 3 capital letters")
    return int(10 ** (6 - _MINOR_UNITS.get(currency, 2)))


class _Unpriced(Exception):
    """Raised inside pricing to stop at the first reason a session cannot be priced."""

    def __init__(self, reason: UnpricedReason, detail: str) -> None:
        self.reason = reason
        self.detail = detail


@attrs.frozen
class _Period:
    """A charging period as pricing reads it."""

    index: int
    start: datetime
    end: datetime
    values: Mapping[DimensionType, Fraction]
    reservation: bool
    energy_before_kwh: Fraction  # energy of the session before this period
    elapsed: Fraction  # seconds from the session's start to the period's start


def _seconds(later: datetime, earlier: datetime) -> Fraction:
    return Fraction(epoch_micros(later) - epoch_micros(earlier), 1_000_000)


def _hours(value: Fraction) -> Fraction:
    return value * 3600


def _periods(session: ChargingSession, notes: list[str]) -> list[_Period]:
    assert session.ended_at is not None  # ongoing sessions are refused before
    raw: Sequence[ChargingPeriod] = session.charging_periods
    if not raw:
        # A session without periods (the list-API shape) is priced from its totals as one
        # period from its start; restrictions are read there.
        elapsed = _seconds(session.ended_at, session.started_at)
        parking = Fraction(session.parking_seconds or 0)
        charging = (
            Fraction(session.charging_seconds)
            if session.charging_seconds is not None
            else max(elapsed - parking, Fraction(0))
        )
        values = {
            DimensionType.ENERGY: Fraction(session.energy_wh, 1000),
            DimensionType.TIME: charging / 3600,
            DimensionType.PARKING_TIME: parking / 3600,
        }
        notes.append(
            "no charging periods: priced from the session's totals as one period "
            "(restrictions read at the session's start)"
        )
        return [
            _Period(
                0,
                session.started_at,
                session.ended_at,
                values,
                False,
                Fraction(0),
                Fraction(0),
            )
        ]
    out = []
    energy = Fraction(0)
    for n, period in enumerate(raw):
        end = session.period_end(n)
        assert end is not None
        values = {d.type: Fraction(d.volume) for d in period.dimensions}
        out.append(
            _Period(
                n,
                period.start,
                end,
                values,
                DimensionType.RESERVATION_TIME in values,
                energy,
                _seconds(period.start, session.started_at),
            )
        )
        energy += values.get(DimensionType.ENERGY, Fraction(0))
    return out


def _volumes(p: _Period, notes: list[str]) -> dict[CostDimension, Fraction]:
    """The volume of each dimension in a period, in Wh or seconds."""
    if p.reservation:
        return {CostDimension.RESERVATION_TIME: _hours(p.values[DimensionType.RESERVATION_TIME])}
    out = {CostDimension.ENERGY: p.values.get(DimensionType.ENERGY, Fraction(0)) * 1000}
    time_h = p.values.get(DimensionType.TIME)
    parking_h = p.values.get(DimensionType.PARKING_TIME)
    if time_h is None and parking_h is None:
        # No time measured: the period's length is charging time, or parking time when
        # the period says no energy flowed.
        length = _seconds(p.end, p.start)
        energy = p.values.get(DimensionType.ENERGY)
        if energy is not None and energy == 0:
            out[CostDimension.PARKING_TIME] = length
            what = "parking time (no energy)"
        else:
            out[CostDimension.TIME] = length
            what = "charging time"
        notes.append(
            f"period {p.index + 1} measures no TIME or PARKING_TIME: its length "
            f"({_num(length)} s) is counted as {what}"
        )
        return out
    out[CostDimension.TIME] = _hours(time_h) if time_h is not None else Fraction(0)
    out[CostDimension.PARKING_TIME] = _hours(parking_h) if parking_h is not None else Fraction(0)
    return out


def _bounds(
    p: _Period, avg: DimensionType, low: DimensionType, high: DimensionType
) -> tuple[Fraction | None, Fraction | None]:
    """The lowest and highest value of a period's current or power: the period's
    minimum and maximum where measured, else its average."""
    mean = p.values.get(avg)
    return p.values.get(low, mean), p.values.get(high, mean)


def _at_least(value: Fraction, lo: Fraction | None, hi: Fraction | None) -> bool | None:
    """Whether the period's value stayed at or above ``value``; None if not known."""
    if lo is not None:
        return lo >= value
    if hi is not None and hi < value:
        return False
    return None


def _below(value: Fraction, lo: Fraction | None, hi: Fraction | None) -> bool | None:
    """Whether the period's value stayed below ``value``; None if not known."""
    if hi is not None:
        return hi < value
    if lo is not None and lo >= value:
        return False
    return None


def _matches(
    r: TariffRestrictions | None, p: _Period, zone: tzinfo | None
) -> tuple[bool, str | None]:
    """Whether an element's restrictions hold at a period's start; the second value
    names a restriction that cannot be decided (the period lacks the value it needs)."""
    if r is None:
        return True, None
    if r.local:
        assert zone is not None  # checked before any period is priced
        local = p.start.astimezone(zone)
        weekdays = sum(1 << d.weekday for d in r.day_of_week) if r.day_of_week else 0b1111111
        start_s = _clock(r.start_time) if r.start_time is not None else 0
        # Only a start: until midnight; neither: the whole day.
        end_s = _clock(r.end_time) if r.end_time is not None else 86_400 if start_s else 0
        ranges: tuple[tuple[int, int], ...] = ()
        if r.start_date is not None or r.end_date is not None:
            first = r.start_date.toordinal() if r.start_date is not None else 1
            last = r.end_date.toordinal() - 1 if r.end_date is not None else date.max.toordinal()
            ranges = ((first, last),)
        seconds = local.hour * 3600 + local.minute * 60 + local.second
        if not covers(
            (weekdays, start_s, end_s, ranges),
            local.weekday(),
            local.toordinal(),
            seconds,
        ):
            return False, None
    # OCPI: a minimum holds from the amount on (inclusive), a maximum until it (exclusive).
    if r.min_kwh is not None and not p.energy_before_kwh >= Fraction(r.min_kwh):
        return False, None
    if r.max_kwh is not None and not p.energy_before_kwh < Fraction(r.max_kwh):
        return False, None
    if r.min_duration is not None and not p.elapsed >= r.min_duration:
        return False, None
    if r.max_duration is not None and not p.elapsed < r.max_duration:
        return False, None
    current = _bounds(
        p, DimensionType.CURRENT, DimensionType.MIN_CURRENT, DimensionType.MAX_CURRENT
    )
    power = _bounds(p, DimensionType.POWER, DimensionType.MIN_POWER, DimensionType.MAX_POWER)
    for name, limit, test, measured in (
        ("min_current", r.min_current, _at_least, current),
        ("max_current", r.max_current, _below, current),
        ("min_power", r.min_power, _at_least, power),
        ("max_power", r.max_power, _below, power),
    ):
        if limit is None:
            continue
        holds = test(Fraction(limit), *measured)
        if holds is None:
            return False, name
        if not holds:
            return False, None
    return True, None


def _clock(t: time) -> int:
    return t.hour * 3600 + t.minute * 60 + t.second


def _candidates(tariff: Tariff, p: _Period, expired: bool) -> list[int]:
    """The elements that may price a period, in the order they are tried."""

    def kind(e: TariffElement) -> ReservationRestrictionType | None:
        return e.restrictions.reservation if e.restrictions is not None else None

    indexes = range(len(tariff.elements))
    if not p.reservation:
        return [i for i in indexes if kind(tariff.elements[i]) is None]
    used = [
        i for i in indexes if kind(tariff.elements[i]) is ReservationRestrictionType.RESERVATION
    ]
    if not expired:
        return used
    # OCPI: an expired reservation is priced by RESERVATION_EXPIRES elements before
    # RESERVATION ones (a flat expiry fee adds to the reserved time's price).
    expires = [
        i
        for i in indexes
        if kind(tariff.elements[i]) is ReservationRestrictionType.RESERVATION_EXPIRES
    ]
    return expires + used


def _resolve_zone(
    session: ChargingSession, tariff: Tariff, time_zone: tzinfo | str | None
) -> tuple[tzinfo | None, str | None]:
    needed = any(e.restrictions is not None and e.restrictions.local for e in tariff.elements)
    name = session.location.time_zone
    given: tzinfo | str | None = name if name is not None else time_zone
    if given is None:
        if needed:
            raise _Unpriced(
                UnpricedReason.NO_TIME_ZONE,
                "the tariff restricts times of day, dates or weekdays, which are read in the "
                "location's time zone; the session names none and no time_zone was passed",
            )
        return None, None
    try:
        zone = to_tzinfo("location.time_zone" if name is not None else "time_zone", given)
    except ValidationError as error:
        if name is None:
            raise  # the caller's argument: a plain error
        if not needed:
            return (
                None,
                None,
            )  # the zone only labels explain(); the price does not read it
        raise _Unpriced(UnpricedReason.NO_TIME_ZONE, str(error)) from None
    return zone, str(given) if isinstance(given, str) else str(zone)


def _check_session(session: ChargingSession, tariff: Tariff) -> None:
    if session.ongoing:
        raise _Unpriced(UnpricedReason.ONGOING, "the session has not ended yet")
    if session.currency is not None and session.currency != tariff.currency:
        raise _Unpriced(
            UnpricedReason.CURRENCY_MISMATCH,
            f"the session is in {session.currency}, the tariff in {tariff.currency}",
        )
    if not tariff.in_force(session.started_at):
        raise _Unpriced(
            UnpricedReason.TARIFF_NOT_IN_FORCE,
            f"tariff {tariff.id!r} is in force from {_when(tariff.start_date_time)} until "
            f"{_when(tariff.end_date_time)}; the session started {session.started_at.isoformat()}",
        )
    for n, period in enumerate(session.charging_periods):
        if period.tariff_id is not None and period.tariff_id != tariff.id:
            raise _Unpriced(
                UnpricedReason.TARIFF_MISMATCH,
                f"charging period {n + 1} names tariff {period.tariff_id!r}, not {tariff.id!r}",
            )


def _when(dt: datetime | None) -> str:
    return "(no bound)" if dt is None else dt.isoformat()


def _lay(
    tariff: Tariff, periods: list[_Period], zone: tzinfo | None, notes: list[str]
) -> list[PeriodCost]:
    """Which element prices each dimension of each period, and the exact amounts."""
    expired = all(p.reservation for p in periods)
    # Only a dimension the tariff prices somewhere is worth a note when it goes free.
    priced = {c.type for e in tariff.elements for c in e.price_components}
    out: list[PeriodCost] = []
    flat_done: set[CostDimension] = set()
    for p in periods:
        candidates = _candidates(tariff, p, expired)
        decided: dict[int, tuple[bool, str | None]] = {}
        volumes = _volumes(p, notes)
        flat = CostDimension.RESERVATION_FLAT if p.reservation else CostDimension.FLAT
        wanted: list[tuple[CostDimension, Fraction]] = [(flat, Fraction(1))]
        wanted += [(d, v) for d, v in volumes.items() if v > 0]
        for dimension, volume in wanted:
            if dimension in _FLATS and dimension in flat_done:
                continue
            kind = _COMPONENT_OF[dimension]
            for i in candidates:
                component = tariff.elements[i].component(kind)
                if component is None:
                    continue
                if i not in decided:
                    decided[i] = _matches(tariff.elements[i].restrictions, p, zone)
                holds, unknown = decided[i]
                if unknown is not None:
                    raise _Unpriced(
                        UnpricedReason.MISSING_DIMENSION,
                        f"element {i + 1} restricts {unknown}, but charging period "
                        f"{p.index + 1} measures no value to compare "
                        f"({_NEEDS[unknown]})",
                    )
                if not holds:
                    continue
                amount = volume * component.price_micros / _PER_PRICE[dimension]
                out.append(PeriodCost(p.index, dimension, i, component, volume, amount))
                if dimension in _FLATS:
                    flat_done.add(dimension)
                break
            else:
                if dimension not in _FLATS and kind in priced:
                    # OCPI: no element prices this dimension now: it costs nothing.
                    notes.append(
                        f"period {p.index + 1}: no element prices {dimension.value} "
                        f"({_num(volume)} {dimension.unit}): free"
                    )
    return out


_NEEDS = {
    "min_current": "MIN_CURRENT or CURRENT",
    "max_current": "MAX_CURRENT or CURRENT",
    "min_power": "MIN_POWER or POWER",
    "max_power": "MAX_POWER or POWER",
}


def _sum_dimensions(
    tariff: Tariff, costs: list[PeriodCost], policy: StepPolicy
) -> tuple[DimensionCost, ...]:
    by_dimension: dict[CostDimension, list[PeriodCost]] = {}
    for c in costs:
        by_dimension.setdefault(c.dimension, []).append(c)
    # LAST_TIME_DIMENSION: charging time is not rounded when parking follows it.
    skip_time_step = (
        policy is StepPolicy.LAST_TIME_DIMENSION and CostDimension.PARKING_TIME in by_dimension
    )
    out = []
    for dimension in CostDimension:
        items = by_dimension.get(dimension)
        if not items:
            continue
        volume = sum((c.volume for c in items), Fraction(0))
        amount = sum((c.amount for c in items), Fraction(0))
        incl: Fraction | None = Fraction(0)
        for c in items:
            part = c.amount_incl_vat
            incl = None if incl is None or part is None else incl + part
        last = items[-1]
        if dimension in _FLATS or (skip_time_step and dimension is CostDimension.TIME):
            billed, step, step_element, extra = volume, None, None, Fraction(0)
        else:
            # OCPI 2.2.1: step_size applies to the total of a dimension over the session,
            # with the step of the last component used; what it adds is priced by that
            # component (its element is the last that priced the dimension).
            step = last.component.step_size
            billed = Fraction(ceil_div(volume, step) * step)
            step_element = last.element
            extra = (billed - volume) * last.component.price_micros / _PER_PRICE[dimension]
            amount += extra
            extra_incl = _with_vat(extra, last.component.vat)
            incl = None if incl is None or extra_incl is None else incl + extra_incl
        out.append(
            DimensionCost(dimension, volume, billed, step, step_element, extra, amount, incl)
        )
    return tuple(out)


def price_session(
    session: ChargingSession,
    tariff: Tariff,
    *,
    time_zone: tzinfo | str | None = None,
    quantum_micros: int | None = None,
    rounding: Rounding | str = Rounding.HALF_UP,
    step_policy: StepPolicy | str = StepPolicy.PER_DIMENSION,
) -> SessionCharge:
    """Price an ended charging session with an OCPI 2.2.1 tariff, exactly.

    Each charging period is priced, per dimension (flat fee, energy, charging time,
    parking time, reservation), by the first element of the tariff that has a component
    of that dimension and whose restrictions hold at the period's start. Each
    dimension's total over the session is then rounded up to the ``step_size`` of the
    last component that priced it (see :class:`StepPolicy`), the amounts are summed
    exactly, rounded **once** to ``quantum_micros`` (default: the currency's minor unit,
    cents for EUR) with ``rounding`` (default ``half_up``, which the OCPI examples use),
    and bounded by the tariff's ``min_price`` and ``max_price``. The cost including VAT
    is summed from each component's VAT rate, rounded once and bounded on its own.

    Times of day, dates and weekdays are read in the session location's ``time_zone``,
    else in ``time_zone``. A session that cannot be priced (ongoing, another currency,
    a period naming another tariff, the tariff not in force at the start, no time zone
    for a tariff that needs one, a restriction on current or power in a period that does
    not measure it) gives an UNPRICED charge with a reason, never a cost of 0.
    """
    if not isinstance(session, ChargingSession):
        raise ValidationError("session", session, "a ChargingSession")
    if not isinstance(tariff, Tariff):
        raise ValidationError("tariff", tariff, "a Tariff")
    mode = Rounding.parse(rounding)
    policy = StepPolicy.parse(step_policy)
    quantum = currency_quantum(tariff.currency) if quantum_micros is None else quantum_micros
    check_int("quantum_micros", quantum, minimum=1, maximum=_MAX_QUANTUM)
    common: dict[str, Any] = {
        "session": session,
        "tariff": tariff,
        "currency": tariff.currency,
        "quantum_micros": quantum,
        "rounding": mode,
        "step_policy": policy,
    }
    notes: list[str] = []
    try:
        _check_session(session, tariff)
        zone, zone_name = _resolve_zone(session, tariff, time_zone)
        periods = _periods(session, notes)
        costs = _lay(tariff, periods, zone, notes)
    except _Unpriced as unpriced:
        return SessionCharge(
            status=SessionChargeStatus.UNPRICED,
            reason=unpriced.reason,
            detail=unpriced.detail,
            notes=tuple(notes),
            **common,
        )
    dimensions = _sum_dimensions(tariff, costs, policy)
    exact = sum((d.amount for d in dimensions), Fraction(0))
    exact_incl: Fraction | None = Fraction(0)
    for d in dimensions:
        exact_incl = (
            None
            if exact_incl is None or d.amount_incl_vat is None
            else exact_incl + d.amount_incl_vat
        )
    cost = _settle(exact, quantum, mode, low=tariff.min_price, high=tariff.max_price, side="excl")
    cost_incl = (
        None
        if exact_incl is None
        else _settle(
            exact_incl,
            quantum,
            mode,
            low=tariff.min_price,
            high=tariff.max_price,
            side="incl",
        )
    )
    return SessionCharge(
        status=SessionChargeStatus.PRICED,
        cost_micros=cost,
        cost_incl_vat_micros=cost_incl,
        exact_micros=exact,
        exact_incl_vat_micros=exact_incl,
        time_zone=zone_name,
        dimensions=dimensions,
        periods=tuple(costs),
        notes=tuple(notes),
        **common,
    )


def _bound(price: TariffPrice | None, side: Literal["excl", "incl"]) -> int | None:
    if price is None:
        return None
    return price.excl_vat_micros if side == "excl" else price.incl_vat_micros


def _settle(
    exact: Fraction,
    quantum: int,
    mode: Rounding,
    *,
    low: TariffPrice | None,
    high: TariffPrice | None,
    side: Literal["excl", "incl"],
) -> int:
    """The one rounding, then the bounds (rating-rules §4): OCPI applies min_price and
    max_price to the cost excluding VAT and, where they give it, including VAT."""
    rounded = round_micros(exact, quantum=quantum, mode=mode)
    minimum = _bound(low, side)
    return int(clamp(rounded, 0 if minimum is None else minimum, _bound(high, side)))
