"""cdrrating: exact, explainable rating of call detail records.

The public names are re-exported here; implementation lives in modules named for what
they hold (``money``, ``cdr``, ``rates``, ``plan``, ``rating``). Importing this package
imports no optional dependency.
"""

import logging
from importlib.metadata import PackageNotFoundError, version

from cdrrating._rules import normalise_number
from cdrrating.batch import BatchResult, CostChange, DestinationTotal, RowError
from cdrrating.cdr import CDR, Direction, Disposition
from cdrrating.charge import BandSegment, Charge, ChargeStatus, Reason
from cdrrating.charging import (
    CdrDimension,
    ChargingPeriod,
    ChargingSession,
    DimensionType,
    SessionAuth,
    SessionLocation,
)
from cdrrating.errors import (
    CdrRatingError,
    Conflict,
    NotFound,
    PlanError,
    StorageError,
    ValidationError,
)
from cdrrating.money import MICROS_PER_UNIT, Rounding, format_micros, round_micros, to_micros
from cdrrating.plan import Finding, RatePlan
from cdrrating.rates import Rate, RateStatus, Tier, parse_increment
from cdrrating.rating import Rater, rate
from cdrrating.schedule import BandPolicy, Schedule
from cdrrating.tariffs import (
    PriceComponent,
    SessionBatchResult,
    SessionCharge,
    SessionChargeStatus,
    StepPolicy,
    Tariff,
    TariffElement,
    TariffPrice,
    TariffRestrictions,
    UnpricedReason,
    price_session,
    price_sessions,
)

# The library logs what a host may want to see (rows rejected, batches stored, retries)
# under "cdrrating"; it stays silent until the host configures logging.
logging.getLogger("cdrrating").addHandler(logging.NullHandler())

try:
    __version__ = version("cdrrating")
except PackageNotFoundError:  # running from a source tree that was not installed
    from cdrrating._version import __version__

__all__ = [
    "CDR",
    "MICROS_PER_UNIT",
    "BandPolicy",
    "BandSegment",
    "BatchResult",
    "CdrDimension",
    "CdrRatingError",
    "Charge",
    "ChargeStatus",
    "ChargingPeriod",
    "ChargingSession",
    "Conflict",
    "CostChange",
    "DestinationTotal",
    "DimensionType",
    "Direction",
    "Disposition",
    "Finding",
    "NotFound",
    "PlanError",
    "PriceComponent",
    "Rate",
    "RatePlan",
    "RateStatus",
    "Rater",
    "Reason",
    "Rounding",
    "RowError",
    "Schedule",
    "SessionAuth",
    "SessionBatchResult",
    "SessionCharge",
    "SessionChargeStatus",
    "SessionLocation",
    "StepPolicy",
    "StorageError",
    "Tariff",
    "TariffElement",
    "TariffPrice",
    "TariffRestrictions",
    "Tier",
    "UnpricedReason",
    "ValidationError",
    "__version__",
    "format_micros",
    "normalise_number",
    "parse_increment",
    "price_session",
    "price_sessions",
    "rate",
    "round_micros",
    "to_micros",
]
