"""Rates: what a destination prefix costs and how its seconds are billed."""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

import attrs

from cdrrating._enum import EnumParser
from cdrrating._rules import in_window, instant
from cdrrating._validate import (
    MAX_INT64,
    MAX_SECONDS,
    check_aware,
    check_int,
    check_micros,
    check_str,
    parse_timestamp,
    parse_whole,
    text_value,
    to_tzinfo,
)
from cdrrating.cdr import Direction
from cdrrating.errors import ValidationError
from cdrrating.money import MAX_MICROS, to_micros
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
        return _PARSE_STATUS(value, field)


_PARSE_STATUS = EnumParser(
    RateStatus,
    {
        "enabled": RateStatus.ACTIVE,
        "disabled": RateStatus.INACTIVE,
        "closed": RateStatus.INACTIVE,
        "discontinued": RateStatus.INACTIVE,
    },
)


def _to_direction(value: Direction | str) -> Direction:
    return Direction.parse(value)


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
        validator=lambda _i, _a, v: check_int(
            "tier.after_seconds", v, minimum=1, maximum=MAX_SECONDS
        )
    )
    per_minute_micros: int = attrs.field(
        validator=lambda _i, _a, v: check_micros("tier.per_minute_micros", v)
    )
    increment_seconds: int = attrs.field(
        default=1,
        validator=lambda _i, _a, v: check_int(
            "tier.increment_seconds", v, minimum=1, maximum=MAX_SECONDS
        ),
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
            and 0 <= self.per_minute_micros <= MAX_MICROS
            and type(self.connection_fee_micros) is int
            and 0 <= self.connection_fee_micros <= MAX_MICROS
            and type(self.minimum_charge_micros) is int
            and 0 <= self.minimum_charge_micros <= MAX_MICROS
            and type(self.initial_seconds) is int
            and 0 <= self.initial_seconds <= MAX_SECONDS
            and type(self.increment_seconds) is int
            and 1 <= self.increment_seconds <= MAX_SECONDS
            and type(self.grace_seconds) is int
            and 0 <= self.grace_seconds <= MAX_SECONDS
            and type(self.priority) is int
            and -MAX_INT64 <= self.priority <= MAX_INT64
        ):
            for name in _MICROS_FIELDS:
                check_micros(name, getattr(self, name))
            for name, minimum in _SECONDS_FIELDS:
                check_int(name, getattr(self, name), minimum=minimum, maximum=MAX_SECONDS)
            check_int("priority", self.priority, minimum=-MAX_INT64, maximum=MAX_INT64)
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
                and instant(self.valid_until) <= instant(self.valid_from)
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
        """True when ``at`` lies in ``[valid_from, valid_until)``, compared as instants."""
        if at.tzinfo is None:
            check_aware("at", at)
        return bool(in_window(at, self.valid_from, self.valid_until))

    @classmethod
    def parse(
        cls,
        row: Mapping[str, Any],
        *,
        decimal_separator: str = ".",
        default_tz: tzinfo | str = UTC,
        dayfirst: bool = False,
    ) -> Rate:
        """Build a rate from a rate-deck row.

        Prices are decimals per minute (``cost_per_minute``, ``rate``, ``per_minute``) or
        micros (``per_min_micros``, ``per_minute_micros``); the increment comes from a
        ``billing_increment``/``increment``/``billing`` column as ``"60/60"``, ``"30/6"``
        or ``N`` (meaning ``N/N``), or from ``initial_seconds`` and ``increment_seconds``.
        A schedule comes from a ``schedule`` column (``"Mon-Fri 08:00-20:00 except:DE"``)
        or from ``weekdays``, ``hours`` (or ``time_from``/``time_until``), ``dates``,
        ``only_holidays`` and ``except_holidays`` columns. Column names ignore case,
        spaces and ``-``; an error names the column as the row wrote it. Dates take
        ``default_tz`` (a tzinfo or a zone name) when they name no offset.
        """
        if not isinstance(row, Mapping):
            raise ValidationError("row", row, "a mapping of column names to values")
        tz = to_tzinfo("default_tz", default_tz)
        # "Dial Code", "dial-code" and "dial_code" are one column; `written` keeps the
        # name the deck used, for errors. A key that is not text names no column.
        data: dict[str, Any] = {}
        written: dict[str, str] = {}
        for k, v in row.items():
            if isinstance(k, str) and len(k) <= _MAX_COLUMN_LEN and not _blank(v):
                key = k.strip().lower().replace(" ", "_").replace("-", "_")
                data[key] = v
                written.setdefault(key, k)
        # Rate field -> the column it came from ("maximum_charge_micros" -> "max_charge").
        sources: dict[str, str] = {}
        try:
            return cls._from_columns(data, sources, decimal_separator, tz, dayfirst)
        except ValidationError as e:
            key = sources.get(e.field, e.field)
            if key not in written:
                raise
            # Said of the column and the cell as the deck wrote them.
            column = written[key]
            raise ValidationError(column, row[column], e.expected) from None

    @classmethod
    def _from_columns(
        cls,
        data: dict[str, Any],
        sources: dict[str, str],
        decimal_separator: str,
        tz: tzinfo,
        dayfirst: bool,
    ) -> Rate:
        kwargs: dict[str, Any] = {}

        prefix_key = _first_key(data, "prefix", "code", "dial_code", "dialcode", "dial_prefix")
        if prefix_key is None:
            # A missing or blank prefix must not quietly become the catch-all, which
            # would price every number: the catch-all is asked for with "*".
            raise ValidationError(
                "prefix",
                None,
                "a prefix column (prefix, code, dial_code, dialcode or dial_prefix) with "
                "digits; write '*' for the catch-all",
            )
        raw_prefix = text_value(prefix_key, data[prefix_key], max_len=4 * MAX_PREFIX_LEN)
        if raw_prefix.strip() == "*":
            raw_prefix = ""
        prefix = raw_prefix.translate(_PREFIX_FORMATTING)
        if prefix and not (prefix.isascii() and prefix.isdigit() and len(prefix) <= MAX_PREFIX_LEN):
            raise ValidationError(
                prefix_key,
                raw_prefix,
                f"a dial code of at most {MAX_PREFIX_LEN} digits 0-9 ('+', spaces, '-', "
                "'.' and brackets are ignored; '*' is the catch-all)",
            )
        if prefix != raw_prefix:
            kwargs["source_prefix"] = raw_prefix

        def money(field: str, *decimal_keys: str, micros_keys: tuple[str, ...]) -> None:
            for key in micros_keys:
                if key in data:
                    kwargs[field] = parse_whole(key, data[key], maximum=MAX_MICROS)
                    sources[field] = key
                    return
            for key in decimal_keys:
                if key in data:
                    value = data[key]
                    micros = to_micros(
                        value.strip() if isinstance(value, str) else value,
                        decimal_separator=decimal_separator,
                        field=key,
                    )
                    if micros < 0:
                        # Named here, as the deck wrote it: the Rate would name its own
                        # field in micros, which the deck never had.
                        raise ValidationError(key, value, "an amount of at least 0")
                    kwargs[field] = micros
                    sources[field] = key
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
        if kwargs.get("maximum_charge_micros", MAX_MICROS) < kwargs.get("minimum_charge_micros", 0):
            # Checked here to name both columns as the deck wrote them.
            low = sources["minimum_charge_micros"]
            raise ValidationError(
                sources["maximum_charge_micros"],
                None,
                f"at least the minimum charge ({data[low]})",
            )

        spec_key = _first_key(data, "billing_increment", "increment", "billing", "interval")
        if spec_key is not None:
            kwargs["initial_seconds"], kwargs["increment_seconds"] = parse_increment(
                data[spec_key], field=spec_key
            )
            sources["initial_seconds"] = sources["increment_seconds"] = spec_key
        for name, minimum in (*_SECONDS_FIELDS, ("priority", -MAX_INT64)):
            if name in data:
                maximum = MAX_INT64 if name == "priority" else MAX_SECONDS
                kwargs[name] = parse_whole(name, data[name], minimum=minimum, maximum=maximum)

        for name in ("status", "direction", "id", "tenant"):
            if name in data:
                kwargs[name] = text_value(name, data[name], max_len=255).strip()
        destination_key = _first_key(data, "destination", "description", "name", "country")
        if destination_key is not None:
            kwargs["destination"] = text_value(
                destination_key, data[destination_key], max_len=MAX_DESTINATION_LEN
            ).strip()
            sources["destination"] = destination_key

        for name, keys in (
            ("valid_from", ("valid_from", "effective_date", "effective", "effective_from")),
            ("valid_until", ("valid_until", "end_date", "expires", "valid_to")),
        ):
            key = _first_key(data, *keys)
            if key is not None:
                kwargs[name] = parse_timestamp(key, data[key], tz, dayfirst=dayfirst)
                sources[name] = key
        schedule = schedule_from_row(data)
        if schedule is not None:
            kwargs["schedule"] = schedule
        return cls(prefix, **kwargs)


# No column name Rate.parse reads is longer; a longer key names no column.
_MAX_COLUMN_LEN = 64
_INCREMENT = re.compile(r"\s*([0-9]{1,10})\s*(?:/\s*([0-9]{1,10})\s*)?")


def parse_increment(spec: Any, *, field: str = "increment") -> tuple[int, int]:
    """``"60/60"`` → (60, 60); ``"30/6"`` → (30, 6); ``6`` or ``"6"`` → (6, 6)."""
    expected = "an increment such as '60/60', '30/6' or a single number of seconds"
    if isinstance(spec, int) and not isinstance(spec, bool):
        initial = increment = spec
    elif isinstance(spec, str) and len(spec) <= 64 and (match := _INCREMENT.fullmatch(spec)):
        initial = int(match[1])
        increment = int(match[2]) if match[2] is not None else initial
    else:
        raise ValidationError(field, spec, expected)
    if increment < 1:
        raise ValidationError(
            field, spec, "an increment of at least 1 second (e.g. '60/60', '1/1')"
        )
    if not 0 <= initial <= MAX_SECONDS or increment > MAX_SECONDS:
        raise ValidationError(field, spec, f"{expected}, at most {MAX_SECONDS:,} s")
    return initial, increment


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def _first_key(data: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        if key in data:
            return key
    return None
