"""The call detail record: one call as a switch reported it."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from cdrrating._validate import (
    ceil_seconds,
    check_aware,
    check_int,
    check_micros,
    check_str,
    freeze_mapping,
    parse_timestamp,
)
from cdrrating.errors import ValidationError
from cdrrating.money import to_micros

if TYPE_CHECKING:
    from cdrrating.rating import Charge

__all__ = ["CDR", "Direction", "Disposition"]

MAX_NUMBER_LEN = 50


class Direction(enum.StrEnum):
    """Which way a call went, seen from the platform that bills it."""

    OUTBOUND = "outbound"
    INBOUND = "inbound"
    INTERNAL = "internal"

    @classmethod
    def parse(cls, value: Direction | str, field: str = "direction") -> Direction:
        if isinstance(value, Direction):
            return value
        if isinstance(value, str):
            try:
                return cls(value.strip().lower())
            except ValueError:
                pass
        raise ValidationError(field, value, "one of " + ", ".join(m.value for m in cls))


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
        if isinstance(value, Disposition):
            return value
        if isinstance(value, str):
            key = value.strip().upper().replace(" ", "_").replace("-", "_")
            found = _DISPOSITION_ALIASES.get(key)
            if found is not None:
                return found
        raise ValidationError(
            field, value, "one of " + ", ".join(m.value for m in cls) + " (case-insensitive)"
        )


_DISPOSITION_ALIASES: dict[str, Disposition] = {m.value: m for m in Disposition}
_DISPOSITION_ALIASES.update({"NOANSWER": Disposition.NO_ANSWER, "CANCELED": Disposition.CANCELLED})


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
    billsec: int = attrs.field(validator=lambda _i, _a, v: check_int("billsec", v))
    duration: int = attrs.field(validator=lambda _i, _a, v: check_int("duration", v))
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
                return max(0, ceil_seconds(self.ended_at, self.answered_at))
        except TypeError:  # not datetimes, or naive: the validators say which field
            pass
        return 0

    @duration.default
    def _duration_default(self) -> int:
        # A caller who knows only billsec should not have to repeat it.
        billsec = self.billsec if isinstance(self.billsec, int) else 0
        try:
            if self.ended_at is not None:
                return max(billsec, ceil_seconds(self.ended_at, self.started_at))
        except TypeError:  # not datetimes, or naive: the validators say which field
            pass
        return billsec

    @cost_micros.validator
    def _check_cost(self, _attr: Any, value: Any) -> None:
        if value is not None:
            check_micros("cost_micros", value)

    def __attrs_post_init__(self) -> None:
        if self.billsec > self.duration:
            raise ValidationError("billsec", self.billsec, f"at most duration ({self.duration} s)")
        if self.answered_at is not None and self.answered_at < self.started_at:
            raise ValidationError(
                "answered_at",
                self.answered_at,
                f"not before started_at ({self.started_at.isoformat()})",
            )
        if self.ended_at is not None:
            earliest = self.answered_at or self.started_at
            if self.ended_at < earliest:
                which = "answered_at" if self.answered_at is not None else "started_at"
                raise ValidationError(
                    "ended_at", self.ended_at, f"not before {which} ({earliest.isoformat()})"
                )

    # -- edges -------------------------------------------------------------------------

    @classmethod
    def from_mapping(
        cls,
        row: Mapping[str, Any],
        *,
        default_tz: tzinfo = UTC,
        decimal_separator: str = ".",
    ) -> CDR:
        """Build a CDR from a dict-like row as switches and APIs write them.

        Common field-name aliases are understood (``src``/``from_num`` → caller_number,
        ``dst``/``to_num`` → destination_number, ``start``/``start_ts`` → started_at, …);
        timestamps may be ISO 8601, free text or epoch milliseconds, naive ones taking
        ``default_tz``; ``billsec`` is derived from ``answered_at``/``ended_at`` when absent;
        unknown keys are kept in ``extra``.
        """
        if not isinstance(row, Mapping):
            raise ValidationError("row", row, "a mapping of field names to values")
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in row.items():
            canonical = _ALIASES.get(key.strip().lower()) if isinstance(key, str) else None
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

        def blank(v: Any) -> bool:
            return v is None or (isinstance(v, str) and not v.strip())

        for name in ("started_at", "answered_at", "ended_at"):
            values[name] = parse_timestamp(name, values.get(name), default_tz)
        if values["started_at"] is None:
            raise ValidationError(
                "started_at",
                row.get("started_at"),
                "a start timestamp (started_at or an alias such as start, start_ts, start_time)",
            )

        for name in ("billsec", "duration"):
            if blank(values.get(name)):
                values.pop(name, None)
            else:
                values[name] = _parse_int(name, values[name])
        if "billsec" not in values:
            answered, ended = values["answered_at"], values["ended_at"]
            values["billsec"] = (
                max(0, ceil_seconds(ended, answered))
                if answered is not None and ended is not None
                else 0
            )
        if "duration" not in values and values["ended_at"] is not None:
            values["duration"] = max(
                values["billsec"], ceil_seconds(values["ended_at"], values["started_at"])
            )

        answered_flag = values.pop("answered", None)
        if blank(values.get("disposition")):
            values.pop("disposition", None)
            if not blank(answered_flag):
                is_answered = _parse_bool("answered", answered_flag)
            else:
                is_answered = values["answered_at"] is not None or values["billsec"] > 0
            values["disposition"] = Disposition.ANSWERED if is_answered else Disposition.NO_ANSWER

        cost = values.pop("cost", None)
        if blank(values.get("cost_micros")):
            values.pop("cost_micros", None)
            if not blank(cost):
                values["cost_micros"] = to_micros(
                    cost if not isinstance(cost, str) else cost.strip(),
                    decimal_separator=decimal_separator,
                    field="cost",
                )
        else:
            values["cost_micros"] = _parse_int("cost_micros", values["cost_micros"])

        for name in ("call_id", "destination_number", "caller_number"):
            v = values.get(name)
            if isinstance(v, int) and not isinstance(v, bool):
                values[name] = str(v)
            elif v is None and name == "caller_number":
                values.pop(name, None)
        for name in _OPTIONAL_TEXT:
            if blank(values.get(name)):
                values.pop(name, None)
            elif not isinstance(values[name], str):
                values[name] = str(values[name])
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

    def with_charge(self, charge: Charge) -> CDR:
        """A copy with ``cost_micros`` and ``currency`` set from a charge (both None for an
        unrated call: no cost, so no currency either)."""
        currency = charge.currency if charge.cost_micros is not None else None
        return attrs.evolve(self, cost_micros=charge.cost_micros, currency=currency)

    @property
    def is_billable(self) -> bool:
        """Answered with at least one billable second (rating-rules §2)."""
        return self.disposition is Disposition.ANSWERED and self.billsec > 0


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


def _parse_int(field: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ValidationError(field, value, "a whole number of seconds")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return int(value)
    raise ValidationError(field, value, "a whole number")


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
