"""What pricing concludes about a session: :class:`SessionCharge`, with the cost of each
dimension and period, and the plain text :meth:`SessionCharge.explain` gives.
"""

from __future__ import annotations

import enum
from decimal import Decimal
from fractions import Fraction

import attrs

from cdrrating import _html
from cdrrating._enum import EnumParser
from cdrrating._validate import to_tzinfo
from cdrrating.charging import ChargingSession
from cdrrating.money import Rounding, format_micros, round_micros
from cdrrating.tariffs._model import PriceComponent, Tariff, TariffDimensionType

# -- pricing: the result --------------------------------------------------------------------


class CostDimension(enum.StrEnum):
    """What a part of a session's cost is for. Reservation costs are kept apart from the
    charging session's own: a reservation fee and a start fee are both charged."""

    FLAT = "FLAT"
    ENERGY = "ENERGY"
    TIME = "TIME"
    PARKING_TIME = "PARKING_TIME"
    RESERVATION_FLAT = "RESERVATION_FLAT"
    RESERVATION_TIME = "RESERVATION_TIME"

    @property
    def unit(self) -> str:
        return _UNIT_NAME[self]


_UNIT_NAME = {
    CostDimension.FLAT: "",
    CostDimension.ENERGY: "Wh",
    CostDimension.TIME: "s",
    CostDimension.PARKING_TIME: "s",
    CostDimension.RESERVATION_FLAT: "",
    CostDimension.RESERVATION_TIME: "s",
}
#: Units per priced unit: a price per kWh is per 1,000 Wh, a price per hour per 3,600 s.
_PER_PRICE = {
    CostDimension.FLAT: 1,
    CostDimension.ENERGY: 1_000,
    CostDimension.TIME: 3_600,
    CostDimension.PARKING_TIME: 3_600,
    CostDimension.RESERVATION_FLAT: 1,
    CostDimension.RESERVATION_TIME: 3_600,
}
_COMPONENT_OF = {
    CostDimension.FLAT: TariffDimensionType.FLAT,
    CostDimension.ENERGY: TariffDimensionType.ENERGY,
    CostDimension.TIME: TariffDimensionType.TIME,
    CostDimension.PARKING_TIME: TariffDimensionType.PARKING_TIME,
    CostDimension.RESERVATION_FLAT: TariffDimensionType.FLAT,
    CostDimension.RESERVATION_TIME: TariffDimensionType.TIME,
}
_FLATS = (CostDimension.FLAT, CostDimension.RESERVATION_FLAT)


class SessionChargeStatus(enum.StrEnum):
    PRICED = "PRICED"  # the tariff priced the session (the cost may be 0)
    UNPRICED = "UNPRICED"  # the tariff cannot price it: cost None, never 0; see reason

    @classmethod
    def parse(cls, value: SessionChargeStatus | str, field: str = "status") -> SessionChargeStatus:
        return _PARSE_STATUS(value, field)


class UnpricedReason(enum.StrEnum):
    """Why a session was not priced."""

    NO_TARIFF = "NO_TARIFF"  # no tariff was found for it
    ONGOING = "ONGOING"  # the session has not ended
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"  # the session's currency is not the tariff's
    TARIFF_MISMATCH = "TARIFF_MISMATCH"  # a charging period names another tariff
    TARIFF_NOT_IN_FORCE = "TARIFF_NOT_IN_FORCE"  # the session started outside its dates
    NO_TIME_ZONE = "NO_TIME_ZONE"  # a restriction needs local time; no zone is known
    MISSING_DIMENSION = "MISSING_DIMENSION"  # a restriction needs a value the period lacks

    @classmethod
    def parse(cls, value: UnpricedReason | str, field: str = "reason") -> UnpricedReason:
        return _PARSE_REASON(value, field)


_PARSE_STATUS = EnumParser(SessionChargeStatus)
_PARSE_REASON = EnumParser(UnpricedReason)


class StepPolicy(enum.StrEnum):
    """How ``step_size`` rounds time.

    ``PER_DIMENSION`` (the default): each dimension's total over the session (energy,
    charging time, parking time, reservation time) is rounded up to the ``step_size`` of
    the last component that priced it, as the OCPI 2.2.1 tariffs module says.
    ``LAST_TIME_DIMENSION``: as the OCPI 2.2.1 CDRs module says, charging time and
    parking time are rounded once between them: when parking was priced, only the
    parking total is rounded and the charging total is billed as it was.
    """

    PER_DIMENSION = "per_dimension"
    LAST_TIME_DIMENSION = "last_time_dimension"

    @classmethod
    def parse(cls, value: StepPolicy | str, field: str = "step_policy") -> StepPolicy:
        return _PARSE_STEP(value, field)


_PARSE_STEP = EnumParser(StepPolicy)


@attrs.frozen
class PeriodCost:
    """One dimension of one charging period: the element and component that priced it,
    the volume (Wh, seconds, or 1 for a flat fee) and the exact amount in micros,
    excluding VAT, before any step rounding."""

    period: int  # index in the session's charging periods (0 for a session priced by totals)
    dimension: CostDimension
    element: int  # index in the tariff's elements
    component: PriceComponent
    volume: Fraction
    amount: Fraction

    @property
    def amount_incl_vat(self) -> Fraction | None:
        return _with_vat(self.amount, self.component.vat)


@attrs.frozen
class DimensionCost:
    """A dimension over the whole session: the exact ``volume`` priced, the volume
    billed after rounding up to ``step_size`` (of the component in ``step_element``: the
    last that priced it), and the exact amounts in micros. ``step_amount`` is what the
    rounding up added, priced by that last component."""

    dimension: CostDimension
    volume: Fraction
    billed_volume: Fraction
    step_size: int | None
    step_element: int | None
    step_amount: Fraction
    amount: Fraction
    amount_incl_vat: Fraction | None


def _with_vat(amount: Fraction, vat: Decimal | None) -> Fraction | None:
    if vat is None:
        return None if amount else Fraction(0)
    return amount * (100 + Fraction(vat)) / 100


@attrs.frozen(repr=False)
class SessionCharge:
    """What pricing concludes about one session. ``explain()`` says how it was reached.

    ``cost_micros`` excludes VAT and ``cost_incl_vat_micros`` includes it (None when a
    component that costs something names no VAT); each is the exact sum rounded once to
    ``quantum_micros`` with ``rounding``, then bounded by the tariff's ``min_price`` and
    ``max_price``. An UNPRICED charge has no cost (None, never 0) and a ``reason``.
    """

    session: ChargingSession
    tariff: Tariff | None
    status: SessionChargeStatus
    reason: UnpricedReason | None = None
    detail: str = ""
    currency: str | None = None
    cost_micros: int | None = None
    cost_incl_vat_micros: int | None = None
    exact_micros: Fraction | None = None
    exact_incl_vat_micros: Fraction | None = None
    quantum_micros: int = 1
    rounding: Rounding = Rounding.HALF_UP
    step_policy: StepPolicy = StepPolicy.PER_DIMENSION
    time_zone: str | None = None
    dimensions: tuple[DimensionCost, ...] = ()
    periods: tuple[PeriodCost, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def session_id(self) -> str:
        return self.session.id

    def dimension(self, dimension: CostDimension | str) -> DimensionCost | None:
        kind = dimension if isinstance(dimension, CostDimension) else CostDimension(dimension)
        for d in self.dimensions:
            if d.dimension is kind:
                return d
        return None

    def __repr__(self) -> str:
        if self.cost_micros is None:
            cost = f"None, reason={self.reason.value if self.reason else None}"
        else:
            cost = format_micros(self.cost_micros, self.currency)
            if self.cost_incl_vat_micros is not None:
                cost += f" ({format_micros(self.cost_incl_vat_micros, self.currency)} incl. VAT)"
        return (
            f"SessionCharge(session_id={self.session.id!r}, status={self.status.value}, "
            f"cost={cost})"
        )

    def explain(self) -> str:
        """Plain text a support engineer can paste into a ticket."""
        return _explain(self)

    def _repr_html_(self) -> str:
        return _html.pre(self.explain())


# -- explain ---------------------------------------------------------------------------------


def _num(value: Fraction) -> str:
    if value.denominator == 1:
        return f"{value.numerator:,}"
    whole, rest = divmod(value.numerator, value.denominator)
    f = Fraction(rest, value.denominator)
    return f"{whole:,} {f.numerator}/{f.denominator} (≈ {float(value):,.2f})"


def _money_text(micros: int, currency: str | None) -> str:
    return f"{format_micros(micros, currency)} ({micros:,} micros)"


def _component_text(c: PriceComponent, currency: str | None) -> str:
    per = {
        TariffDimensionType.FLAT: "",
        TariffDimensionType.ENERGY: "/kWh",
        TariffDimensionType.TIME: "/h",
        TariffDimensionType.PARKING_TIME: "/h",
    }[c.type]
    vat = "no VAT given" if c.vat is None else f"VAT {c.vat}%"
    step = "" if c.type is TariffDimensionType.FLAT else f", step {c.step_size:,}"
    return f"{format_micros(c.price_micros, currency)}{per} ({vat}{step})"


def _explain(charge: SessionCharge) -> str:
    s, tariff, currency = charge.session, charge.tariff, charge.currency
    end = s.ended_at.isoformat() if s.ended_at is not None else "(ongoing)"
    lines = [
        f"Session {s.id}: {s.started_at.isoformat()} to {end}, "
        f"{len(s.charging_periods)} charging period(s), {s.energy_wh:,} Wh",
    ]
    if tariff is not None:
        lines.append(
            f"Tariff {tariff.id} ({tariff.currency}): {len(tariff.elements)} element(s); "
            f"rounding {charge.rounding.value} to {charge.quantum_micros:,} micros; "
            f"step policy {charge.step_policy.value}"
            + (f"; local time in {charge.time_zone}" if charge.time_zone else "")
        )
    if charge.status is SessionChargeStatus.UNPRICED:
        reason = charge.reason.value if charge.reason is not None else ""
        lines.append(f"Result: UNPRICED ({reason}): {charge.detail}.")
        lines.extend(f"Note: {n}" for n in charge.notes)
        lines.append("Cost: none (an unpriced session can be priced again)")
        return "\n".join(lines)
    by_period: dict[int, list[PeriodCost]] = {}
    for c in charge.periods:
        by_period.setdefault(c.period, []).append(c)
    for index, items in sorted(by_period.items()):
        start = s.charging_periods[index].start if s.charging_periods else s.started_at
        zone_start = start
        if charge.time_zone is not None:
            zone_start = start.astimezone(to_tzinfo("time_zone", charge.time_zone))
        lines.append(f"Period {index + 1} from {zone_start:%a %Y-%m-%d %H:%M:%S %Z}:")
        for c in items:
            if c.dimension in _FLATS:
                lines.append(
                    f"  {c.dimension.value}: element {c.element + 1}, "
                    f"{_component_text(c.component, currency)} = {_num(c.amount)} micros"
                )
            else:
                lines.append(
                    f"  {c.dimension.value}: {_num(c.volume)} {c.dimension.unit} at "
                    f"{_component_text(c.component, currency)} (element {c.element + 1}) "
                    f"= {_num(c.amount)} micros"
                )
    lines.append("Dimensions:")
    for d in charge.dimensions:
        text = f"  {d.dimension.value}: "
        if d.step_size is None:
            text += (
                f"{_num(d.volume)} {d.dimension.unit} (not rounded to a step)"
                if d.dimension not in _FLATS
                else "flat fee"
            )
        else:
            text += (
                f"{_num(d.volume)} {d.dimension.unit}, step {d.step_size:,} "
                f"(element {(d.step_element or 0) + 1}, the last used) -> "
                f"{_num(d.billed_volume)} {d.dimension.unit} billed"
            )
            if d.step_amount:
                text += f", {_num(d.step_amount)} micros for the rest of the step"
        incl = "unknown" if d.amount_incl_vat is None else f"{_num(d.amount_incl_vat)}"
        lines.append(text + f"; {_num(d.amount)} micros (incl. VAT {incl})")
    lines.extend(f"Note: {n}" for n in charge.notes)
    assert charge.exact_micros is not None
    assert charge.cost_micros is not None
    quantum, mode = charge.quantum_micros, charge.rounding
    for side, exact, cost in (
        ("excl. VAT", charge.exact_micros, charge.cost_micros),
        ("incl. VAT", charge.exact_incl_vat_micros, charge.cost_incl_vat_micros),
    ):
        if exact is None or cost is None:
            lines.append(f"Total {side}: unknown (a component that costs something names no VAT)")
            continue
        rounded = round_micros(exact, quantum=quantum, mode=mode)
        text = f"Total {side}: exact {_num(exact)} micros, rounded once to {rounded:,}"
        if cost > rounded:
            text += f", minimum price applied: {cost:,}"
        elif cost < rounded:
            text += f", maximum price applied: {cost:,}"
        lines.append(text)
    cost_line = f"Cost: {_money_text(charge.cost_micros, currency)} excl. VAT"
    if charge.cost_incl_vat_micros is not None:
        cost_line += f", {_money_text(charge.cost_incl_vat_micros, currency)} incl. VAT"
    lines.append(cost_line)
    return "\n".join(lines)
