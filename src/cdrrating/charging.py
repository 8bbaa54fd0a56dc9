"""EV-charging sessions: one charging session as a charge point operator reports it.

Two shapes of outside data are read and written: the OCPI 2.2.1 CDR object (snake_case:
``start_date_time``, ``cdr_token``, ``cdr_location``, ``charging_periods``, ...) and
the camelCase shape of session-listing APIs (``startedAt``, ``consumed`` in Wh,
``location.isPublic``, ...). Both become one :class:`ChargingSession`.

Quantities that OCPI writes as JSON numbers (kWh, hours, amperes) are exact
:class:`~decimal.Decimal` values here. Floats are refused, as everywhere in this
library: read JSON with ``json.loads(text, parse_float=decimal.Decimal)``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from types import MappingProxyType
from typing import Any, Literal

import attrs

from cdrrating._enum import EnumParser
from cdrrating._rules import instant
from cdrrating._validate import (
    MAX_INT64,
    check_aware,
    check_int,
    check_str,
    parse_timestamp,
    parse_whole,
)
from cdrrating.errors import ValidationError
from cdrrating.money import MAX_MICROS, MICROS_PER_UNIT, parse_decimal, to_micros

__all__ = [
    "SIGNED_DIMENSIONS",
    "CdrDimension",
    "ChargingPeriod",
    "ChargingSession",
    "DimensionType",
    "SessionAuth",
    "SessionLocation",
    "SessionShape",
    "parse_quantity",
]

#: The shapes :meth:`ChargingSession.from_mapping` reads and :meth:`~ChargingSession.to_mapping`
#: writes: ``"ocpi"`` (an OCPI 2.2.1 CDR object) or ``"list"`` (camelCase listing APIs).
SessionShape = Literal["ocpi", "list"]

#: Limits that keep the work per session small whatever the input.
MAX_PERIODS = 10_000
MAX_TARIFF_IDS = 100
_MAX_ID = 255
_MAX_EXTRA_DEPTH = 16
_MAX_EXTRA_ITEMS = 10_000
#: Quantities (kWh, hours, A, kW, %) are refused from here on: far beyond any session.
MAX_QUANTITY = Decimal(10) ** 9
_MAX_QUANTITY_PLACES = 12
_CURRENCY = re.compile(r"[A-Z]{3}")


class DimensionType(enum.StrEnum):
    """What a charging period measured (OCPI 2.2.1 ``CdrDimensionType``).

    Units, as OCPI writes them: ``ENERGY``, ``ENERGY_EXPORT``, ``ENERGY_IMPORT`` in kWh;
    ``TIME``, ``PARKING_TIME``, ``RESERVATION_TIME`` in hours; ``CURRENT``,
    ``MAX_CURRENT``, ``MIN_CURRENT`` in A; ``POWER``, ``MAX_POWER``, ``MIN_POWER`` in kW;
    ``STATE_OF_CHARGE`` in percent.
    """

    CURRENT = "CURRENT"
    ENERGY = "ENERGY"
    ENERGY_EXPORT = "ENERGY_EXPORT"
    ENERGY_IMPORT = "ENERGY_IMPORT"
    MAX_CURRENT = "MAX_CURRENT"
    MIN_CURRENT = "MIN_CURRENT"
    MAX_POWER = "MAX_POWER"
    MIN_POWER = "MIN_POWER"
    PARKING_TIME = "PARKING_TIME"
    POWER = "POWER"
    RESERVATION_TIME = "RESERVATION_TIME"
    STATE_OF_CHARGE = "STATE_OF_CHARGE"
    TIME = "TIME"

    @classmethod
    def parse(cls, value: DimensionType | str, field: str = "type") -> DimensionType:
        return _PARSE_DIMENSION(value, field)


_PARSE_DIMENSION = EnumParser(DimensionType)


def _to_dimension_type(value: Any) -> DimensionType:
    return _PARSE_DIMENSION(value, "type")


def _as_tuple(value: Any) -> Any:
    # Lists become tuples; anything else is left for the validator to name.
    return tuple(value) if isinstance(value, list | tuple) else value


def parse_quantity(field: str, value: Any, *, signed: bool = False) -> Decimal:
    """An exact, finite quantity (kWh, hours, A, kW, %) from a Decimal, an int or decimal
    text; at least 0 unless ``signed``. Floats are refused with the way to pass the value
    instead."""
    if isinstance(value, bool):
        raise ValidationError(field, value, "a decimal quantity, not a bool")
    if isinstance(value, float):
        raise ValidationError(
            field,
            value,
            f"an exact decimal: pass Decimal({str(value)!r}) or the string {str(value)!r}, "
            "not a float (read JSON with json.loads(text, parse_float=decimal.Decimal))",
        )
    if isinstance(value, int):
        dec = Decimal(value) if -MAX_QUANTITY < value < MAX_QUANTITY else Decimal("Infinity")
    elif isinstance(value, str):
        dec = parse_decimal(value, field=field)
    elif isinstance(value, Decimal):
        dec = value
    else:
        raise ValidationError(field, value, "a Decimal, a decimal string or an int")
    if not dec.is_finite() or (not dec.is_zero() and dec.adjusted() >= 9):
        raise ValidationError(field, value, f"a finite quantity below {MAX_QUANTITY:,}")
    if dec < 0 and not signed:
        raise ValidationError(field, value, "a quantity >= 0")
    exponent = dec.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    if not dec.is_zero() and exponent < -_MAX_QUANTITY_PLACES:
        normal = dec.normalize()
        places = normal.as_tuple().exponent
        assert isinstance(places, int)
        if places < -_MAX_QUANTITY_PLACES:
            raise ValidationError(field, value, f"at most {_MAX_QUANTITY_PLACES} decimal places")
        dec = normal
    # Zero in one form: 0E+5 and 0.000 are both plain 0.
    return Decimal(0) if dec.is_zero() else dec


#: Dimensions whose volume may be negative: OCPI 2.2.1 writes current and power flowing
#: from the EV to the grid as negative values.
SIGNED_DIMENSIONS = frozenset(
    {
        DimensionType.CURRENT,
        DimensionType.MAX_CURRENT,
        DimensionType.MIN_CURRENT,
        DimensionType.POWER,
        DimensionType.MAX_POWER,
        DimensionType.MIN_POWER,
    }
)


@attrs.frozen
class CdrDimension:
    """One measured value of a charging period: ``volume`` in the unit of ``type``
    (exact; at least 0 except for current and power, which are negative when flowing
    from the EV to the grid)."""

    type: DimensionType = attrs.field(converter=_to_dimension_type)
    volume: Decimal = attrs.field()

    @volume.validator
    def _check_volume(self, _attr: Any, value: Any) -> None:
        if not isinstance(value, Decimal):
            raise ValidationError("volume", value, "a Decimal (use parse_quantity for text)")
        parse_quantity("volume", value, signed=self.type in SIGNED_DIMENSIONS)


def _check_opt_str(field: str, max_len: int = _MAX_ID) -> Any:
    def check(_inst: Any, _attr: Any, value: Any) -> None:
        if value is not None:
            check_str(field, value, max_len=max_len)

    return check


def _check_dimensions(_inst: Any, _attr: Any, value: Any) -> None:
    if not isinstance(value, tuple) or not value:
        raise ValidationError("dimensions", value, "a non-empty tuple of CdrDimension")
    seen: set[DimensionType] = set()
    for n, dim in enumerate(value):
        if not isinstance(dim, CdrDimension):
            raise ValidationError(f"dimensions[{n}]", dim, "a CdrDimension")
        if dim.type in seen:
            # Pricing reads one volume per type: two would leave it to guess.
            raise ValidationError(
                f"dimensions[{n}].type", dim.type.value, "each dimension type once per period"
            )
        seen.add(dim.type)


@attrs.frozen
class ChargingPeriod:
    """A part of a session from ``start`` to the next period's start (or the session's
    end) with constant measured values, priced by one tariff element (OCPI
    ``ChargingPeriod``)."""

    start: datetime = attrs.field(validator=lambda _i, _a, v: check_aware("start", v))
    dimensions: tuple[CdrDimension, ...] = attrs.field(
        converter=_as_tuple, validator=_check_dimensions
    )
    tariff_id: str | None = attrs.field(default=None, validator=_check_opt_str("tariff_id", 36))

    def volume(self, dimension: DimensionType | str) -> Decimal | None:
        """The volume of one dimension type in this period, or None if not measured."""
        kind = DimensionType.parse(dimension, "dimension")
        for dim in self.dimensions:
            if dim.type is kind:
                return dim.volume
        return None


@attrs.frozen(kw_only=True)
class SessionLocation:
    """Where the session took place. ``time_zone`` is an IANA name such as
    ``"Europe/Berlin"``; tariff restrictions on the time of day are read in it."""

    id: str | None = attrs.field(default=None, validator=_check_opt_str("location.id"))
    country: str | None = attrs.field(default=None, validator=_check_opt_str("location.country"))
    type: str | None = attrs.field(default=None, validator=_check_opt_str("location.type"))
    public: bool | None = attrs.field(default=None)
    time_zone: str | None = attrs.field(
        default=None, validator=_check_opt_str("location.time_zone", 64)
    )

    @public.validator
    def _check_public(self, _attr: Any, value: Any) -> None:
        if value is not None and not isinstance(value, bool):
            raise ValidationError("location.public", value, "a bool or None")


@attrs.frozen(kw_only=True)
class SessionAuth:
    """Who authorised the session: the token's ``uid``, its ``type`` (``RFID``,
    ``APP_USER``, ...) and the eMSP's ``contract_id``."""

    uid: str | None = attrs.field(default=None, validator=_check_opt_str("auth.uid"))
    type: str | None = attrs.field(default=None, validator=_check_opt_str("auth.type"))
    contract_id: str | None = attrs.field(
        default=None, validator=_check_opt_str("auth.contract_id")
    )


def _check_currency(_inst: Any, _attr: Any, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not _CURRENCY.fullmatch(value)):
        raise ValidationError("currency", value, "an ISO 4217 code of 3 capital letters, or None")


def _check_opt_micros(field: str) -> Any:
    def check(_inst: Any, _attr: Any, value: Any) -> None:
        if value is not None:
            check_int(field, value, minimum=-MAX_MICROS, maximum=MAX_MICROS)

    return check


def _check_opt_seconds(field: str) -> Any:
    def check(_inst: Any, _attr: Any, value: Any) -> None:
        if value is not None:
            check_int(field, value, minimum=0, maximum=_MAX_SESSION_SECONDS)

    return check


#: Whole seconds beyond this are refused: about 31 years.
_MAX_SESSION_SECONDS = 10**9


def _check_periods(_inst: Any, _attr: Any, value: Any) -> None:
    if not isinstance(value, tuple):
        raise ValidationError("charging_periods", value, "a tuple of ChargingPeriod")
    if len(value) > MAX_PERIODS:
        raise ValidationError(
            "charging_periods", f"{len(value)} periods", f"at most {MAX_PERIODS:,} periods"
        )
    for n, period in enumerate(value):
        if not isinstance(period, ChargingPeriod):
            raise ValidationError(f"charging_periods[{n}]", period, "a ChargingPeriod")


def _check_tariff_ids(_inst: Any, _attr: Any, value: Any) -> None:
    if not isinstance(value, tuple) or len(value) > MAX_TARIFF_IDS:
        raise ValidationError("tariff_ids", value, f"a tuple of at most {MAX_TARIFF_IDS} str")
    for n, tid in enumerate(value):
        check_str(f"tariff_ids[{n}]", tid, max_len=36, non_empty=True)


def freeze_json(field: str, value: Any, depth: int = 0) -> Any:
    """A JSON-like value made immutable: mappings (str keys) become read-only mappings,
    lists become tuples; str, int, bool, None, Decimal and float are kept."""
    if depth > _MAX_EXTRA_DEPTH:
        raise ValidationError(
            field, "...", f"JSON-like data nested at most {_MAX_EXTRA_DEPTH} deep"
        )
    if value is None or isinstance(value, str | bool | int | float | Decimal):
        return value
    if isinstance(value, Mapping):
        if len(value) > _MAX_EXTRA_ITEMS:
            raise ValidationError(field, f"{len(value)} keys", f"at most {_MAX_EXTRA_ITEMS:,}")
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValidationError(field, key, "JSON-like data: mapping keys are str")
            out[key] = freeze_json(f"{field}.{key}", item, depth + 1)
        return MappingProxyType(out)
    if isinstance(value, list | tuple):
        if len(value) > _MAX_EXTRA_ITEMS:
            raise ValidationError(field, f"{len(value)} items", f"at most {_MAX_EXTRA_ITEMS:,}")
        return tuple(freeze_json(f"{field}[{n}]", item, depth + 1) for n, item in enumerate(value))
    raise ValidationError(
        field, value, "JSON-like data: mappings, lists, str, numbers, bool or None"
    )


def thaw_json(value: Any) -> Any:
    """The inverse of :func:`freeze_json`: plain dicts and lists, for writing JSON."""
    if isinstance(value, Mapping):
        return {k: thaw_json(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thaw_json(v) for v in value]
    return value


def _freeze_extra(value: Any) -> Mapping[str, Any]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise ValidationError("extra", value, "a mapping of str keys to JSON-like values")
    frozen = freeze_json("extra", value)
    assert isinstance(frozen, MappingProxyType)
    return frozen


def _ended_default(self: Any) -> bool:
    return getattr(self, "ended_at", None) is None


@attrs.frozen(kw_only=True)
class ChargingSession:
    """One EV-charging session. Immutable; build it from outside data with
    :meth:`from_mapping`.

    Invariants checked at construction: every instant timezone-aware; ``ongoing`` exactly
    when ``ended_at`` is None; ``started_at <= ended_at``; charging periods in time
    order, none before ``started_at`` nor after ``ended_at``. ``cost_micros`` is the
    cost the operator reported (excluding VAT for OCPI data), never computed here.
    """

    id: str = attrs.field(
        validator=lambda _i, _a, v: check_str("id", v, max_len=_MAX_ID, non_empty=True)
    )
    started_at: datetime = attrs.field(validator=lambda _i, _a, v: check_aware("started_at", v))
    ended_at: datetime | None = attrs.field(
        default=None, validator=lambda _i, _a, v: check_aware("ended_at", v, optional=True)
    )
    ongoing: bool = attrs.field(default=attrs.Factory(_ended_default, takes_self=True))
    energy_wh: int = attrs.field(
        default=0, validator=lambda _i, _a, v: check_int("energy_wh", v, maximum=MAX_INT64)
    )
    charging_seconds: int | None = attrs.field(
        default=None, validator=_check_opt_seconds("charging_seconds")
    )
    parking_seconds: int | None = attrs.field(
        default=None, validator=_check_opt_seconds("parking_seconds")
    )
    location: SessionLocation = attrs.field(factory=SessionLocation)
    evse_id: str | None = attrs.field(default=None, validator=_check_opt_str("evse_id"))
    charge_box_id: str | None = attrs.field(default=None, validator=_check_opt_str("charge_box_id"))
    session_id: str | None = attrs.field(default=None, validator=_check_opt_str("session_id"))
    auth: SessionAuth = attrs.field(factory=SessionAuth)
    operator_id: str | None = attrs.field(default=None, validator=_check_opt_str("operator_id"))
    company_id: str | None = attrs.field(default=None, validator=_check_opt_str("company_id"))
    roaming: bool = attrs.field(default=False)
    currency: str | None = attrs.field(default=None, validator=_check_currency)
    cost_micros: int | None = attrs.field(default=None, validator=_check_opt_micros("cost_micros"))
    cost_incl_vat_micros: int | None = attrs.field(
        default=None, validator=_check_opt_micros("cost_incl_vat_micros")
    )
    updated_at: datetime = attrs.field(validator=lambda _i, _a, v: check_aware("updated_at", v))
    charging_periods: tuple[ChargingPeriod, ...] = attrs.field(
        default=(), converter=_as_tuple, validator=_check_periods
    )
    tariff_ids: tuple[str, ...] = attrs.field(
        default=(), converter=_as_tuple, validator=_check_tariff_ids
    )
    extra: Mapping[str, Any] = attrs.field(
        factory=dict, converter=_freeze_extra, hash=False, repr=False
    )

    @updated_at.default
    def _updated_default(self) -> datetime:
        # A session built in code was last updated when it ended (or started).
        return self.ended_at if self.ended_at is not None else self.started_at

    def __attrs_post_init__(self) -> None:
        for name in ("ongoing", "roaming"):
            if not isinstance(getattr(self, name), bool):
                raise ValidationError(name, getattr(self, name), "a bool")
        if not isinstance(self.location, SessionLocation):
            raise ValidationError("location", self.location, "a SessionLocation")
        if not isinstance(self.auth, SessionAuth):
            raise ValidationError("auth", self.auth, "a SessionAuth")
        if self.ongoing != (self.ended_at is None):
            raise ValidationError(
                "ongoing",
                self.ongoing,
                "True exactly when ended_at is None (an ended session has an end)",
            )
        start = instant(self.started_at)
        end = instant(self.ended_at) if self.ended_at is not None else None
        if end is not None and end < start:
            raise ValidationError(
                "ended_at", self.ended_at, f"not before started_at ({self.started_at.isoformat()})"
            )
        previous = start
        for n, period in enumerate(self.charging_periods):
            at = instant(period.start)
            if at < previous:
                raise ValidationError(
                    f"charging_periods[{n}].start",
                    period.start,
                    "periods in time order, none before started_at"
                    + (f" ({self.started_at.isoformat()})" if n == 0 else ""),
                )
            if end is not None and at > end:
                raise ValidationError(
                    f"charging_periods[{n}].start",
                    period.start,
                    f"not after ended_at ({self.ended_at.isoformat() if self.ended_at else ''})",
                )
            previous = at

    # -- derived ---------------------------------------------------------------------

    def period_end(self, index: int) -> datetime | None:
        """Where period ``index`` ends: the next period's start, else the session's end
        (None while the session is ongoing)."""
        if index + 1 < len(self.charging_periods):
            return self.charging_periods[index + 1].start
        return self.ended_at

    def total(self, dimension: DimensionType | str) -> Decimal:
        """The sum of one dimension's volumes over all periods (0 if never measured)."""
        kind = DimensionType.parse(dimension, "dimension")
        total = Decimal(0)
        for period in self.charging_periods:
            volume = period.volume(kind)
            if volume is not None:
                total += volume
        return total

    # -- edges -----------------------------------------------------------------------

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, shape: SessionShape | Literal["auto"] = "auto"
    ) -> ChargingSession:
        """Build a session from an OCPI 2.2.1 CDR object (``shape="ocpi"``) or the camelCase
        shape of session-listing APIs (``shape="list"``); ``"auto"`` tells them apart by
        their keys (``start_date_time`` against ``startedAt``).

        Keys the session has no field for are kept in ``extra`` (nested leftovers under
        their object's key, e.g. ``extra["cdr_location"]["evse_uid"]``), and written back
        by :meth:`to_mapping`. Errors name the field by its dotted path as the data wrote
        it (``charging_periods[2].dimensions[0].volume``).

        Numbers must be exact (``Decimal``, ``int`` or decimal text): read JSON with
        ``json.loads(text, parse_float=decimal.Decimal)``.
        """
        if not isinstance(data, Mapping):
            raise ValidationError("data", data, "a mapping (a JSON object)")
        if shape == "auto":
            shape = _detect_shape(data)
        if shape == "ocpi":
            return _from_ocpi(cls, data)
        if shape == "list":
            return _from_list(cls, data)
        raise ValidationError("shape", shape, "'ocpi', 'list' or 'auto'")

    def to_mapping(self, shape: SessionShape = "ocpi") -> dict[str, Any]:
        """The inverse of :meth:`from_mapping` for one shape: plain dicts and lists, ISO
        8601 timestamps, exact ``Decimal`` numbers (write JSON with a default that turns
        a Decimal into its text, e.g. ``default=str``). ``from_mapping(s.to_mapping(shape),
        shape=shape) == s`` for every session ``s``."""
        if shape == "ocpi":
            return _to_ocpi(self)
        if shape == "list":
            return _to_list(self)
        raise ValidationError("shape", shape, "'ocpi' or 'list'")


# -- reading ---------------------------------------------------------------------------------

# The start of a session is the one key each shape requires.
_OCPI_MARKERS = ("start_date_time",)
_LIST_MARKERS = ("startedAt",)


def _detect_shape(data: Mapping[str, Any]) -> SessionShape:
    ocpi = any(k in data for k in _OCPI_MARKERS)
    listed = any(k in data for k in _LIST_MARKERS)
    if ocpi and not listed:
        return "ocpi"
    if listed and not ocpi:
        return "list"
    raise ValidationError(
        "shape",
        "auto",
        "data with either start_date_time (an OCPI CDR) or startedAt (a list-API "
        "session), or shape='ocpi' / shape='list' named",
    )


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(field: str, value: Any, max_len: int = _MAX_ID) -> str | None:
    if _blank(value):
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # an id written as a JSON number
    return check_str(field, value, max_len=max_len)


def _obj(field: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(field, value, "an object (a mapping)")
    return dict(value)


def _bool(field: str, value: Any) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise ValidationError(field, value, "true or false")
    return value


def _instant(field: str, value: Any, *, required: bool) -> datetime | None:
    # OCPI DateTime is UTC; a text without an offset is read as UTC.
    dt = parse_timestamp(field, value, UTC)
    if dt is None and required:
        raise ValidationError(field, value, "a date-time such as 2015-06-29T20:39:09Z")
    return dt


def _hours_to_seconds(field: str, value: Any) -> int | None:
    if value is None:
        return None
    hours = parse_quantity(field, value)
    seconds = (hours * 3600).to_integral_value(rounding=ROUND_HALF_EVEN)
    return parse_whole(field, seconds, maximum=_MAX_SESSION_SECONDS, what="hours")


def _seconds_to_hours(seconds: int) -> Decimal:
    # OCPI numbers carry at most 4 decimals: 0.0001 h is 0.36 s, so reading the hours
    # back and rounding to the second gives the same seconds.
    return (Decimal(seconds) / 3600).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)


def _kwh_to_wh(field: str, value: Any) -> int:
    kwh = parse_quantity(field, value)
    wh = (kwh * 1000).to_integral_value(rounding=ROUND_HALF_EVEN)
    return parse_whole(field, wh, maximum=MAX_INT64, what="kWh")


def _wh_to_kwh(wh: int) -> Decimal:
    return Decimal(wh) / 1000


def _money(field: str, value: Any) -> int | None:
    if _blank(value):
        return None
    if isinstance(value, float):
        raise ValidationError(
            field,
            value,
            f"an exact decimal: pass Decimal({str(value)!r}) or the string {str(value)!r}, "
            "not a float (read JSON with json.loads(text, parse_float=decimal.Decimal))",
        )
    return to_micros(value.strip() if isinstance(value, str) else value, field=field)


def _micros_to_decimal(micros: int) -> Decimal:
    return (Decimal(micros) / MICROS_PER_UNIT).normalize() if micros else Decimal(0)


def _currency(field: str, value: Any) -> str | None:
    if _blank(value):
        return None
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value.strip().upper()):
        raise ValidationError(field, value, "an ISO 4217 code of 3 letters such as 'EUR'")
    return value.strip().upper()


def _periods(field: str, value: Any) -> tuple[ChargingPeriod, ...]:
    if value is None:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise ValidationError(field, value, "a list of charging periods")
    if len(value) > MAX_PERIODS:
        raise ValidationError(field, f"{len(value)} periods", f"at most {MAX_PERIODS:,} periods")
    out = []
    for n, raw in enumerate(value):
        where = f"{field}[{n}]"
        period = _obj(where, raw)
        start = _instant(f"{where}.start_date_time", period.get("start_date_time"), required=True)
        dims_raw = period.get("dimensions")
        if not isinstance(dims_raw, Sequence) or isinstance(dims_raw, str | bytes) or not dims_raw:
            raise ValidationError(f"{where}.dimensions", dims_raw, "a non-empty list of dimensions")
        if len(dims_raw) > 2 * len(DimensionType):
            raise ValidationError(
                f"{where}.dimensions", f"{len(dims_raw)} items", "each dimension type once"
            )
        dims = []
        for m, raw_dim in enumerate(dims_raw):
            at = f"{where}.dimensions[{m}]"
            dim = _obj(at, raw_dim)
            kind = _PARSE_DIMENSION(dim.get("type"), f"{at}.type")
            dims.append(
                CdrDimension(
                    kind,
                    parse_quantity(
                        f"{at}.volume", dim.get("volume"), signed=kind in SIGNED_DIMENSIONS
                    ),
                )
            )
        assert start is not None  # required=True
        try:
            out.append(
                ChargingPeriod(
                    start,
                    tuple(dims),
                    _text(f"{where}.tariff_id", period.get("tariff_id"), 36),
                )
            )
        except ValidationError as e:
            raise ValidationError(f"{where}.{e.field}", e.value, e.expected) from None
    return tuple(out)


def _periods_out(periods: tuple[ChargingPeriod, ...]) -> list[dict[str, Any]]:
    out = []
    for p in periods:
        item: dict[str, Any] = {
            "start_date_time": _ocpi_time(p.start),
            "dimensions": [{"type": d.type.value, "volume": d.volume} for d in p.dimensions],
        }
        if p.tariff_id is not None:
            item["tariff_id"] = p.tariff_id
        out.append(item)
    return out


def _iso(dt: datetime) -> str:
    return dt.isoformat()


def _ocpi_time(dt: datetime) -> str:
    # OCPI 2.2.1 DateTime: RFC 3339 in UTC, written with "Z".
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _build(cls: type[ChargingSession], values: dict[str, Any], paths: Mapping[str, str]) -> Any:
    try:
        return cls(**values)
    except ValidationError as e:
        # Said of the key as the data wrote it (startedAt, cdr_location.country).
        head = e.field.split("[", 1)[0]
        path = paths.get(head)
        if path is None:
            raise
        rest = e.field[len(head) :]
        if rest.endswith(".start"):
            rest += "_date_time"
        raise ValidationError(path + rest, e.value, e.expected) from None


def _leftovers(obj: Mapping[str, Any], used: Sequence[str]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in used}


# OCPI: the CDR keys read into fields; what remains goes to extra as it was written.
_OCPI_TOP = (
    "id",
    "start_date_time",
    "end_date_time",
    "session_id",
    "cdr_token",
    "cdr_location",
    "currency",
    "tariffs",
    "charging_periods",
    "total_cost",
    "total_energy",
    "total_time",
    "total_parking_time",
    "last_updated",
    "party_id",
    # Fields OCPI has no key for, written only when they are set.
    "ongoing",
    "roaming",
    "charge_box_id",
    "company_id",
    "location_type",
    "location_public",
    "location_time_zone",
)
_OCPI_TOKEN = ("uid", "type", "contract_id")
_OCPI_LOCATION = ("id", "country", "evse_id")
_OCPI_COST = ("excl_vat", "incl_vat")

_OCPI_PATHS = {
    "id": "id",
    "started_at": "start_date_time",
    "ended_at": "end_date_time",
    "ongoing": "ongoing",
    "energy_wh": "total_energy",
    "charging_seconds": "total_time",
    "parking_seconds": "total_parking_time",
    "evse_id": "cdr_location.evse_id",
    "session_id": "session_id",
    "operator_id": "party_id",
    "currency": "currency",
    "cost_micros": "total_cost.excl_vat",
    "cost_incl_vat_micros": "total_cost.incl_vat",
    "updated_at": "last_updated",
    "charging_periods": "charging_periods",
    "tariff_ids": "tariffs",
}


def _from_ocpi(cls: type[ChargingSession], data: Mapping[str, Any]) -> ChargingSession:
    token = _obj("cdr_token", data.get("cdr_token"))
    where = _obj("cdr_location", data.get("cdr_location"))
    cost = _obj("total_cost", data.get("total_cost"))
    extra = _leftovers(data, _OCPI_TOP)
    for key, obj, used in (
        ("cdr_token", token, _OCPI_TOKEN),
        ("cdr_location", where, _OCPI_LOCATION),
        ("total_cost", cost, _OCPI_COST),
    ):
        rest = _leftovers(obj, used)
        if rest:
            extra[key] = rest
    started = _instant("start_date_time", data.get("start_date_time"), required=True)
    ended = _instant("end_date_time", data.get("end_date_time"), required=False)
    total_s = _hours_to_seconds("total_time", data.get("total_time"))
    parking_s = _hours_to_seconds("total_parking_time", data.get("total_parking_time"))
    charging_s = total_s
    if total_s is not None and parking_s is not None:
        if parking_s > total_s:
            raise ValidationError(
                "total_parking_time", data.get("total_parking_time"), "at most total_time"
            )
        charging_s = total_s - parking_s
    tariff_ids, full_tariffs = _tariff_refs("tariffs", data.get("tariffs"))
    if full_tariffs:
        extra["tariffs"] = data.get("tariffs")
    energy = data.get("total_energy")
    ongoing = _bool("ongoing", data.get("ongoing"))
    roaming = _bool("roaming", data.get("roaming"))
    values: dict[str, Any] = {
        "id": _text("id", data.get("id")),
        "started_at": started,
        "ended_at": ended,
        "energy_wh": 0 if energy is None else _kwh_to_wh("total_energy", energy),
        "charging_seconds": charging_s,
        "parking_seconds": parking_s,
        "location": _location(
            {
                "id": _text("cdr_location.id", where.get("id")),
                "country": _text("cdr_location.country", where.get("country")),
                "type": _text("location_type", data.get("location_type")),
                "public": _bool("location_public", data.get("location_public")),
                "time_zone": _text("location_time_zone", data.get("location_time_zone"), 64),
            },
            {
                "location.id": "cdr_location.id",
                "location.country": "cdr_location.country",
                "location.type": "location_type",
                "location.public": "location_public",
                "location.time_zone": "location_time_zone",
            },
        ),
        "evse_id": _text("cdr_location.evse_id", where.get("evse_id")),
        "charge_box_id": _text("charge_box_id", data.get("charge_box_id")),
        "session_id": _text("session_id", data.get("session_id")),
        "auth": _auth(
            token.get("uid"),
            token.get("type"),
            token.get("contract_id"),
            ("cdr_token.uid", "cdr_token.type", "cdr_token.contract_id"),
        ),
        "operator_id": _text("party_id", data.get("party_id")),
        "company_id": _text("company_id", data.get("company_id")),
        # A CDR exchanged over OCPI crosses from an operator to a provider: roaming,
        # unless the data says otherwise.
        "roaming": True if roaming is None else roaming,
        "currency": _currency("currency", data.get("currency")),
        "cost_micros": _money("total_cost.excl_vat", cost.get("excl_vat")),
        "cost_incl_vat_micros": _money("total_cost.incl_vat", cost.get("incl_vat")),
        "updated_at": _instant("last_updated", data.get("last_updated"), required=True),
        "charging_periods": _periods("charging_periods", data.get("charging_periods")),
        "tariff_ids": tariff_ids,
        "extra": extra,
    }
    if ongoing is not None:
        values["ongoing"] = ongoing
    if values["id"] is None:
        raise ValidationError("id", data.get("id"), "a CDR id (a non-empty str)")
    return _build(cls, values, _OCPI_PATHS)  # type: ignore[no-any-return]


def _tariff_refs(field: str, value: Any) -> tuple[tuple[str, ...], bool]:
    """The tariff ids of an OCPI ``tariffs`` list (of Tariff objects, or of ids), and
    whether any entry holds more than its id (then the list is kept in extra)."""
    if value is None:
        return (), False
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise ValidationError(field, value, "a list of tariffs")
    if len(value) > MAX_TARIFF_IDS:
        raise ValidationError(field, f"{len(value)} tariffs", f"at most {MAX_TARIFF_IDS}")
    ids: list[str] = []
    full = False
    for n, item in enumerate(value):
        if isinstance(item, Mapping):
            tid = _text(f"{field}[{n}].id", item.get("id"), 36)
            full = full or set(item) != {"id"}
        else:
            tid = _text(f"{field}[{n}]", item, 36)
        if tid is None:
            raise ValidationError(f"{field}[{n}]", item, "a tariff with an id")
        ids.append(tid)
    return tuple(ids), full


def _location(values: dict[str, Any], paths: Mapping[str, str]) -> SessionLocation:
    try:
        return SessionLocation(**values)
    except ValidationError as e:
        raise ValidationError(paths.get(e.field, e.field), e.value, e.expected) from None


def _auth(uid: Any, kind: Any, contract: Any, paths: tuple[str, str, str]) -> SessionAuth:
    return SessionAuth(
        uid=_text(paths[0], uid),
        type=_text(paths[1], kind),
        contract_id=_text(paths[2], contract),
    )


def _to_ocpi(s: ChargingSession) -> dict[str, Any]:
    extra = {k: thaw_json(v) for k, v in s.extra.items()}
    out: dict[str, Any] = {}
    if s.operator_id is not None:
        out["party_id"] = s.operator_id
    out["id"] = s.id
    out["start_date_time"] = _ocpi_time(s.started_at)
    if s.ended_at is not None:
        out["end_date_time"] = _ocpi_time(s.ended_at)
    if s.session_id is not None:
        out["session_id"] = s.session_id
    token = {
        k: v
        for k, v in (
            ("uid", s.auth.uid),
            ("type", s.auth.type),
            ("contract_id", s.auth.contract_id),
        )
        if v is not None
    }
    out["cdr_token"] = {**_pop_obj(extra, "cdr_token"), **token}
    where = {
        k: v
        for k, v in (("id", s.location.id), ("country", s.location.country), ("evse_id", s.evse_id))
        if v is not None
    }
    out["cdr_location"] = {**_pop_obj(extra, "cdr_location"), **where}
    if s.currency is not None:
        out["currency"] = s.currency
    kept_tariffs = extra.pop("tariffs", None)
    if kept_tariffs is not None and _tariff_refs("tariffs", kept_tariffs)[0] == s.tariff_ids:
        out["tariffs"] = kept_tariffs
    elif s.tariff_ids:
        out["tariffs"] = [{"id": t} for t in s.tariff_ids]
    out["charging_periods"] = _periods_out(s.charging_periods)
    cost = _pop_obj(extra, "total_cost")
    if s.cost_micros is not None:
        cost["excl_vat"] = _micros_to_decimal(s.cost_micros)
    if s.cost_incl_vat_micros is not None:
        cost["incl_vat"] = _micros_to_decimal(s.cost_incl_vat_micros)
    if cost:
        out["total_cost"] = cost
    out["total_energy"] = _wh_to_kwh(s.energy_wh)
    if s.charging_seconds is not None:
        out["total_time"] = _seconds_to_hours(s.charging_seconds + (s.parking_seconds or 0))
    if s.parking_seconds is not None:
        out["total_parking_time"] = _seconds_to_hours(s.parking_seconds)
    out["last_updated"] = _ocpi_time(s.updated_at)
    if s.ended_at is None:
        out["ongoing"] = True
    if not s.roaming:
        out["roaming"] = False
    for key, value in (
        ("charge_box_id", s.charge_box_id),
        ("company_id", s.company_id),
        ("location_type", s.location.type),
        ("location_public", s.location.public),
        ("location_time_zone", s.location.time_zone),
    ):
        if value is not None:
            out[key] = value
    _merge_extra(out, extra)
    return out


# The list shape: camelCase keys.
_LIST_TOP = (
    "id",
    "sessionId",
    "operatorId",
    "company",
    "auth",
    "location",
    "isRoaming",
    "consumed",
    "evseId",
    "chargeBoxId",
    "startedAt",
    "endedAt",
    "updatedAt",
    "ongoing",
    "currency",
    "cost",
    "costInclVat",
    "chargingSeconds",
    "parkingSeconds",
    "chargingPeriods",
    "tariffIds",
)
_LIST_AUTH = ("idTag", "type", "contractId")
_LIST_LOCATION = ("id", "country", "isPublic", "type", "timeZone")

_LIST_PATHS = {
    "id": "id",
    "started_at": "startedAt",
    "ended_at": "endedAt",
    "ongoing": "ongoing",
    "energy_wh": "consumed",
    "charging_seconds": "chargingSeconds",
    "parking_seconds": "parkingSeconds",
    "evse_id": "evseId",
    "charge_box_id": "chargeBoxId",
    "session_id": "sessionId",
    "operator_id": "operatorId",
    "company_id": "company.id",
    "roaming": "isRoaming",
    "currency": "currency",
    "cost_micros": "cost",
    "cost_incl_vat_micros": "costInclVat",
    "updated_at": "updatedAt",
    "charging_periods": "chargingPeriods",
    "tariff_ids": "tariffIds",
}


def _from_list(cls: type[ChargingSession], data: Mapping[str, Any]) -> ChargingSession:
    auth = _obj("auth", data.get("auth"))
    tag = _obj("auth.idTag", auth.get("idTag"))
    where = _obj("location", data.get("location"))
    company = _obj("company", data.get("company"))
    extra = _leftovers(data, _LIST_TOP)
    for key, obj, used in (
        ("auth", auth, _LIST_AUTH),
        ("location", where, _LIST_LOCATION),
        ("company", company, ("id",)),
    ):
        rest = _leftovers(obj, used)
        if rest:
            extra[key] = rest
    tag_rest = _leftovers(tag, ("uid",))
    if tag_rest:
        extra.setdefault("auth", {})["idTag"] = tag_rest
    consumed = data.get("consumed")
    roaming = _bool("isRoaming", data.get("isRoaming"))
    ongoing = _bool("ongoing", data.get("ongoing"))
    tariff_ids, _ = _tariff_refs("tariffIds", data.get("tariffIds"))
    values: dict[str, Any] = {
        "id": _text("id", data.get("id")),
        "started_at": _instant("startedAt", data.get("startedAt"), required=True),
        "ended_at": _instant("endedAt", data.get("endedAt"), required=False),
        "energy_wh": 0
        if _blank(consumed)
        else parse_whole("consumed", consumed, maximum=MAX_INT64, what="whole Wh"),
        "charging_seconds": _opt_whole("chargingSeconds", data.get("chargingSeconds")),
        "parking_seconds": _opt_whole("parkingSeconds", data.get("parkingSeconds")),
        "location": _location(
            {
                "id": _text("location.id", where.get("id")),
                "country": _text("location.country", where.get("country")),
                "type": _text("location.type", where.get("type")),
                "public": _bool("location.isPublic", where.get("isPublic")),
                "time_zone": _text("location.timeZone", where.get("timeZone"), 64),
            },
            {"location.public": "location.isPublic", "location.time_zone": "location.timeZone"},
        ),
        "evse_id": _text("evseId", data.get("evseId")),
        "charge_box_id": _text("chargeBoxId", data.get("chargeBoxId")),
        "session_id": _text("sessionId", data.get("sessionId")),
        "auth": _auth(
            tag.get("uid"),
            auth.get("type"),
            auth.get("contractId"),
            ("auth.idTag.uid", "auth.type", "auth.contractId"),
        ),
        "operator_id": _text("operatorId", data.get("operatorId")),
        "company_id": _text("company.id", company.get("id")),
        "roaming": bool(roaming),
        "currency": _currency("currency", data.get("currency")),
        "cost_micros": _money("cost", data.get("cost")),
        "cost_incl_vat_micros": _money("costInclVat", data.get("costInclVat")),
        "updated_at": _instant("updatedAt", data.get("updatedAt"), required=False),
        "charging_periods": _periods("chargingPeriods", data.get("chargingPeriods")),
        "tariff_ids": tariff_ids,
        "extra": extra,
    }
    if values["updated_at"] is None:
        del values["updated_at"]  # the constructor's default: the end, else the start
    if ongoing is not None:
        values["ongoing"] = ongoing
    if values["id"] is None:
        raise ValidationError("id", data.get("id"), "a session id (a non-empty str)")
    return _build(cls, values, _LIST_PATHS)  # type: ignore[no-any-return]


def _opt_whole(field: str, value: Any) -> int | None:
    if _blank(value):
        return None
    return parse_whole(field, value, maximum=_MAX_SESSION_SECONDS, what="whole seconds")


def _to_list(s: ChargingSession) -> dict[str, Any]:
    extra = {k: thaw_json(v) for k, v in s.extra.items()}
    out: dict[str, Any] = {"id": s.id}
    if s.session_id is not None:
        out["sessionId"] = s.session_id
    if s.operator_id is not None:
        out["operatorId"] = s.operator_id
    company = _pop_obj(extra, "company")
    if s.company_id is not None:
        company["id"] = s.company_id
    if company:
        out["company"] = company
    auth = _pop_obj(extra, "auth")
    tag = _pop_obj(auth, "idTag")
    if s.auth.uid is not None:
        tag["uid"] = s.auth.uid
    if tag:
        auth["idTag"] = tag
    if s.auth.type is not None:
        auth["type"] = s.auth.type
    if s.auth.contract_id is not None:
        auth["contractId"] = s.auth.contract_id
    out["auth"] = auth
    where = _pop_obj(extra, "location")
    for key, value in (
        ("id", s.location.id),
        ("country", s.location.country),
        ("isPublic", s.location.public),
        ("type", s.location.type),
        ("timeZone", s.location.time_zone),
    ):
        if value is not None:
            where[key] = value
    out["location"] = where
    out["isRoaming"] = s.roaming
    out["consumed"] = s.energy_wh
    for key, number in (
        ("evseId", s.evse_id),
        ("chargeBoxId", s.charge_box_id),
        ("chargingSeconds", s.charging_seconds),
        ("parkingSeconds", s.parking_seconds),
    ):
        if number is not None:
            out[key] = number
    out["startedAt"] = _iso(s.started_at)
    out["endedAt"] = _iso(s.ended_at) if s.ended_at is not None else None
    out["updatedAt"] = _iso(s.updated_at)
    out["ongoing"] = s.ongoing
    out["currency"] = s.currency
    out["cost"] = None if s.cost_micros is None else _micros_to_decimal(s.cost_micros)
    if s.cost_incl_vat_micros is not None:
        out["costInclVat"] = _micros_to_decimal(s.cost_incl_vat_micros)
    if s.charging_periods:
        out["chargingPeriods"] = _periods_out(s.charging_periods)
    if s.tariff_ids:
        out["tariffIds"] = list(s.tariff_ids)
    _merge_extra(out, extra)
    return out


def _pop_obj(extra: dict[str, Any], key: str) -> dict[str, Any]:
    """The leftovers of a nested object kept in extra, taken out to be merged back."""
    if isinstance(extra.get(key), dict):
        value: dict[str, Any] = extra.pop(key)
        return value
    return {}


def _merge_extra(out: dict[str, Any], extra: Mapping[str, Any]) -> None:
    # A field always wins over an extra key of the same name: extra never rewrites one.
    for key, value in extra.items():
        out.setdefault(key, value)
