"""Records to rows and back: every check of what is written, so that it reads back equal
(private)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeAlias

import attrs

from cdrrating._storage.entities import (
    CDR_ENTITY,
    RATE_ENTITY,
    Field,
    Kind,
    fold,
)
from cdrrating._storage.records import (
    _BIGINT_MAX,
    _EPOCH,
    _MAX_US,
    _MIN_US,
    _ONE_US,
    StoredCDR,
    StoredRate,
    check_instant,
    parse_instant,
)
from cdrrating.cdr import CDR
from cdrrating.charge import Charge, ChargeStatus, Reason
from cdrrating.errors import (
    Conflict,
    NotFound,
    PlanError,
    ValidationError,
)
from cdrrating.plan import RatePlan
from cdrrating.rates import Rate, Tier
from cdrrating.schedule import Schedule

# -- rows: the storage form every adapter keeps ---------------------------------------------


def to_micros_epoch(dt: datetime) -> int:
    # timedelta // timedelta is exact integer arithmetic, done in C.
    return (dt - _EPOCH) // _ONE_US


def from_micros_epoch(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _check_text(field: str, value: str, max_len: int | None) -> None:
    # PostgreSQL refuses NUL in text and no driver can encode a lone surrogate: refuse
    # both here so every adapter behaves alike and nothing half-writes.
    if "\x00" in value:
        raise ValidationError(field, value, "text without NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(field, value, "valid Unicode text (no lone surrogates)") from None
    if max_len is not None and len(value) > max_len:
        raise ValidationError(field, value, f"at most {max_len} characters (got {len(value)})")


def _check_value(field: Field, value: Any) -> None:
    if value is None:
        if not field.nullable:
            raise ValidationError(field.name, value, "a value (not None)")
    elif field.kind is Kind.STR or field.kind is Kind.ENUM:
        _check_text(field.name, value, field.max_len)
    elif field.kind is Kind.INT and not -_BIGINT_MAX - 1 <= value <= _BIGINT_MAX:
        raise ValidationError(field.name, value, "an int that fits a signed 64-bit column")


#: The column that makes a record's identity (tenant, id) a key: the tenant, or "" for
#: records without one (so the database can index it; an empty tenant is refused).
TENANT_KEY = "tenant_key"

#: The rating outcome kept beside a CDR: status, reason, the winning prefix and the
#: billed seconds (all None for a CDR stored unrated).
Outcome: TypeAlias = tuple[ChargeStatus | None, Reason | None, str | None, int | None]
UNRATED_OUTCOME: Outcome = (None, None, None, None)


def tenant_key(tenant: str | None) -> str:
    return "" if tenant is None else tenant


def unpack_cdr(record: Any, position: int | None = None) -> tuple[CDR, Outcome]:
    """Turn what a write method accepts into (CDR, outcome)."""
    try:
        if isinstance(record, CDR):
            return record, UNRATED_OUTCOME
        if isinstance(record, Charge):
            prefix = record.rate.prefix if record.rate is not None else None
            return record.cdr.with_charge(record), (
                record.status,
                record.reason,
                prefix,
                record.billed_seconds,
            )
        if isinstance(record, StoredCDR):
            return record.cdr, (record.status, record.reason, record.prefix, record.billed_seconds)
        if position is not None and isinstance(record, Mapping):
            return CDR.from_mapping(record), UNRATED_OUTCOME
        raise ValidationError("record", record, "a CDR, a Charge or a StoredCDR")
    except ValidationError as e:
        raise _at(e, position) from None


def _at(error: ValidationError, position: int | None) -> ValidationError:
    if position is None:
        return error
    return type(error)(f"records[{position}].{error.field}", error.value, error.expected)


#: The columns of a stored CDR, in table order: :func:`cdr_values` gives them in this order.
CDR_COLUMNS: tuple[str, ...] = (
    "call_id", "tenant_key", "started_at_us", "answered_at_us", "ended_at_us",
    "destination_number", "caller_number", "direction", "disposition", "billsec",
    "duration", "tenant", "extension", "currency", "hangup_cause", "queue_id", "agent_id",
    "cost_micros", "status", "reason", "prefix", "billed_seconds", "in_progress", "extra",
    "created_at_us", "updated_at_us", "caller_number_fold", "destination_number_fold",
)  # fmt: skip


def _extra_text(extra: Mapping[str, Any]) -> str:
    """``extra`` as JSON text, refused unless it reads back equal: JSON has no int keys,
    tuples or NaN, so {1: "a"} or (1, 2) would come back as something else."""
    value = dict(extra)
    try:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False)
        same = json.loads(text) == value and _json_exact(value)
    except (TypeError, ValueError):
        same = False
    if not same:
        raise ValidationError(
            "extra",
            value,
            "a mapping that JSON keeps exactly: str keys; values None, bool, int, finite "
            "float, str, list or such a mapping (no tuples, sets or other types; no NUL "
            "characters, which PostgreSQL's jsonb cannot hold)",
        )
    return text


def _json_exact(value: Any) -> bool:
    # json.loads(...) == value misses a tuple inside a list compared to a list; be exact.
    if isinstance(value, dict):
        return all(
            isinstance(k, str) and "\x00" not in k and _json_exact(v) for k, v in value.items()
        )
    if isinstance(value, list):
        return all(_json_exact(v) for v in value)
    if isinstance(value, str):
        return "\x00" not in value
    return value is None or isinstance(value, bool | int | float)


def cdr_values(
    cdr: CDR,
    outcome: Outcome,
    in_progress: bool,
    *,
    created_us: int,
    updated_us: int,
    position: int | None = None,
) -> tuple[Any, ...]:
    """The storage form of a CDR, validated so that it reads back equal on every
    database, as a tuple in :data:`CDR_COLUMNS` order (timestamps as ``<field>_us``
    microseconds, plus the case-folded ``*_fold`` columns). Bulk inserts send these
    tuples as they are."""
    ext = cdr.extra
    try:
        extra = _extra_text(ext) if ext else "{}"
    except ValidationError as e:
        raise _at(e, position) from None
    answered, ended = cdr.answered_at, cdr.ended_at
    call_id, caller, dest = cdr.call_id, cdr.caller_number, cdr.destination_number
    tenant, extension, currency = cdr.tenant, cdr.extension, cdr.currency
    hangup, queue, agent = cdr.hangup_cause, cdr.queue_id, cdr.agent_id
    billsec, duration, cost = cdr.billsec, cdr.duration, cdr.cost_micros
    status, reason, prefix, billed = outcome
    started_us = (cdr.started_at - _EPOCH) // _ONE_US
    answered_us = (answered - _EPOCH) // _ONE_US if answered is not None else None
    ended_us = (ended - _EPOCH) // _ONE_US if ended is not None else None
    values = (
        call_id,
        tenant if tenant is not None else "",
        started_us,
        answered_us,
        ended_us,
        dest,
        caller,
        # _value_ is the member's own attribute; .value goes through a descriptor, which
        # shows in a million-row add_many.
        cdr.direction._value_,
        cdr.disposition._value_,
        billsec,
        duration,
        tenant,
        extension,
        currency,
        hangup,
        queue,
        agent,
        cost,
        status._value_ if status is not None else None,
        reason._value_ if reason is not None else None,
        prefix,
        billed,
        in_progress,
        extra,
        created_us,
        updated_us,
        caller.casefold(),
        dest.casefold(),
    )
    # The CDR enforced its own limits when it was built; what remains is what a database
    # would refuse mid-batch or could not give back. One pass over the joined text keeps
    # bulk adds fast; the field-by-field check below runs only to name the culprit.
    joined = "".join(
        (call_id, caller, dest, tenant or "", extension or "", currency or "",
         hangup or "", queue or "", agent or "", prefix or "", extra)
    )  # fmt: skip
    if (
        "\x00" in joined
        or (not joined.isascii() and not _encodes(joined))
        or billsec > _BIGINT_MAX
        or duration > _BIGINT_MAX
        or (cost is not None and cost > _BIGINT_MAX)
        or len(call_id) > 255
        or tenant == ""
        or not _MIN_US <= started_us <= _MAX_US
        or (answered_us is not None and not _MIN_US <= answered_us <= _MAX_US)
        or (ended_us is not None and not _MIN_US <= ended_us <= _MAX_US)
        or (prefix is not None and len(prefix) > 50)
        or (billed is not None and not 0 <= billed <= _BIGINT_MAX)
    ):
        _name_the_culprit(cdr, dict(zip(CDR_COLUMNS, values, strict=True)), extra, position)
    return values


def _name_the_culprit(cdr: CDR, row: dict[str, Any], extra: str, position: int | None) -> None:
    try:
        if cdr.tenant == "":
            raise ValidationError("tenant", "", "a non-empty str or None (no tenant)")
        for name in ("started_at", "answered_at", "ended_at"):
            value = getattr(cdr, name)
            if value is not None:
                check_instant(name, value)
        for f in _CDR_CHECKED:
            _check_value(f, row[f.column])
        _check_text("extra", extra, None)
    except ValidationError as e:
        raise _at(e, position) from None


def cdr_row(
    cdr: CDR,
    outcome: Outcome,
    in_progress: bool,
    *,
    created_us: int,
    updated_us: int,
    position: int | None = None,
) -> dict[str, Any]:
    """:func:`cdr_values` as a dict keyed by column name."""
    values = cdr_values(
        cdr, outcome, in_progress, created_us=created_us, updated_us=updated_us, position=position
    )
    return dict(zip(CDR_COLUMNS, values, strict=True))


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _time_cell(row: Mapping[Any, Any], name: str) -> datetime | None:
    """A stored time column (microseconds since the epoch, or null) as a datetime."""
    value = row[name]
    return from_micros_epoch(value) if value is not None else None


_CDR_CHECKED = tuple(f for f in CDR_ENTITY.fields.values() if f.kind is not Kind.JSON)


def stored_cdr(row: Mapping[Any, Any]) -> StoredCDR:
    """The inverse of :func:`cdr_row` (timestamps come back in UTC)."""

    extra = row["extra"]
    cdr = CDR(
        call_id=row["call_id"],
        started_at=from_micros_epoch(row["started_at_us"]),
        answered_at=_time_cell(row, "answered_at_us"),
        ended_at=_time_cell(row, "ended_at_us"),
        destination_number=row["destination_number"],
        caller_number=row["caller_number"],
        direction=row["direction"],
        disposition=row["disposition"],
        billsec=row["billsec"],
        duration=row["duration"],
        tenant=row["tenant"],
        extension=row["extension"],
        currency=row["currency"],
        hangup_cause=row["hangup_cause"],
        queue_id=row["queue_id"],
        agent_id=row["agent_id"],
        cost_micros=row["cost_micros"],
        extra=json.loads(extra) if extra and extra != "{}" else {},
    )
    return StoredCDR(
        cdr=cdr,
        status=ChargeStatus(row["status"]) if row["status"] is not None else None,
        reason=Reason(row["reason"]) if row["reason"] is not None else None,
        prefix=row["prefix"],
        billed_seconds=row["billed_seconds"],
        in_progress=bool(row["in_progress"]),
        created_at=from_micros_epoch(row["created_at_us"]),
        updated_at=from_micros_epoch(row["updated_at_us"]),
    )


def unpack_rate(record: Any, position: int | None = None) -> Rate:
    try:
        if isinstance(record, StoredRate):
            rate = record.rate
        elif position is not None and isinstance(record, Mapping):
            rate = Rate.parse(record)
        elif isinstance(record, Rate):
            rate = record
        else:
            raise ValidationError("rate", record, "a cdrrating.Rate")
    except ValidationError as e:
        raise _at(e, position) from None
    if rate.id is None:
        # A random id, not a counter: ids stay unique across processes and databases.
        rate = attrs.evolve(rate, id=str(uuid.uuid4()))
    return rate


#: The columns of a stored rate, in table order.
RATE_COLUMNS: tuple[str, ...] = (
    "id", "tenant_key", "tenant", "prefix", "destination", "per_minute_micros",
    "connection_fee_micros", "initial_seconds", "increment_seconds", "grace_seconds",
    "minimum_charge_micros", "maximum_charge_micros", "priority", "status", "direction",
    "valid_from_us", "valid_until_us", "source_prefix", "tiers", "schedule",
    "created_at_us", "updated_at_us", "destination_fold",
)  # fmt: skip


def rate_row(
    rate: Rate, created_us: int, updated_us: int, position: int | None = None
) -> dict[str, Any]:
    """The storage form of a rate, refused unless it reads back equal."""
    assert rate.id is not None
    try:
        if rate.tenant == "":
            raise ValidationError("tenant", "", "a non-empty str or None (no tenant)")
        row: dict[str, Any] = {
            "id": rate.id,
            "tenant_key": tenant_key(rate.tenant),
            "tenant": rate.tenant,
            "prefix": rate.prefix,
            "destination": rate.destination,
            "per_minute_micros": rate.per_minute_micros,
            "connection_fee_micros": rate.connection_fee_micros,
            "initial_seconds": rate.initial_seconds,
            "increment_seconds": rate.increment_seconds,
            "grace_seconds": rate.grace_seconds,
            "minimum_charge_micros": rate.minimum_charge_micros,
            "maximum_charge_micros": rate.maximum_charge_micros,
            "priority": rate.priority,
            "status": rate.status.value,
            "direction": rate.direction.value,
            "valid_from_us": (
                check_instant("valid_from", rate.valid_from) if rate.valid_from else None
            ),
            "valid_until_us": (
                check_instant("valid_until", rate.valid_until) if rate.valid_until else None
            ),
            "source_prefix": rate.source_prefix,
            "tiers": json.dumps(
                [[t.after_seconds, t.per_minute_micros, t.increment_seconds] for t in rate.tiers]
            ),
            "schedule": str(rate.schedule) if rate.schedule is not None else None,
            "created_at_us": created_us,
            "updated_at_us": updated_us,
            "destination_fold": fold(rate.destination),
        }
        for f in _RATE_CHECKED:
            _check_value(f, row[f.column])
        # Whatever is stored must read back equal; a schedule whose text form does not
        # parse back (a calendar name with a space, say) is refused here, not at load_plan.
        try:
            back = stored_rate(row).rate
        except ValidationError as e:
            raise ValidationError(
                e.field, e.value, f"a value storage can give back ({e.expected})"
            ) from None
        if back != rate:
            name = next(
                (
                    f.name
                    for f in attrs.fields(Rate)
                    if getattr(back, f.name) != getattr(rate, f.name)
                ),
                "rate",
            )
            raise ValidationError(
                name, getattr(rate, name, rate), "a value whose stored form reads back equal"
            )
    except ValidationError as e:
        raise _at(e, position) from None
    return row


_RATE_CHECKED = tuple(f for f in RATE_ENTITY.fields.values() if f.kind is not Kind.JSON)


def stored_rate(row: Mapping[Any, Any]) -> StoredRate:
    rate = Rate(
        row["prefix"],
        row["per_minute_micros"],
        connection_fee_micros=row["connection_fee_micros"],
        initial_seconds=row["initial_seconds"],
        increment_seconds=row["increment_seconds"],
        tiers=tuple(Tier(a, p, i) for a, p, i in json.loads(row["tiers"] or "[]")),
        grace_seconds=row["grace_seconds"],
        minimum_charge_micros=row["minimum_charge_micros"],
        maximum_charge_micros=row["maximum_charge_micros"],
        priority=row["priority"],
        status=row["status"],
        direction=row["direction"],
        valid_from=_time_cell(row, "valid_from_us"),
        valid_until=_time_cell(row, "valid_until_us"),
        destination=row["destination"],
        id=row["id"],
        tenant=row["tenant"],
        source_prefix=row["source_prefix"],
        schedule=Schedule.parse(row["schedule"]) if row["schedule"] is not None else None,
    )
    return StoredRate(
        rate=rate,
        created_at=from_micros_epoch(row["created_at_us"]),
        updated_at=from_micros_epoch(row["updated_at_us"]),
    )


_CDR_PATCHABLE = frozenset(f.name for f in attrs.fields(CDR)) - {"call_id", "tenant"}
_TIME_ATTRS = frozenset({"started_at", "answered_at", "ended_at", "valid_from", "valid_until"})
_RENAME = "no {0} (with the id it identifies the record: delete and add to move it)"


def patch_cdr(stored: StoredCDR, changes: Mapping[str, Any]) -> tuple[CDR, Outcome, bool]:
    """Apply a PATCH to a stored CDR; the result is validated like a new CDR."""
    if not isinstance(changes, Mapping):
        raise ValidationError("changes", changes, "a mapping of field names to new values")
    cdr_changes: dict[str, Any] = {}
    status, reason, in_progress = stored.status, stored.reason, stored.in_progress
    prefix, billed = stored.prefix, stored.billed_seconds
    for name, value in changes.items():
        if name == "status":
            status = ChargeStatus.parse(value) if value is not None else None
        elif name == "reason":
            reason = Reason.parse(value) if value is not None else None
        elif name == "prefix":
            if value is not None and not isinstance(value, str):
                raise ValidationError("prefix", value, "a str or None")
            prefix = value
        elif name == "billed_seconds":
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValidationError("billed_seconds", value, "an int >= 0 or None")
            if value is not None and value < 0:
                raise ValidationError("billed_seconds", value, "an int >= 0 or None")
            billed = value
        elif name == "in_progress":
            if not isinstance(value, bool):
                raise ValidationError("in_progress", value, "a bool")
            in_progress = value
        elif name in ("call_id", "tenant"):
            if name == "tenant" and value == stored.cdr.tenant:
                continue
            raise ValidationError(name, value, _RENAME.format(name))
        elif name in _CDR_PATCHABLE:
            new = parse_instant(name, value) if name in _TIME_ATTRS else value
            if new is None and name == "started_at":
                raise ValidationError(name, value, "a timestamp")
            cdr_changes[name] = new
        else:
            expected = "one of " + ", ".join(sorted(_CDR_PATCHABLE | set(_OUTCOME_NAMES)))
            raise ValidationError(str(name), value, expected)
    return attrs.evolve(stored.cdr, **cdr_changes), (status, reason, prefix, billed), in_progress


_OUTCOME_NAMES = ("status", "reason", "prefix", "billed_seconds", "in_progress")
_RATE_PATCHABLE = frozenset(f.name for f in attrs.fields(Rate)) - {"id", "tenant"}


def patch_rate(rate: Rate, changes: Mapping[str, Any]) -> Rate:
    if not isinstance(changes, Mapping):
        raise ValidationError("changes", changes, "a mapping of field names to new values")
    out: dict[str, Any] = {}
    for name, given in changes.items():
        if name in ("id", "tenant"):
            if name == "tenant" and given == rate.tenant:
                continue
            raise ValidationError(name, given, _RENAME.format(name))
        if name not in _RATE_PATCHABLE:
            raise ValidationError(str(name), given, "one of " + ", ".join(sorted(_RATE_PATCHABLE)))
        value = given
        if name in _TIME_ATTRS:
            value = parse_instant(name, given)
        elif name == "schedule" and isinstance(given, str):
            value = Schedule.parse(given)  # the form to_mapping() writes
        out[name] = value
    return attrs.evolve(rate, **out)


def check_same_tenant(tenant: str | None, record_tenant: str | None) -> None:
    """A write scoped to a tenant may not touch a record of another tenant."""
    if tenant is not None and record_tenant != tenant:
        raise ValidationError(
            "tenant", record_tenant, f"the tenant the call is made for ({tenant!r})"
        )


def check_id(kind: str, value: Any) -> str:
    """Ids are non-empty strings; anything else is an id of another kind: not found."""
    if not isinstance(value, str) or not value or len(value) > 255 or "\x00" in value:
        raise NotFound(
            f"no {kind} with id {value!r} (ids are non-empty strings of at most 255 characters)"
        )
    return value


def check_tenant(value: Any) -> str:
    """The identity key of the ``tenant=`` an operation names (None: no tenant)."""
    if value is None:
        return ""
    if not isinstance(value, str) or not value or len(value) > 255:
        raise ValidationError("tenant", value, "a non-empty str of at most 255 characters, or None")
    return value


def not_found(kind: str, value: str) -> Exception:
    return NotFound(f"no {kind} with id {value!r}")


def late_start(stored_in_progress: bool, incoming_in_progress: bool) -> bool:
    """The lifecycle rule: a start row never replaces a completed row (a late or
    repeated start event must not erase a completion). The SQL adapter states the same
    rule in its upsert statement (``cdrrating.sql._late_start``)."""
    return incoming_in_progress and not stored_in_progress


def check_plan(tenant: str | None, rates: Sequence[Rate]) -> None:
    """Refuse, with :class:`~cdrrating.Conflict`, rates that would make a tenant's deck
    ambiguous: the plan's own rule (two active rates of one prefix, direction and
    priority in force at one instant), checked before the write. ``rates`` are the
    stored rates that share a prefix with the written ones, plus those. Schedules are
    read in UTC with empty holiday calendars here; an overlap that only a calendar
    creates is found when the plan is loaded."""
    calendars = {name for r in rates if r.schedule is not None for name in r.schedule.calendars}
    try:
        RatePlan(list(rates), currency="XXX", holidays=dict.fromkeys(calendars, ()))
    except PlanError as e:
        raise Conflict(
            f"tenant {tenant!r}: this write would make the rate plan ambiguous: {e}"
        ) from None
