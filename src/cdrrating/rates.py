"""Rates: what a destination prefix costs and how its seconds are billed."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

import attrs
from dateutil import parser as dateutil_parser

from cdrrating._validate import check_aware, check_int, check_micros, check_str, parse_timestamp
from cdrrating.cdr import Direction, _to_direction
from cdrrating.errors import ValidationError
from cdrrating.money import to_micros
from cdrrating.schedule import Schedule, schedule_from_row

__all__ = ["Rate", "RateStatus", "Tier", "parse_increment"]

MAX_PREFIX_LEN = 50
MAX_DESTINATION_LEN = 255

# Characters people write inside dial codes ("+44 20", "1-876", "(44) 20") that carry no
# digits; Rate.parse drops them and plan.check() reports that the source had them.
_PREFIX_FORMATTING = str.maketrans("", "", " -.()+\t")


class RateStatus(enum.StrEnum):
    """Only ``active`` rates are candidates; ``inactive`` ones stay in the deck for the record."""

    ACTIVE = "active"
    INACTIVE = "inactive"

    @classmethod
    def parse(cls, value: RateStatus | str, field: str = "status") -> RateStatus:
        if isinstance(value, RateStatus):
            return value
        if isinstance(value, str):
            found = _STATUS_ALIASES.get(value.strip().lower())
            if found is not None:
                return found
        raise ValidationError(field, value, "one of active, inactive (case-insensitive)")


_STATUS_ALIASES = {
    "active": RateStatus.ACTIVE,
    "enabled": RateStatus.ACTIVE,
    "inactive": RateStatus.INACTIVE,
    "disabled": RateStatus.INACTIVE,
    "closed": RateStatus.INACTIVE,
    "discontinued": RateStatus.INACTIVE,
}


def _to_status(value: RateStatus | str) -> RateStatus:
    return RateStatus.parse(value)


def _check_prefix(_inst: Any, _attr: Any, value: Any) -> None:
    check_str("prefix", value, max_len=MAX_PREFIX_LEN)
    if value and not (value.isascii() and value.isdigit()):
        raise ValidationError(
            "prefix",
            value,
            "digits only ('' is the catch-all); Rate.parse strips '+', spaces and '-'",
        )


@attrs.frozen
class Tier:
    """From billed position ``after_seconds`` on, steps cost ``per_minute_micros`` and are
    ``increment_seconds`` long (rating-rules §3)."""

    after_seconds: int = attrs.field(
        validator=lambda _i, _a, v: check_int("tier.after_seconds", v, minimum=1)
    )
    per_minute_micros: int = attrs.field(
        validator=lambda _i, _a, v: check_micros("tier.per_minute_micros", v)
    )
    increment_seconds: int = attrs.field(
        default=1, validator=lambda _i, _a, v: check_int("tier.increment_seconds", v, minimum=1)
    )


def _convert_tiers(value: Any) -> tuple[Tier, ...]:
    if value == ():
        return ()
    if isinstance(value, Tier):
        return (value,)
    try:
        return tuple(value)
    except TypeError:
        raise ValidationError("tiers", value, "a sequence of Tier") from None


def _check_tiers(_inst: Any, _attr: Any, value: tuple[Any, ...]) -> None:
    previous = 0
    for i, tier in enumerate(value):
        if not isinstance(tier, Tier):
            raise ValidationError(f"tiers[{i}]", tier, "a Tier")
        if tier.after_seconds <= previous:
            raise ValidationError(
                f"tiers[{i}].after_seconds",
                tier.after_seconds,
                f"strictly greater than the previous tier's ({previous})",
            )
        previous = tier.after_seconds


_MICROS_FIELDS = ("per_minute_micros", "connection_fee_micros", "minimum_charge_micros")
_SECONDS_FIELDS = (("initial_seconds", 0), ("increment_seconds", 1), ("grace_seconds", 0))


@attrs.frozen
class Rate:
    """The price of calls to numbers under ``prefix``.

    Money is in integer micros per minute (``12_500`` is 0.0125/min); build a rate from
    decimal text with :meth:`parse`. ``initial_seconds``/``increment_seconds`` are the
    "30/6" of a rate deck; ``tiers`` change price and increment later in the call.
    """

    prefix: str
    per_minute_micros: int
    connection_fee_micros: int = attrs.field(default=0, kw_only=True)
    initial_seconds: int = attrs.field(default=1, kw_only=True)
    increment_seconds: int = attrs.field(default=1, kw_only=True)
    tiers: tuple[Tier, ...] = attrs.field(default=(), kw_only=True, converter=_convert_tiers)
    grace_seconds: int = attrs.field(default=0, kw_only=True)
    minimum_charge_micros: int = attrs.field(default=0, kw_only=True)
    maximum_charge_micros: int | None = attrs.field(default=None, kw_only=True)
    priority: int = attrs.field(default=0, kw_only=True)
    status: RateStatus = attrs.field(default=RateStatus.ACTIVE, kw_only=True, converter=_to_status)
    direction: Direction = attrs.field(
        default=Direction.OUTBOUND, kw_only=True, converter=_to_direction
    )
    valid_from: datetime | None = attrs.field(default=None, kw_only=True)
    valid_until: datetime | None = attrs.field(default=None, kw_only=True)
    # When the rate is in force within its window, in the plan's time zone (§6); None: always.
    schedule: Schedule | None = attrs.field(default=None, kw_only=True)
    destination: str = attrs.field(default="", kw_only=True)
    id: str | None = attrs.field(default=None, kw_only=True)
    tenant: str | None = attrs.field(default=None, kw_only=True)
    # The prefix exactly as the source wrote it, when that differed ("+44 20" for "4420").
    # Informational only: plan.check() reports it; it takes no part in equality.
    source_prefix: str | None = attrs.field(default=None, kw_only=True, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        # One method instead of a validator per field: a 287k-prefix deck builds these
        # in a loop, and the common all-valid case should cost a few type checks.
        prefix = self.prefix
        if not (
            type(prefix) is str
            and len(prefix) <= MAX_PREFIX_LEN
            and ((prefix.isdigit() and prefix.isascii()) or not prefix)
        ):
            _check_prefix(None, None, prefix)
        if not (
            type(self.per_minute_micros) is int
            and self.per_minute_micros >= 0
            and type(self.connection_fee_micros) is int
            and self.connection_fee_micros >= 0
            and type(self.minimum_charge_micros) is int
            and self.minimum_charge_micros >= 0
            and type(self.initial_seconds) is int
            and self.initial_seconds >= 0
            and type(self.increment_seconds) is int
            and self.increment_seconds >= 1
            and type(self.grace_seconds) is int
            and self.grace_seconds >= 0
            and type(self.priority) is int
        ):
            for name in _MICROS_FIELDS:
                check_micros(name, getattr(self, name))
            for name, minimum in _SECONDS_FIELDS:
                check_int(name, getattr(self, name), minimum=minimum)
            check_int("priority", self.priority, minimum=None)
        if self.tiers:
            _check_tiers(None, None, self.tiers)
        if self.maximum_charge_micros is not None:
            check_micros("maximum_charge_micros", self.maximum_charge_micros)
            if self.maximum_charge_micros < self.minimum_charge_micros:
                raise ValidationError(
                    "maximum_charge_micros",
                    self.maximum_charge_micros,
                    f"at least minimum_charge_micros ({self.minimum_charge_micros})",
                )
        if self.valid_from is not None or self.valid_until is not None:
            check_aware("valid_from", self.valid_from, optional=True)
            check_aware("valid_until", self.valid_until, optional=True)
            if (
                self.valid_from is not None
                and self.valid_until is not None
                and self.valid_until <= self.valid_from
            ):
                raise ValidationError(
                    "valid_until",
                    self.valid_until,
                    f"later than valid_from ({self.valid_from.isoformat()})",
                )
        if self.schedule is not None and type(self.schedule) is not Schedule:
            raise ValidationError(
                "schedule", self.schedule, "a cdrrating.Schedule (or None: always in force)"
            )
        if type(self.destination) is not str or len(self.destination) > MAX_DESTINATION_LEN:
            check_str("destination", self.destination, max_len=MAX_DESTINATION_LEN)
        if self.id is not None or self.tenant is not None or self.source_prefix is not None:
            for name in ("id", "tenant", "source_prefix"):
                value = getattr(self, name)
                if value is not None:
                    check_str(name, value, max_len=255)

    @property
    def increment(self) -> str:
        """The deck notation, e.g. ``"30/6"``."""
        return f"{self.initial_seconds}/{self.increment_seconds}"

    def in_force(self, at: datetime) -> bool:
        """True when ``at`` lies in ``[valid_from, valid_until)``."""
        return (self.valid_from is None or self.valid_from <= at) and (
            self.valid_until is None or at < self.valid_until
        )

    @classmethod
    def parse(
        cls,
        row: Mapping[str, Any],
        *,
        decimal_separator: str = ".",
        default_tz: tzinfo = UTC,
        dayfirst: bool = False,
    ) -> Rate:
        """Build a rate from a rate-deck row.

        Prices are decimals per minute (``cost_per_minute``, ``rate``, ``per_minute``) or
        micros (``per_min_micros``, ``per_minute_micros``); the increment comes from a
        ``billing_increment``/``increment``/``billing`` column as ``"60/60"``, ``"30/6"``
        or ``N`` (meaning ``N/N``), or from ``initial_seconds`` and ``increment_seconds``.
        A schedule comes from a ``schedule`` column (``"Mon-Fri 08:00-20:00 except:DE"``)
        or from ``weekdays``, ``hours`` (or ``time_from``/``time_until``), ``dates``,
        ``only_holidays`` and ``except_holidays`` columns.
        """
        if not isinstance(row, Mapping):
            raise ValidationError("row", row, "a mapping of column names to values")
        # "Dial Code", "dial-code" and "dial_code" are one column.
        data = {
            str(k).strip().lower().replace(" ", "_").replace("-", "_"): v
            for k, v in row.items()
            if not _blank(v)
        }
        kwargs: dict[str, Any] = {}

        raw_prefix = _first(data, "prefix", "code", "dial_code", "dialcode", "dial_prefix")
        if raw_prefix is None:
            # A missing or blank prefix must not quietly become the catch-all, which
            # would price every number: the catch-all is asked for with "*".
            raise ValidationError(
                "prefix",
                None,
                "a prefix column (prefix, code, dial_code, dialcode or dial_prefix) with "
                "digits; write '*' for the catch-all",
            )
        if raw_prefix == "*":
            raw_prefix = ""
        if isinstance(raw_prefix, int) and not isinstance(raw_prefix, bool):
            raw_prefix = str(raw_prefix)
        if not isinstance(raw_prefix, str):
            raise ValidationError("prefix", raw_prefix, "a string of digits")
        prefix = raw_prefix.translate(_PREFIX_FORMATTING)
        if prefix != raw_prefix:
            kwargs["source_prefix"] = raw_prefix

        def money(field: str, *decimal_keys: str, micros_keys: tuple[str, ...]) -> None:
            for key in micros_keys:
                if key in data:
                    kwargs[field] = _int_value(key, data[key])
                    return
            for key in decimal_keys:
                if key in data:
                    value = data[key]
                    kwargs[field] = to_micros(
                        value.strip() if isinstance(value, str) else value,
                        decimal_separator=decimal_separator,
                        field=key,
                    )
                    return

        money(
            "per_minute_micros",
            "cost_per_minute",
            "rate",
            "per_minute",
            "price",
            micros_keys=("per_min_micros", "per_minute_micros"),
        )
        if "per_minute_micros" not in kwargs:
            raise ValidationError(
                "rate", None, "a price column: cost_per_minute, rate, per_minute or per_min_micros"
            )
        money(
            "connection_fee_micros",
            "connection_fee",
            "setup_fee",
            micros_keys=("connection_fee_micros",),
        )
        money("minimum_charge_micros", "minimum_charge", micros_keys=("minimum_charge_micros",))
        money("maximum_charge_micros", "maximum_charge", micros_keys=("maximum_charge_micros",))

        spec = _first(data, "billing_increment", "increment", "billing", "interval")
        if spec is not None:
            kwargs["initial_seconds"], kwargs["increment_seconds"] = parse_increment(
                spec, field="billing_increment"
            )
        for name in ("initial_seconds", "increment_seconds", "grace_seconds", "priority"):
            if name in data:
                kwargs[name] = _int_value(name, data[name])

        for name in ("status", "direction", "id", "tenant"):
            if name in data:
                kwargs[name] = str(data[name]).strip()
        destination = _first(data, "destination", "description", "name", "country")
        if destination is not None:
            kwargs["destination"] = str(destination).strip()

        for name, keys in (
            ("valid_from", ("valid_from", "effective_date", "effective", "effective_from")),
            ("valid_until", ("valid_until", "end_date", "expires", "valid_to")),
        ):
            value = _first(data, *keys)
            if value is not None:
                kwargs[name] = _parse_date(name, value, default_tz, dayfirst)
        schedule = schedule_from_row(data)
        if schedule is not None:
            kwargs["schedule"] = schedule
        return cls(prefix, **kwargs)


def parse_increment(spec: Any, *, field: str = "increment") -> tuple[int, int]:
    """``"60/60"`` → (60, 60); ``"30/6"`` → (30, 6); ``6`` or ``"6"`` → (6, 6)."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        parts = [spec, spec]
    elif isinstance(spec, str) and re.fullmatch(r"\s*\d+\s*(/\s*\d+\s*)?", spec):
        numbers = [int(p) for p in spec.split("/")]
        parts = numbers if len(numbers) == 2 else numbers * 2
    else:
        raise ValidationError(
            field, spec, "an increment such as '60/60', '30/6' or a single number"
        )
    initial, increment = parts
    if increment < 1:
        raise ValidationError(
            field, spec, "an increment of at least 1 second (e.g. '60/60', '1/1')"
        )
    return initial, increment


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _first(data: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in data:
            return data[key]
    return None


def _int_value(field: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise ValidationError(field, value, "a whole number")


def _parse_date(field: str, value: Any, default_tz: tzinfo, dayfirst: bool) -> datetime | None:
    if dayfirst and isinstance(value, str):
        try:
            dt = dateutil_parser.parse(value, dayfirst=True)
        except (ValueError, OverflowError):
            raise ValidationError(field, value, "a date such as 23/09/2026") from None
        return dt if dt.tzinfo is not None else dt.replace(tzinfo=default_tz)
    return parse_timestamp(field, value, default_tz)
