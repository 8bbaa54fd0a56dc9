"""The OCPI 2.2.1 tariff: elements, price components and restrictions, and its OCPI JSON
form (:meth:`Tariff.from_mapping`, :meth:`Tariff.to_mapping`).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import attrs

from cdrrating._enum import EnumParser
from cdrrating._rules import instant
from cdrrating._validate import check_aware, check_int, check_str, parse_timestamp, parse_whole
from cdrrating.charging import freeze_json, parse_quantity, thaw_json
from cdrrating.errors import ValidationError
from cdrrating.money import MAX_MICROS, MICROS_PER_UNIT, to_micros

MAX_ELEMENTS = 1_000
MAX_COMPONENTS = 100
_MAX_ID = 36
_CURRENCY = re.compile(r"[A-Z]{3}")
_HHMM = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
_YMD = re.compile(r"[12][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])")
#: step_size beyond this is refused: a billion Wh or seconds is no step.
_MAX_STEP = 10**9


# -- enums ---------------------------------------------------------------------------------


class TariffDimensionType(enum.StrEnum):
    """What a price component prices (OCPI 2.2.1 ``TariffDimensionType``)."""

    ENERGY = "ENERGY"  # per kWh; step_size in Wh
    FLAT = "FLAT"  # once; no step_size
    PARKING_TIME = "PARKING_TIME"  # per hour not charging; step_size in seconds
    TIME = "TIME"  # per hour charging (or reserved); step_size in seconds

    @classmethod
    def parse(cls, value: TariffDimensionType | str, field: str = "type") -> TariffDimensionType:
        return _PARSE_TARIFF_DIMENSION(value, field)


class DayOfWeek(enum.StrEnum):
    MONDAY = "MONDAY"
    TUESDAY = "TUESDAY"
    WEDNESDAY = "WEDNESDAY"
    THURSDAY = "THURSDAY"
    FRIDAY = "FRIDAY"
    SATURDAY = "SATURDAY"
    SUNDAY = "SUNDAY"

    @property
    def weekday(self) -> int:
        """0 for Monday, as ``date.weekday()``."""
        return _WEEKDAYS.index(self)

    @classmethod
    def parse(cls, value: DayOfWeek | str, field: str = "day_of_week") -> DayOfWeek:
        return _PARSE_DAY(value, field)


_WEEKDAYS = tuple(DayOfWeek)


class ReservationRestrictionType(enum.StrEnum):
    """An element that prices a reservation: one that was followed by charging
    (``RESERVATION``), or one that expired without (``RESERVATION_EXPIRES``)."""

    RESERVATION = "RESERVATION"
    RESERVATION_EXPIRES = "RESERVATION_EXPIRES"

    @classmethod
    def parse(
        cls, value: ReservationRestrictionType | str, field: str = "reservation"
    ) -> ReservationRestrictionType:
        return _PARSE_RESERVATION(value, field)


class TariffType(enum.StrEnum):
    """Which sessions a tariff is meant for (OCPI 2.2.1 ``TariffType``); informative
    here: :func:`price_session` prices with the tariff it is given."""

    AD_HOC_PAYMENT = "AD_HOC_PAYMENT"
    PROFILE_CHEAP = "PROFILE_CHEAP"
    PROFILE_FAST = "PROFILE_FAST"
    PROFILE_GREEN = "PROFILE_GREEN"
    REGULAR = "REGULAR"

    @classmethod
    def parse(cls, value: TariffType | str, field: str = "type") -> TariffType:
        return _PARSE_TARIFF_TYPE(value, field)


_PARSE_TARIFF_DIMENSION = EnumParser(TariffDimensionType)
_PARSE_DAY = EnumParser(DayOfWeek)
_PARSE_RESERVATION = EnumParser(ReservationRestrictionType)
_PARSE_TARIFF_TYPE = EnumParser(TariffType)


def _to_tariff_dimension(value: Any) -> TariffDimensionType:
    return _PARSE_TARIFF_DIMENSION(value, "type")


def _to_opt_tariff_type(value: Any) -> TariffType | None:
    return None if value is None else _PARSE_TARIFF_TYPE(value, "type")


# -- the tariff ------------------------------------------------------------------------------


def _check_opt_micros(field: str) -> Any:
    def check(_inst: Any, _attr: Any, value: Any) -> None:
        if value is not None:
            check_int(field, value, minimum=0, maximum=MAX_MICROS)

    return check


@attrs.frozen
class TariffPrice:
    """An amount with and without VAT (OCPI ``Price``), in micros. ``incl_vat_micros``
    is None when not given."""

    excl_vat_micros: int = attrs.field(
        validator=lambda _i, _a, v: check_int("excl_vat", v, minimum=0, maximum=MAX_MICROS)
    )
    incl_vat_micros: int | None = attrs.field(default=None, validator=_check_opt_micros("incl_vat"))


def _check_vat(_inst: Any, _attr: Any, value: Any) -> None:
    if value is None:
        return
    if not isinstance(value, Decimal) or not value.is_finite() or not 0 <= value <= 100:
        raise ValidationError("vat", value, "a VAT percentage from 0 to 100 (a Decimal), or None")


@attrs.frozen(kw_only=True)
class PriceComponent:
    """One price of a tariff element: ``price_micros`` per kWh (``ENERGY``), per hour
    (``TIME``, ``PARKING_TIME``) or once (``FLAT``), excluding VAT.

    ``vat`` is a percentage (``Decimal("10")`` for 10 %); None means the tariff names no
    VAT, which is not 0 %: a cost including VAT cannot be computed from it. Quantities
    are billed in blocks of ``step_size`` Wh or seconds (see :func:`price_session`).
    """

    type: TariffDimensionType = attrs.field(converter=_to_tariff_dimension)
    price_micros: int = attrs.field(
        validator=lambda _i, _a, v: check_int("price", v, minimum=0, maximum=MAX_MICROS)
    )
    vat: Decimal | None = attrs.field(default=None, validator=_check_vat)
    step_size: int = attrs.field(
        default=1,
        validator=lambda _i, _a, v: check_int("step_size", v, minimum=1, maximum=_MAX_STEP),
    )

    @property
    def price(self) -> Decimal:
        """The price in currency units, exactly."""
        return _units(self.price_micros)


def _check_opt_quantity(field: str) -> Any:
    def check(_inst: Any, _attr: Any, value: Any) -> None:
        if value is not None:
            if not isinstance(value, Decimal):
                raise ValidationError(field, value, "a Decimal or None")
            parse_quantity(field, value)

    return check


def _check_opt_type(field: str, kind: type, what: str) -> Any:
    def check(_inst: Any, _attr: Any, value: Any) -> None:
        if value is not None and (not isinstance(value, kind) or isinstance(value, datetime)):
            raise ValidationError(field, value, what)

    return check


def _check_opt_seconds(field: str) -> Any:
    def check(_inst: Any, _attr: Any, value: Any) -> None:
        if value is not None:
            check_int(field, value, minimum=0, maximum=_MAX_STEP)

    return check


def _to_days(value: Any) -> Any:
    if isinstance(value, DayOfWeek | str) or not isinstance(value, Iterable):
        return value  # the validator names it
    days = {DayOfWeek.parse(v, "day_of_week") for v in value}
    # One order, so that two restrictions naming the same days are equal.
    return tuple(sorted(days, key=lambda d: d.weekday))


def _check_days(_inst: Any, _attr: Any, value: Any) -> None:
    if not isinstance(value, tuple) or not all(isinstance(v, DayOfWeek) for v in value):
        raise ValidationError("day_of_week", value, "a list of weekdays such as ['MONDAY']")


def _to_opt_reservation(value: Any) -> ReservationRestrictionType | None:
    return None if value is None else ReservationRestrictionType.parse(value)


@attrs.frozen(kw_only=True)
class TariffRestrictions:
    """When a tariff element applies (OCPI ``TariffRestrictions``); every restriction
    given must hold. Times of day, dates and weekdays are read in the location's time
    zone; ``end_date`` is exclusive."""

    start_time: time | None = attrs.field(
        default=None,
        validator=_check_opt_type("start_time", time, "a time of day or None"),
    )
    end_time: time | None = attrs.field(
        default=None,
        validator=_check_opt_type("end_time", time, "a time of day or None"),
    )
    start_date: date | None = attrs.field(
        default=None, validator=_check_opt_type("start_date", date, "a date or None")
    )
    end_date: date | None = attrs.field(
        default=None, validator=_check_opt_type("end_date", date, "a date or None")
    )
    min_kwh: Decimal | None = attrs.field(default=None, validator=_check_opt_quantity("min_kwh"))
    max_kwh: Decimal | None = attrs.field(default=None, validator=_check_opt_quantity("max_kwh"))
    min_current: Decimal | None = attrs.field(
        default=None, validator=_check_opt_quantity("min_current")
    )
    max_current: Decimal | None = attrs.field(
        default=None, validator=_check_opt_quantity("max_current")
    )
    min_power: Decimal | None = attrs.field(
        default=None, validator=_check_opt_quantity("min_power")
    )
    max_power: Decimal | None = attrs.field(
        default=None, validator=_check_opt_quantity("max_power")
    )
    min_duration: int | None = attrs.field(
        default=None, validator=_check_opt_seconds("min_duration")
    )
    max_duration: int | None = attrs.field(
        default=None, validator=_check_opt_seconds("max_duration")
    )
    day_of_week: tuple[DayOfWeek, ...] = attrs.field(
        default=(), converter=_to_days, validator=_check_days
    )
    reservation: ReservationRestrictionType | None = attrs.field(
        default=None, converter=_to_opt_reservation
    )

    @property
    def local(self) -> bool:
        """Whether matching needs the local time (a time of day, date or weekday)."""
        return any(
            v is not None for v in (self.start_time, self.end_time, self.start_date, self.end_date)
        ) or bool(self.day_of_week)


def _check_components(_inst: Any, _attr: Any, value: Any) -> None:
    if not isinstance(value, tuple) or not value or len(value) > MAX_COMPONENTS:
        raise ValidationError(
            "price_components", value, f"1 to {MAX_COMPONENTS} PriceComponent objects"
        )
    for n, component in enumerate(value):
        if not isinstance(component, PriceComponent):
            raise ValidationError(f"price_components[{n}]", component, "a PriceComponent")


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list | tuple) else value


@attrs.frozen
class TariffElement:
    """Price components that apply together while the restrictions hold."""

    price_components: tuple[PriceComponent, ...] = attrs.field(
        converter=_as_tuple, validator=_check_components
    )
    restrictions: TariffRestrictions | None = attrs.field(default=None)

    @restrictions.validator
    def _check_restrictions(self, _attr: Any, value: Any) -> None:
        if value is not None and not isinstance(value, TariffRestrictions):
            raise ValidationError("restrictions", value, "a TariffRestrictions or None")

    def component(self, kind: TariffDimensionType) -> PriceComponent | None:
        """The element's component of one type (the first, if it names it twice)."""
        for c in self.price_components:
            if c.type is kind:
                return c
        return None


def _check_elements(_inst: Any, _attr: Any, value: Any) -> None:
    if not isinstance(value, tuple) or not value or len(value) > MAX_ELEMENTS:
        raise ValidationError("elements", value, f"1 to {MAX_ELEMENTS:,} TariffElement objects")
    for n, element in enumerate(value):
        if not isinstance(element, TariffElement):
            raise ValidationError(f"elements[{n}]", element, "a TariffElement")


def _check_currency(_inst: Any, _attr: Any, value: Any) -> None:
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise ValidationError("currency", value, "an ISO 4217 code of 3 capital letters")


def _check_opt_price(field: str) -> Any:
    def check(_inst: Any, _attr: Any, value: Any) -> None:
        if value is not None and not isinstance(value, TariffPrice):
            raise ValidationError(field, value, "a TariffPrice or None")

    return check


def _opt_str(field: str, max_len: int) -> Any:
    def check(_inst: Any, _attr: Any, value: Any) -> None:
        if value is not None:
            check_str(field, value, max_len=max_len)

    return check


def _freeze_extra(value: Any) -> Mapping[str, Any]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise ValidationError("extra", value, "a mapping of str keys to JSON-like values")
    frozen = freeze_json("extra", value)
    assert isinstance(frozen, MappingProxyType)
    return frozen


@attrs.frozen(kw_only=True)
class Tariff:
    """An OCPI 2.2.1 tariff. Build it from OCPI JSON with :meth:`from_mapping`.

    ``elements`` are tried in order: for each dimension, the first element that has a
    component of that dimension and whose restrictions hold prices it. ``min_price`` and
    ``max_price`` bound the session's cost (excluding and, where given, including VAT).
    The tariff is in force from ``start_date_time`` until ``end_date_time`` (exclusive),
    read at the session's start. Keys that have no field here (``tariff_alt_text``,
    ``tariff_alt_url``, ``energy_mix``, ...) are kept in ``extra``.
    """

    id: str = attrs.field(
        validator=lambda _i, _a, v: check_str("id", v, max_len=_MAX_ID, non_empty=True)
    )
    currency: str = attrs.field(validator=_check_currency)
    elements: tuple[TariffElement, ...] = attrs.field(
        converter=_as_tuple, validator=_check_elements
    )
    min_price: TariffPrice | None = attrs.field(
        default=None, validator=_check_opt_price("min_price")
    )
    max_price: TariffPrice | None = attrs.field(
        default=None, validator=_check_opt_price("max_price")
    )
    type: TariffType | None = attrs.field(default=None, converter=_to_opt_tariff_type)
    start_date_time: datetime | None = attrs.field(
        default=None,
        validator=lambda _i, _a, v: check_aware("start_date_time", v, optional=True),
    )
    end_date_time: datetime | None = attrs.field(
        default=None,
        validator=lambda _i, _a, v: check_aware("end_date_time", v, optional=True),
    )
    last_updated: datetime | None = attrs.field(
        default=None,
        validator=lambda _i, _a, v: check_aware("last_updated", v, optional=True),
    )
    country_code: str | None = attrs.field(default=None, validator=_opt_str("country_code", 2))
    party_id: str | None = attrs.field(default=None, validator=_opt_str("party_id", 3))
    extra: Mapping[str, Any] = attrs.field(
        factory=dict, converter=_freeze_extra, hash=False, repr=False
    )

    def __attrs_post_init__(self) -> None:
        low, high = self.min_price, self.max_price
        if low is not None and high is not None:
            if low.excl_vat_micros > high.excl_vat_micros:
                raise ValidationError(
                    "min_price.excl_vat",
                    _units(low.excl_vat_micros),
                    "at most max_price.excl_vat",
                )
            if (
                low.incl_vat_micros is not None
                and high.incl_vat_micros is not None
                and low.incl_vat_micros > high.incl_vat_micros
            ):
                raise ValidationError(
                    "min_price.incl_vat",
                    _units(low.incl_vat_micros),
                    "at most max_price.incl_vat",
                )
        if (
            self.start_date_time is not None
            and self.end_date_time is not None
            and instant(self.end_date_time) <= instant(self.start_date_time)
        ):
            raise ValidationError("end_date_time", self.end_date_time, "after start_date_time")

    def in_force(self, at: datetime) -> bool:
        """Whether the tariff is in force at an instant: ``start_date_time <= at <
        end_date_time`` (either bound may be absent)."""
        at = instant(at)
        if self.start_date_time is not None and at < instant(self.start_date_time):
            return False
        return self.end_date_time is None or at < instant(self.end_date_time)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Tariff:
        """Build a tariff from an OCPI 2.2.1 Tariff JSON object. Numbers must be exact
        (``Decimal``, ``int`` or decimal text: read JSON with ``json.loads(text,
        parse_float=decimal.Decimal)``); prices have at most 6 decimals. Errors name the
        field by its dotted path (``elements[1].restrictions.start_time``). An unknown
        key inside an element, price component or restrictions is refused: ignoring a
        restriction would misprice sessions."""
        return _tariff_from_mapping(cls, data)

    def to_mapping(self) -> dict[str, Any]:
        """The OCPI 2.2.1 JSON object (plain dicts and lists, ``Decimal`` numbers, UTC
        timestamps with ``Z``); ``Tariff.from_mapping(t.to_mapping()) == t``."""
        return _tariff_to_mapping(self)


def _units(micros: int) -> Decimal:
    return (Decimal(micros) / MICROS_PER_UNIT).normalize() if micros else Decimal(0)


# -- reading and writing OCPI tariff JSON ---------------------------------------------------

_TARIFF_KEYS = (
    "id",
    "currency",
    "elements",
    "min_price",
    "max_price",
    "type",
    "start_date_time",
    "end_date_time",
    "last_updated",
    "country_code",
    "party_id",
)
_ELEMENT_KEYS = frozenset({"price_components", "restrictions"})
_COMPONENT_KEYS = frozenset({"type", "price", "vat", "step_size"})
_RESTRICTION_DECIMALS = (
    "min_kwh",
    "max_kwh",
    "min_current",
    "max_current",
    "min_power",
    "max_power",
)
_RESTRICTION_KEYS = frozenset(
    {
        "start_time",
        "end_time",
        "start_date",
        "end_date",
        *_RESTRICTION_DECIMALS,
        "min_duration",
        "max_duration",
        "day_of_week",
        "reservation",
    }
)


def _obj(field: str, value: Any, allowed: frozenset[str] | None = None) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError(field, value, "an object (a mapping)")
    if allowed is not None:
        for key in value:
            if key not in allowed:
                raise ValidationError(
                    f"{field}.{key}" if isinstance(key, str) else field,
                    key,
                    "one of " + ", ".join(sorted(allowed)),
                )
    return value


def _list(field: str, value: Any, limit: int) -> Sequence[Any]:
    if not isinstance(value, Sequence) or isinstance(value, str | bytes) or not value:
        raise ValidationError(field, value, "a non-empty list")
    if len(value) > limit:
        raise ValidationError(field, f"{len(value)} items", f"at most {limit:,} items")
    return value


def _money(field: str, value: Any) -> int:
    if isinstance(value, float):
        raise ValidationError(
            field,
            value,
            f"an exact decimal: pass Decimal({str(value)!r}) or the string {str(value)!r}, "
            "not a float (read JSON with json.loads(text, parse_float=decimal.Decimal))",
        )
    micros = to_micros(value.strip() if isinstance(value, str) else value, field=field)
    if micros < 0:
        raise ValidationError(field, value, "an amount >= 0")
    return micros


def _price(field: str, value: Any) -> TariffPrice | None:
    if value is None:
        return None
    obj = _obj(field, value, frozenset({"excl_vat", "incl_vat"}))
    if obj.get("excl_vat") is None:
        raise ValidationError(f"{field}.excl_vat", None, "an amount excluding VAT")
    incl = obj.get("incl_vat")
    return TariffPrice(
        _money(f"{field}.excl_vat", obj["excl_vat"]),
        None if incl is None else _money(f"{field}.incl_vat", incl),
    )


def _hhmm(field: str, value: Any) -> time | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _HHMM.fullmatch(value.strip()):
        raise ValidationError(field, value, "a time of day as HH:MM, 00:00 to 23:59")
    hours, minutes = value.strip().split(":")
    return time(int(hours), int(minutes))


def _ymd(field: str, value: Any) -> date | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _YMD.fullmatch(value.strip()):
        raise ValidationError(field, value, "a date as YYYY-MM-DD")
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValidationError(field, value, "a date that exists") from None


def _whole(field: str, value: Any) -> int | None:
    if value is None:
        return None
    return parse_whole(field, value, minimum=0, maximum=_MAX_STEP, what="a whole number")


def _restrictions(field: str, value: Any) -> TariffRestrictions | None:
    if value is None:
        return None
    obj = _obj(field, value, _RESTRICTION_KEYS)
    days = obj.get("day_of_week")
    if days is not None and (
        not isinstance(days, Sequence) or isinstance(days, str | bytes) or len(days) > 7 * 4
    ):
        raise ValidationError(f"{field}.day_of_week", days, "a list of weekdays")
    reservation = obj.get("reservation")
    values: dict[str, Any] = {
        "start_time": _hhmm(f"{field}.start_time", obj.get("start_time")),
        "end_time": _hhmm(f"{field}.end_time", obj.get("end_time")),
        "start_date": _ymd(f"{field}.start_date", obj.get("start_date")),
        "end_date": _ymd(f"{field}.end_date", obj.get("end_date")),
        "min_duration": _whole(f"{field}.min_duration", obj.get("min_duration")),
        "max_duration": _whole(f"{field}.max_duration", obj.get("max_duration")),
        "day_of_week": tuple(
            DayOfWeek.parse(d, f"{field}.day_of_week[{n}]") for n, d in enumerate(days or ())
        ),
        "reservation": None
        if reservation is None
        else ReservationRestrictionType.parse(reservation, f"{field}.reservation"),
    }
    for name in _RESTRICTION_DECIMALS:
        raw = obj.get(name)
        values[name] = None if raw is None else parse_quantity(f"{field}.{name}", raw)
    return TariffRestrictions(**values)


def _component(field: str, value: Any) -> PriceComponent:
    obj = _obj(field, value, _COMPONENT_KEYS)
    vat = obj.get("vat")
    step = obj.get("step_size")
    if step is None:
        raise ValidationError(f"{field}.step_size", None, "an int >= 1 (OCPI requires it)")
    return PriceComponent(
        type=_PARSE_TARIFF_DIMENSION(obj.get("type"), f"{field}.type"),
        price_micros=_money(f"{field}.price", obj.get("price")),
        vat=None if vat is None else _vat(f"{field}.vat", vat),
        step_size=parse_whole(
            f"{field}.step_size",
            step,
            minimum=1,
            maximum=_MAX_STEP,
            what="a whole number",
        ),
    )


def _vat(field: str, value: Any) -> Decimal:
    dec = parse_quantity(field, value)
    if dec > 100:
        raise ValidationError(field, value, "a VAT percentage from 0 to 100")
    return dec


def _tariff_from_mapping(cls: type[Tariff], data: Mapping[str, Any]) -> Tariff:
    obj = _obj("tariff", data)
    elements = []
    for n, raw in enumerate(_list("elements", obj.get("elements"), MAX_ELEMENTS)):
        where = f"elements[{n}]"
        element = _obj(where, raw, _ELEMENT_KEYS)
        components = tuple(
            _component(f"{where}.price_components[{m}]", c)
            for m, c in enumerate(
                _list(
                    f"{where}.price_components",
                    element.get("price_components"),
                    MAX_COMPONENTS,
                )
            )
        )
        elements.append(
            TariffElement(
                components,
                _restrictions(f"{where}.restrictions", element.get("restrictions")),
            )
        )
    tariff_id = obj.get("id")
    currency = obj.get("currency")
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency.strip().upper()):
        raise ValidationError("currency", currency, "an ISO 4217 code of 3 letters such as 'EUR'")
    kind = obj.get("type")
    if isinstance(tariff_id, int) and not isinstance(tariff_id, bool):
        tariff_id = str(tariff_id)  # an id written as a JSON number
    return cls(
        id=check_str("id", tariff_id, max_len=_MAX_ID, non_empty=True),
        currency=currency.strip().upper(),
        elements=tuple(elements),
        min_price=_price("min_price", obj.get("min_price")),
        max_price=_price("max_price", obj.get("max_price")),
        type=None if kind is None else TariffType.parse(kind, "type"),
        start_date_time=parse_timestamp("start_date_time", obj.get("start_date_time"), UTC),
        end_date_time=parse_timestamp("end_date_time", obj.get("end_date_time"), UTC),
        last_updated=parse_timestamp("last_updated", obj.get("last_updated"), UTC),
        country_code=_opt_text("country_code", obj.get("country_code"), 2),
        party_id=_opt_text("party_id", obj.get("party_id"), 3),
        extra={k: v for k, v in obj.items() if k not in _TARIFF_KEYS},
    )


def _opt_text(field: str, value: Any, max_len: int) -> str | None:
    return None if value is None else check_str(field, value, max_len=max_len)


def _utc(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _price_out(price: TariffPrice) -> dict[str, Any]:
    out: dict[str, Any] = {"excl_vat": _units(price.excl_vat_micros)}
    if price.incl_vat_micros is not None:
        out["incl_vat"] = _units(price.incl_vat_micros)
    return out


def _restrictions_out(r: TariffRestrictions) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("start_time", "end_time"):
        value = getattr(r, name)
        if value is not None:
            out[name] = value.strftime("%H:%M")
    for name in ("start_date", "end_date"):
        value = getattr(r, name)
        if value is not None:
            out[name] = value.isoformat()
    for name in (*_RESTRICTION_DECIMALS, "min_duration", "max_duration"):
        value = getattr(r, name)
        if value is not None:
            out[name] = value
    if r.day_of_week:
        out["day_of_week"] = [d.value for d in r.day_of_week]
    if r.reservation is not None:
        out["reservation"] = r.reservation.value
    return out


def _tariff_to_mapping(t: Tariff) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if t.country_code is not None:
        out["country_code"] = t.country_code
    if t.party_id is not None:
        out["party_id"] = t.party_id
    out["id"] = t.id
    out["currency"] = t.currency
    if t.type is not None:
        out["type"] = t.type.value
    if t.min_price is not None:
        out["min_price"] = _price_out(t.min_price)
    if t.max_price is not None:
        out["max_price"] = _price_out(t.max_price)
    elements = []
    for e in t.elements:
        components = []
        for c in e.price_components:
            item: dict[str, Any] = {"type": c.type.value, "price": c.price}
            if c.vat is not None:
                item["vat"] = c.vat
            item["step_size"] = c.step_size
            components.append(item)
        element: dict[str, Any] = {"price_components": components}
        if e.restrictions is not None:
            element["restrictions"] = _restrictions_out(e.restrictions)
        elements.append(element)
    out["elements"] = elements
    for name in ("start_date_time", "end_date_time", "last_updated"):
        value = getattr(t, name)
        if value is not None:
            out[name] = _utc(value)
    for key, value in t.extra.items():
        out.setdefault(key, thaw_json(value))
    return out
