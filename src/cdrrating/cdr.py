"""The call detail record: one call as a switch reported it."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any, Protocol

import attrs

from cdrrating._enum import EnumParser
from cdrrating._rules import billable, billsec_between, billsec_fits, instant
from cdrrating._validate import (
    MAX_SECONDS,
    EpochUnit,
    ceil_seconds,
    check_aware,
    check_int,
    check_micros,
    check_str,
    epoch_micros,
    freeze_mapping,
    parse_timestamp,
    parse_whole,
    text_value,
    to_tzinfo,
    to_tzinfos,
)
from cdrrating.errors import ValidationError
from cdrrating.money import to_micros


class Priced(Protocol):
    """What :meth:`CDR.with_charge` reads of a charge (a :class:`cdrrating.Charge`)."""

    @property
    def cost_micros(self) -> int | None: ...

    @property
    def currency(self) -> str | None: ...


__all__ = ["CDR", "Direction", "Disposition"]

MAX_NUMBER_LEN = 50


class Direction(enum.StrEnum):
    """Which way a call went, seen from the platform that bills it."""

    OUTBOUND = "outbound"
    INBOUND = "inbound"
    INTERNAL = "internal"

    @classmethod
    def parse(cls, value: Direction | str, field: str = "direction") -> Direction:
        return _PARSE_DIRECTION(value, field)


class Disposition(enum.StrEnum):
    """How a call ended. Only ANSWERED calls with billsec > 0 are billable."""

    ANSWERED = "ANSWERED"
    NO_ANSWER = "NO_ANSWER"
    BUSY = "BUSY"
    FAILED = "FAILED"
    CONGESTION = "CONGESTION"
    CANCELLED = "CANCELLED"

    @classmethod
    def parse(cls, value: Disposition | str, field: str = "disposition") -> Disposition:
        """Accept the enum or a string such as ``"NO ANSWER"``, ``"no_answer"``, ``"answered"``."""
        return _PARSE_DISPOSITION(value, field)


_PARSE_DIRECTION = EnumParser(Direction)
_PARSE_DISPOSITION = EnumParser(
    Disposition, {"noanswer": Disposition.NO_ANSWER, "canceled": Disposition.CANCELLED}
)


def _to_direction(value: Direction | str) -> Direction:
    return Direction.parse(value)


def _to_disposition(value: Disposition | str) -> Disposition:
    return Disposition.parse(value)


def _check_number(field: str) -> Any:
    def check(_inst: Any, _attr: Any, value: Any) -> None:
        check_str(field, value, max_len=MAX_NUMBER_LEN)

    return check


def _opt_str(field: str, max_len: int = 255) -> Any:
    def check(_inst: Any, _attr: Any, value: Any) -> None:
        if value is not None:
            check_str(field, value, max_len=max_len)

    return check


@attrs.frozen(kw_only=True)
class CDR:
    """One call detail record. Immutable; build it from outside data with :meth:`from_mapping`.

    Invariants checked at construction: ``billsec <= duration``; ``started_at <=
    answered_at <= ended_at`` where given; every timestamp timezone-aware.
    """

    call_id: str = attrs.field(
        validator=lambda _i, _a, v: check_str("call_id", v, max_len=255, non_empty=True)
    )
    started_at: datetime = attrs.field(validator=lambda _i, _a, v: check_aware("started_at", v))
    destination_number: str = attrs.field(validator=_check_number("destination_number"))
    caller_number: str = attrs.field(default="", validator=_check_number("caller_number"))
    direction: Direction = attrs.field(default=Direction.OUTBOUND, converter=_to_direction)
    disposition: Disposition = attrs.field(default=Disposition.ANSWERED, converter=_to_disposition)
    answered_at: datetime | None = attrs.field(
        default=None, validator=lambda _i, _a, v: check_aware("answered_at", v, optional=True)
    )
    ended_at: datetime | None = attrs.field(
        default=None, validator=lambda _i, _a, v: check_aware("ended_at", v, optional=True)
    )
    billsec: int = attrs.field(
        validator=lambda _i, _a, v: check_int("billsec", v, maximum=MAX_SECONDS)
    )
    duration: int = attrs.field(
        validator=lambda _i, _a, v: check_int("duration", v, maximum=MAX_SECONDS)
    )
    tenant: str | None = attrs.field(default=None, validator=_opt_str("tenant"))
    extension: str | None = attrs.field(default=None, validator=_opt_str("extension"))
    currency: str | None = attrs.field(default=None, validator=_opt_str("currency", 3))
    hangup_cause: str | None = attrs.field(default=None, validator=_opt_str("hangup_cause"))
    queue_id: str | None = attrs.field(default=None, validator=_opt_str("queue_id"))
    agent_id: str | None = attrs.field(default=None, validator=_opt_str("agent_id"))
    cost_micros: int | None = attrs.field(default=None)
    extra: Mapping[str, Any] = attrs.field(
        factory=dict, converter=freeze_mapping, hash=False, repr=False
    )

    @billsec.default
    def _billsec_default(self) -> int:
        # rating-rules §2: with timestamps but no billsec, billsec = ceil(ended - answered).
        try:
            if self.answered_at is not None and self.ended_at is not None:
                elapsed = billsec_between(
                    epoch_micros(self.answered_at), epoch_micros(self.ended_at)
                )
                return min(MAX_SECONDS + 1, int(elapsed))
        except (TypeError, ValueError, OverflowError):  # the validators say which field
            pass
        return 0

    @duration.default
    def _duration_default(self) -> int:
        # A caller who knows only billsec should not have to repeat it.
        billsec = self.billsec if isinstance(self.billsec, int) else 0
        try:
            if self.ended_at is not None:
                elapsed = ceil_seconds(self.ended_at, self.started_at)
                return max(billsec, min(MAX_SECONDS + 1, elapsed))
        except (TypeError, ValueError, OverflowError):  # the validators say which field
            pass
        return billsec

    @cost_micros.validator
    def _check_cost(self, _attr: Any, value: Any) -> None:
        if value is not None:
            check_micros("cost_micros", value)

    def __attrs_post_init__(self) -> None:
        if self.billsec > self.duration:
            raise ValidationError("billsec", self.billsec, f"at most duration ({self.duration} s)")
        # Instants are compared in UTC: two datetimes sharing a tzinfo object would be
        # compared by wall clock, and a call across the clocks going back would end
        # "before" it was answered.
        started = instant(self.started_at)
        answered = instant(self.answered_at) if self.answered_at is not None else None
        if answered is not None and answered < started:
            raise ValidationError(
                "answered_at",
                self.answered_at,
                f"not before started_at ({self.started_at.isoformat()})",
            )
        if self.ended_at is not None:
            ended = instant(self.ended_at)
            if ended < (answered or started):
                which = "answered_at" if answered is not None else "started_at"
                earliest = self.answered_at or self.started_at
                raise ValidationError(
                    "ended_at", self.ended_at, f"not before {which} ({earliest.isoformat()})"
                )
            if answered is not None:
                answered_us, ended_us = epoch_micros(answered), epoch_micros(ended)
                if not billsec_fits(self.billsec, answered_us, ended_us):
                    talked = billsec_between(answered_us, ended_us)
                    # The record's own clock says the call was shorter than it bills.
                    raise ValidationError(
                        "billsec",
                        self.billsec,
                        f"at most the {talked} s from answered_at to ended_at"
                        + (
                            " (1 s more for clocks read to the second)"
                            if answered.microsecond == ended.microsecond == 0
                            else ""
                        ),
                    )

    # -- edges -------------------------------------------------------------------------

    @classmethod
    def from_mapping(
        cls,
        row: Mapping[str, Any],
        *,
        default_tz: tzinfo | str = UTC,
        decimal_separator: str = ".",
        epoch_unit: EpochUnit | None = None,
        tzinfos: Mapping[str, tzinfo | str] | None = None,
    ) -> CDR:
        """Build a CDR from a dict-like row as switches and APIs write them.

        Common field-name aliases are understood (``src``/``from_num`` → caller_number,
        ``dst``/``to_num`` → destination_number, ``start``/``start_ts`` → started_at, …);
        unknown keys are kept in ``extra``. Errors name the key as the row wrote it.

        Timestamps may be aware datetimes, ISO 8601 or date-time text, or epoch numbers.
        Naive ones take ``default_tz`` (a tzinfo or a zone name such as
        ``"Europe/Berlin"``); a local text that falls in the hour a daylight-saving
        change repeats or skips is refused. Zone abbreviations (``"EST"``) are refused
        unless ``tzinfos`` maps them (``{"EST": "America/New_York"}``); a text without
        a full date (``"10:00"``, ``"Monday"``) is refused. Epoch numbers are read in
        ``epoch_unit`` (``"s"``, ``"ms"``, ``"us"`` or ``"ns"``); without one only
        13-digit milliseconds are accepted, so that seconds or a date such as
        ``20250422`` are never misread.

        ``billsec`` is derived from ``answered_at``/``ended_at`` (elapsed seconds between
        the instants, rounded up) when absent, and refused when larger than that.
        """
        if not isinstance(row, Mapping):
            raise ValidationError("row", row, "a mapping of field names to values")
        tz = to_tzinfo("default_tz", default_tz)
        zones = to_tzinfos(tzinfos)
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        # canonical field -> the key the row used, so errors speak the row's language
        keys: dict[str, str] = {}
        for key, value in row.items():
            canonical = (
                _ALIASES.get(key.strip().lower())
                if isinstance(key, str) and len(key) <= _MAX_KEY_LEN
                else None
            )
            if canonical is None:
                extra[key] = value
            elif canonical == "extra":
                if value is not None:
                    extra.update(freeze_mapping(value))
            elif canonical in values and values[canonical] not in (None, ""):
                # Two aliases of one field: keep the first non-empty one, keep the other in extra.
                extra[key] = value
            else:
                values[canonical] = value
                keys[canonical] = key

        def name(field: str) -> str:
            return keys.get(field, field)

        try:
            return cls._from_values(
                values,
                extra,
                name=name,
                tz=tz,
                zones=zones,
                decimal_separator=decimal_separator,
                epoch_unit=epoch_unit,
            )
        except ValidationError as e:
            if e.field not in keys:
                raise
            # Said of the key and the value as the row wrote them ("answer": "...Z"),
            # not of the parsed datetime or the canonical field name.
            key = keys[e.field]
            raise ValidationError(key, row[key], e.expected) from None

    @classmethod
    def _from_values(
        cls,
        values: dict[str, Any],
        extra: dict[str, Any],
        *,
        name: Callable[[str], str],
        tz: tzinfo,
        zones: Mapping[str, tzinfo] | None,
        decimal_separator: str,
        epoch_unit: EpochUnit | None,
    ) -> CDR:
        def blank(v: Any) -> bool:
            return v is None or (isinstance(v, str) and not v.strip())

        for field in ("started_at", "answered_at", "ended_at"):
            values[field] = parse_timestamp(
                field, values.get(field), tz, epoch_unit=epoch_unit, tzinfos=zones
            )
        if values["started_at"] is None:
            raise ValidationError(
                "started_at",
                None,
                "a start timestamp (started_at or an alias such as start, start_ts, start_time)",
            )

        for field in ("billsec", "duration"):
            if blank(values.get(field)):
                values.pop(field, None)
            else:
                values[field] = parse_whole(
                    field, values[field], maximum=MAX_SECONDS, what="a whole number of seconds"
                )

        answered_flag = values.pop("answered", None)
        if blank(values.get("disposition")):
            values.pop("disposition", None)
            if not blank(answered_flag):
                is_answered = _parse_bool(name("answered"), answered_flag)
            else:
                is_answered = values["answered_at"] is not None or values.get("billsec", 0) > 0
            values["disposition"] = Disposition.ANSWERED if is_answered else Disposition.NO_ANSWER

        cost = values.pop("cost", None)
        if blank(values.get("cost_micros")):
            values.pop("cost_micros", None)
            if not blank(cost):
                values["cost_micros"] = to_micros(
                    cost if not isinstance(cost, str) else cost.strip(),
                    decimal_separator=decimal_separator,
                    field=name("cost"),
                )
        else:
            values["cost_micros"] = parse_whole("cost_micros", values["cost_micros"], minimum=None)

        for field, max_len in (
            ("call_id", 255),
            ("destination_number", MAX_NUMBER_LEN),
            ("caller_number", MAX_NUMBER_LEN),
        ):
            v = values.get(field)
            if v is None and field == "caller_number":
                values.pop(field, None)
            elif v is not None:
                values[field] = text_value(field, v, max_len=max_len)
        for field in _OPTIONAL_TEXT:
            if blank(values.get(field)):
                values.pop(field, None)
            else:
                values[field] = text_value(field, values[field], max_len=255)
        if blank(values.get("direction")):
            values.pop("direction", None)
        if "call_id" not in values:
            raise ValidationError("call_id", None, "a call id (call_id, uuid, id or an alias)")
        if "destination_number" not in values:
            raise ValidationError(
                "destination_number",
                None,
                "a dialled number (destination_number, dst, to_num, ...)",
            )
        # billsec and duration, when absent, are derived by the constructor (one rule).
        return cls(**values, extra=extra)

    def to_mapping(self) -> dict[str, Any]:
        """The inverse of :meth:`from_mapping`: canonical names, ISO 8601 timestamps."""
        out: dict[str, Any] = {}
        for field in attrs.fields(CDR):
            value = getattr(self, field.name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, enum.Enum):
                value = value.value
            elif field.name == "extra":
                value = dict(value)
            out[field.name] = value
        return out

    def with_charge(self, charge: Priced) -> CDR:
        """A copy with ``cost_micros`` and ``currency`` set from a charge (both None for an
        unrated call: no cost, so no currency either)."""
        currency = charge.currency if charge.cost_micros is not None else None
        return attrs.evolve(self, cost_micros=charge.cost_micros, currency=currency)

    @property
    def is_billable(self) -> bool:
        """Answered with at least one billable second (rating-rules §2)."""
        return bool(billable(self.disposition is Disposition.ANSWERED, self.billsec))


# No alias is longer; a longer key cannot name a field and goes to extra unread.
_MAX_KEY_LEN = 64

_OPTIONAL_TEXT = ("tenant", "extension", "currency", "hangup_cause", "queue_id", "agent_id")

_ALIASES: dict[str, str] = {name: name for name in (f.name for f in attrs.fields(CDR))}
_ALIASES.update(
    {
        "uuid": "call_id",
        "id": "call_id",
        "call_uuid": "call_id",
        "callid": "call_id",
        "from_num": "caller_number",
        "from_number": "caller_number",
        "caller_id_number": "caller_number",
        "src": "caller_number",
        "caller": "caller_number",
        "to_num": "destination_number",
        "to_number": "destination_number",
        "dst": "destination_number",
        "destination": "destination_number",
        "billable_duration": "billsec",
        "bill_duration": "billsec",
        "billable_seconds": "billsec",
        "duration_sec": "duration",
        "call_duration": "duration",
        "start_ts": "started_at",
        "start_time": "started_at",
        "start": "started_at",
        "start_stamp": "started_at",
        "initiation_time": "started_at",
        "answer_ts": "answered_at",
        "answer_time": "answered_at",
        "answer": "answered_at",
        "answer_stamp": "answered_at",
        "end_ts": "ended_at",
        "end_time": "ended_at",
        "end": "ended_at",
        "end_stamp": "ended_at",
        "account_id": "tenant",
        "account": "tenant",
        "call_direction": "direction",
        "answered": "answered",
        "cost": "cost",
    }
)


def _parse_bool(field: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        key = value.strip().lower()
        if key in ("1", "true", "yes", "y", "t"):
            return True
        if key in ("0", "false", "no", "n", "f"):
            return False
    raise ValidationError(field, value, "a boolean (true/false, 1/0, yes/no)")
