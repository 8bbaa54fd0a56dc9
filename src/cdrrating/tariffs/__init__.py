"""OCPI 2.2.1 tariffs and the exact price of an EV-charging session.

A :class:`Tariff` is a list of :class:`TariffElement`; each element has price components
(``ENERGY`` per kWh, ``TIME`` and ``PARKING_TIME`` per hour, ``FLAT`` once) and may be
restricted (time of day, dates, weekdays, energy, current, power, duration,
reservation). :func:`price_session` prices a :class:`~cdrrating.charging.ChargingSession`
with one: every amount is summed exactly (fractions of a micro-unit kept), then rounded
**once** to the currency's quantum, then the tariff's minimum and maximum price apply.
Prices are excluding VAT; the price including VAT is summed from each component's own
VAT rate and rounded once on its own.

How the OCPI text is read where it is silent or says two things is set out in
``docs/charging.md`` ("Readings of the specification"); each reading is stated again at
the code that implements it.
"""

from __future__ import annotations

# "X as X" re-exports the module attributes that are public but not in __all__.
from cdrrating.tariffs._batch import SessionBatchResult, price_sessions
from cdrrating.tariffs._batch import TariffSource as TariffSource
from cdrrating.tariffs._charge import (
    CostDimension,
    DimensionCost,
    PeriodCost,
    SessionCharge,
    SessionChargeStatus,
    StepPolicy,
    UnpricedReason,
)
from cdrrating.tariffs._model import MAX_COMPONENTS as MAX_COMPONENTS
from cdrrating.tariffs._model import MAX_ELEMENTS as MAX_ELEMENTS
from cdrrating.tariffs._model import (
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
from cdrrating.tariffs._pricing import currency_quantum, price_session

__all__ = [
    "CostDimension",
    "DayOfWeek",
    "DimensionCost",
    "PeriodCost",
    "PriceComponent",
    "ReservationRestrictionType",
    "SessionBatchResult",
    "SessionCharge",
    "SessionChargeStatus",
    "StepPolicy",
    "Tariff",
    "TariffDimensionType",
    "TariffElement",
    "TariffPrice",
    "TariffRestrictions",
    "TariffType",
    "UnpricedReason",
    "currency_quantum",
    "price_session",
    "price_sessions",
]
