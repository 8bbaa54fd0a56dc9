"""Storage ports: repository protocols, the query object, pages and cursors.

Adapters live in :mod:`cdrrating.memory` (in-process) and :mod:`cdrrating.sql`
(SQLAlchemy Core). Nothing here imports a database library: the domain and these
protocols are usable without the ``[sql]`` extra.

A stored CDR is a :class:`StoredCDR`: the immutable :class:`~cdrrating.CDR` plus what
the repository keeps about it (the rating outcome ``status``/``reason``, whether the
call is still ``in_progress``, and ``created_at``/``updated_at`` from the repository's
clock). Rates are stored as :class:`StoredRate` in the same way.

Everything an adapter needs to behave exactly like the others (validation of what is
written, the Mongo-style filter and its evaluation, search folding, cursor signing,
page assembly) is in this module, so a third-party adapter only has to translate.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
import re
import secrets
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Literal, Protocol, TypeAlias, TypeVar, runtime_checkable

import attrs

from cdrrating._validate import parse_timestamp
from cdrrating.cdr import CDR, Direction, Disposition
from cdrrating.errors import NotFound, ValidationError
from cdrrating.money import Rounding
from cdrrating.plan import RatePlan
from cdrrating.rates import Rate, RateStatus, Tier
from cdrrating.rating import Charge, ChargeStatus, Reason
from cdrrating.schedule import Schedule

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "CDRRecord",
    "CDRRepository",
    "Clock",
    "CursorCodec",
    "Page",
    "Query",
    "RateRepository",
    "StoredCDR",
    "StoredRate",
    "system_clock",
]

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000
# SQL BIGINT is signed 64-bit; a larger int would be refused by the database mid-batch.
_BIGINT_MAX = 2**63 - 1

Clock: TypeAlias = Callable[[], datetime]


def system_clock() -> datetime:
    """The default repository clock: the current time, UTC."""
    return datetime.now(UTC)


T = TypeVar("T")


# -- stored records -------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class StoredCDR:
    """A CDR as a repository holds it.

    ``cdr.cost_micros``/``cdr.currency`` carry the cost; ``status`` and ``reason`` the
    rest of the rating outcome (None when the CDR was stored unrated). ``in_progress``
    marks a start row written when the call was routed; a completion replaces it.
    ``created_at``/``updated_at`` are set by the repository from its clock.
    """

    cdr: CDR
    status: ChargeStatus | None = None
    reason: Reason | None = None
    in_progress: bool = False
    created_at: datetime
    updated_at: datetime

    @property
    def call_id(self) -> str:
        return self.cdr.call_id

    def to_mapping(self, fields: Sequence[str] | None = None) -> dict[str, Any]:
        """JSON-ready mapping: the CDR's fields, then status, reason, in_progress and the
        two timestamps (ISO 8601). ``fields`` keeps only those keys, in that order."""
        out = self.cdr.to_mapping()
        out["status"] = self.status.value if self.status is not None else None
        out["reason"] = self.reason.value if self.reason is not None else None
        out["in_progress"] = self.in_progress
        out["created_at"] = self.created_at.isoformat()
        out["updated_at"] = self.updated_at.isoformat()
        if fields is None:
            return out
        return {name: out[name] for name in fields}


@attrs.frozen(kw_only=True)
class StoredRate:
    """A rate as a repository holds it; ``rate.id`` is always set."""

    rate: Rate
    created_at: datetime
    updated_at: datetime

    @property
    def id(self) -> str:
        assert self.rate.id is not None
        return self.rate.id

    def to_mapping(self, fields: Sequence[str] | None = None) -> dict[str, Any]:
        r = self.rate
        out: dict[str, Any] = {
            name: getattr(r, name)
            for name in (
                "id",
                "tenant",
                "prefix",
                "destination",
                "per_minute_micros",
                "connection_fee_micros",
                "initial_seconds",
                "increment_seconds",
                "grace_seconds",
                "minimum_charge_micros",
                "maximum_charge_micros",
                "priority",
            )
        }
        out["status"] = r.status.value
        out["direction"] = r.direction.value
        out["valid_from"] = r.valid_from.isoformat() if r.valid_from else None
        out["valid_until"] = r.valid_until.isoformat() if r.valid_until else None
        out["tiers"] = [attrs.asdict(t) for t in r.tiers]
        out["source_prefix"] = r.source_prefix
        out["schedule"] = str(r.schedule) if r.schedule is not None else None
        out["created_at"] = self.created_at.isoformat()
        out["updated_at"] = self.updated_at.isoformat()
        if fields is None:
            return out
        return {name: out[name] for name in fields}


#: What CDR write methods accept: a CDR (stored unrated), a Charge (the CDR with its
#: cost, currency, status and reason), or a StoredCDR (its timestamps are ignored).
CDRRecord: TypeAlias = CDR | Charge | StoredCDR


# -- the query object -----------------------------------------------------------------------


def _since(value: Any) -> datetime | None:
    return parse_timestamp("since", value)


def _until(value: Any) -> datetime | None:
    return parse_timestamp("until", value)


def _updated_since(value: Any) -> datetime | None:
    return parse_timestamp("updated_since", value)


def _updated_before(value: Any) -> datetime | None:
    return parse_timestamp("updated_before", value)


def _limit(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError("limit", value, f"an int from 1 to {MAX_LIMIT}")
    # An API's "capped at" means a larger ask gets the largest page, not an error.
    return min(value, MAX_LIMIT)


def _fields(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    try:
        out = tuple(value)
    except TypeError:
        raise ValidationError("fields", value, "a sequence of field names") from None
    for name in out:
        if not isinstance(name, str):
            raise ValidationError("fields", value, "a sequence of field names")
    return tuple(n.strip() for n in out)


def _opt_text(field: str, max_len: int) -> Callable[[Any, Any, Any], None]:
    def check(_i: Any, _a: Any, value: Any) -> None:
        if value is not None and (not isinstance(value, str) or len(value) > max_len):
            raise ValidationError(field, value, f"a str of at most {max_len} characters")

    return check


@attrs.frozen(kw_only=True)
class Query:
    """What to list. Every part is optional; the empty query lists everything, newest first.

    - ``tenant``: only this tenant's records.
    - ``search``: case-insensitive substring over caller number, destination number,
      direction and disposition (rates: prefix, destination label and status).
      ``%`` and ``_`` are literal.
    - ``since``/``until``: ``started_at`` (rates: ``created_at``) in ``[since, until)``;
      epoch milliseconds, ISO 8601 text or an aware datetime.
    - ``where``: a MongoDB-style filter over named fields, e.g.
      ``{"billsec": {"$gte": 60}, "$or": [{"tenant": "a"}, {"tenant": None}]}``.
    - ``updated_since``/``updated_before``: ``updated_at`` in ``[since, before)``.
    - ``sort`` (default ``started_at``; rates ``created_at``) and ``order`` (``"desc"``
      default); ties are broken by the id in the same order, so pages are stable.
    - ``limit``: page size, default 1000, larger values are capped at 10,000.
    - ``cursor``: a ``next_cursor``/``previous_cursor`` from a page of the same query.
    - ``fields``: the keys :meth:`Page.to_records` returns.
    - ``include_in_progress``: include start rows of calls that have not ended.
    """

    tenant: str | None = attrs.field(default=None, validator=_opt_text("tenant", 255))
    search: str | None = attrs.field(default=None, validator=_opt_text("search", 255))
    since: datetime | None = attrs.field(default=None, converter=_since)
    until: datetime | None = attrs.field(default=None, converter=_until)
    where: Mapping[str, Any] | None = attrs.field(default=None)
    updated_since: datetime | None = attrs.field(default=None, converter=_updated_since)
    updated_before: datetime | None = attrs.field(default=None, converter=_updated_before)
    sort: str | None = attrs.field(default=None, validator=_opt_text("sort", 64))
    order: Literal["asc", "desc"] = attrs.field(default="desc")
    limit: int = attrs.field(default=DEFAULT_LIMIT, converter=_limit)
    cursor: str | None = attrs.field(default=None, validator=_opt_text("cursor", 4096))
    fields: tuple[str, ...] | None = attrs.field(default=None, converter=_fields)
    include_in_progress: bool = attrs.field(default=True)

    @order.validator
    def _check_order(self, _a: Any, value: Any) -> None:
        if value not in ("asc", "desc"):
            raise ValidationError("order", value, "'asc' or 'desc'")

    @where.validator
    def _check_where(self, _a: Any, value: Any) -> None:
        if value is not None and not isinstance(value, Mapping):
            raise ValidationError("where", value, "a mapping (a MongoDB-style filter)")

    def after(self, cursor: str | None) -> Query:
        """This query at another cursor (``page.next_cursor`` or ``page.previous_cursor``)."""
        return attrs.evolve(self, cursor=cursor)


@attrs.frozen
class Page(Generic[T]):
    """One page of a listing. Iterate it for the items.

    ``next_cursor``/``previous_cursor`` are None at either end. ``count`` is the number
    of records matching the query (all pages) when the adapter knows it cheaply,
    else None: ask ``repository.count(query)``.
    """

    items: tuple[T, ...]
    next_cursor: str | None = None
    previous_cursor: str | None = None
    count: int | None = None
    fields: tuple[str, ...] | None = None

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def to_records(self) -> list[dict[str, Any]]:
        """The items as JSON-ready dicts holding the query's ``fields`` (all if None)."""
        # T is StoredCDR or StoredRate; both have to_mapping, which a bare TypeVar hides.
        return [item.to_mapping(self.fields) for item in self.items]  # type: ignore[attr-defined]


# -- protocols ------------------------------------------------------------------------------


@runtime_checkable
class CDRRepository(Protocol):
    """Where CDRs are kept. Every adapter passes :mod:`cdrrating.testing.contract`.

    Errors: :class:`~cdrrating.NotFound` for an unknown id (or one of another tenant
    when ``tenant`` is given), :class:`~cdrrating.Conflict` for an id already stored,
    :class:`~cdrrating.ValidationError` for anything refused before it is written.
    """

    def add(self, record: CDRRecord) -> StoredCDR:
        """Store a new CDR; Conflict if its call_id is stored already."""
        ...

    def add_many(self, records: Iterable[CDRRecord | Mapping[str, Any]]) -> int:
        """Store many new CDRs in one transaction: all or none. Mappings go through
        ``CDR.from_mapping``. An error names the position of the offending record."""
        ...

    def upsert(self, record: CDRRecord, *, in_progress: bool = False) -> StoredCDR:
        """Insert or replace by call_id. A start row (``in_progress=True``) never
        replaces a completed row, so a late start row cannot erase a completion.
        Returns what is stored afterwards."""
        ...

    def upsert_many(
        self, records: Iterable[CDRRecord | Mapping[str, Any]], *, in_progress: bool = False
    ) -> int:
        """:meth:`upsert` for many records in one transaction: all or none. Returns how
        many distinct calls were written (a call given twice: the last record wins)."""
        ...

    def get(self, call_id: str, *, tenant: str | None = None) -> StoredCDR: ...

    def replace(
        self, record: CDRRecord, *, tenant: str | None = None, in_progress: bool = False
    ) -> StoredCDR:
        """PUT: replace the stored CDR with this call_id; NotFound if there is none."""
        ...

    def update(
        self, call_id: str, changes: Mapping[str, Any], *, tenant: str | None = None
    ) -> StoredCDR:
        """PATCH: change some fields (CDR fields, ``status``, ``reason``, ``in_progress``)."""
        ...

    def delete(self, call_id: str, *, tenant: str | None = None) -> None: ...

    def query(self, query: Query | None = None) -> Page[StoredCDR]: ...

    def count(self, query: Query | None = None) -> int:
        """How many records match (cursor and limit ignored)."""
        ...

    def prune(
        self,
        older_than: datetime | timedelta,
        *,
        archive: Callable[[Sequence[StoredCDR]], object] | None = None,
        tenant: str | None = None,
        batch_size: int = 10_000,
    ) -> int:
        """Delete CDRs that started before ``older_than`` (a datetime, or an age measured
        back from the repository clock), oldest first, ``batch_size`` at a time. Each
        batch is handed to ``archive`` first and deleted only if it returns; if it
        raises, that batch and all later ones are kept and the error propagates.
        Returns how many were deleted."""
        ...


@runtime_checkable
class RateRepository(Protocol):
    """Where rate decks are kept. A rate without an ``id`` is given a UUID when added."""

    def add(self, rate: Rate) -> StoredRate: ...

    def add_many(self, rates: Iterable[Rate | Mapping[str, Any]]) -> int: ...

    def get(self, rate_id: str, *, tenant: str | None = None) -> StoredRate: ...

    def replace(self, rate: Rate, *, tenant: str | None = None) -> StoredRate: ...

    def update(
        self, rate_id: str, changes: Mapping[str, Any], *, tenant: str | None = None
    ) -> StoredRate: ...

    def delete(self, rate_id: str, *, tenant: str | None = None) -> None: ...

    def query(self, query: Query | None = None) -> Page[StoredRate]: ...

    def count(self, query: Query | None = None) -> int: ...

    def load_plan(
        self,
        tenant: str | None,
        at: datetime | None = None,
        *,
        currency: str,
        rounding: Rounding | str = Rounding.UP,
        quantum_micros: int = 1,
        access_prefixes: Sequence[str] = ("00",),
        name: str | None = None,
        **plan_options: Any,
    ) -> RatePlan:
        """The tenant's deck (``None``: the rates stored without a tenant) as a plan;
        with ``at``, only the rates in force at that instant. ``plan_options`` are the
        other :class:`~cdrrating.RatePlan` keywords (``timezone``, ``holidays``,
        ``band_policy``) that scheduled rates are read with."""
        ...


# -- fields: one description shared by every adapter ---------------------------------------


class Kind(enum.Enum):
    STR = "str"
    INT = "int"
    TIME = "time"  # stored as int microseconds since the epoch, UTC
    BOOL = "bool"
    ENUM = "enum"  # stored as the enum's value (a str)
    JSON = "json"  # stored as JSON text; not filterable


@attrs.frozen
class Field:
    name: str
    kind: Kind
    nullable: bool = False
    max_len: int | None = None
    parse: Callable[[Any], enum.Enum] | None = None  # ENUM fields: text → member

    @property
    def column(self) -> str:
        return self.name + "_us" if self.kind is Kind.TIME else self.name

    @property
    def sortable(self) -> bool:
        # Keyset pagination needs a non-null sort key; nullable fields would need NULLS
        # FIRST/LAST handling that the dialects spell differently.
        return not self.nullable and self.kind is not Kind.JSON


@attrs.frozen
class Entity:
    """What an adapter needs to know about one stored type."""

    name: str  # "cdr" | "rate"
    key: str  # the unique id field
    time_field: str  # since/until apply to it
    default_sort: str
    fields: Mapping[str, Field]
    fold_fields: tuple[str, ...]  # searched case-insensitively through a *_fold column
    plain_fields: tuple[str, ...]  # searched as stored (they hold no letters)
    enum_search: tuple[tuple[str, tuple[str, ...]], ...]  # searched by value set


def _charge_status(v: Any) -> ChargeStatus:
    if isinstance(v, ChargeStatus):
        return v
    if isinstance(v, str):
        try:
            return ChargeStatus(v.strip().upper())
        except ValueError:
            pass
    raise ValidationError("status", v, "one of " + ", ".join(m.value for m in ChargeStatus))


def _reason(v: Any) -> Reason:
    if isinstance(v, Reason):
        return v
    if isinstance(v, str):
        try:
            return Reason(v.strip().upper())
        except ValueError:
            pass
    raise ValidationError("reason", v, "one of " + ", ".join(m.value for m in Reason))


def _fmap(*fields: Field) -> dict[str, Field]:
    return {f.name: f for f in fields}


CDR_ENTITY = Entity(
    name="cdr",
    key="call_id",
    time_field="started_at",
    default_sort="started_at",
    fields=_fmap(
        Field("call_id", Kind.STR, max_len=255),
        Field("started_at", Kind.TIME),
        Field("answered_at", Kind.TIME, nullable=True),
        Field("ended_at", Kind.TIME, nullable=True),
        Field("destination_number", Kind.STR, max_len=50),
        Field("caller_number", Kind.STR, max_len=50),
        Field("direction", Kind.ENUM, max_len=50, parse=Direction.parse),
        Field("disposition", Kind.ENUM, max_len=50, parse=Disposition.parse),
        Field("billsec", Kind.INT),
        Field("duration", Kind.INT),
        Field("tenant", Kind.STR, nullable=True, max_len=255),
        Field("extension", Kind.STR, nullable=True, max_len=255),
        Field("currency", Kind.STR, nullable=True, max_len=3),
        Field("hangup_cause", Kind.STR, nullable=True, max_len=255),
        Field("queue_id", Kind.STR, nullable=True, max_len=255),
        Field("agent_id", Kind.STR, nullable=True, max_len=255),
        Field("cost_micros", Kind.INT, nullable=True),
        Field("status", Kind.ENUM, nullable=True, max_len=32, parse=_charge_status),
        Field("reason", Kind.ENUM, nullable=True, max_len=32, parse=_reason),
        Field("in_progress", Kind.BOOL),
        Field("extra", Kind.JSON),
        Field("created_at", Kind.TIME),
        Field("updated_at", Kind.TIME),
    ),
    fold_fields=("caller_number", "destination_number"),
    plain_fields=(),
    enum_search=(
        ("direction", tuple(m.value for m in Direction)),
        ("disposition", tuple(m.value for m in Disposition)),
    ),
)

RATE_ENTITY = Entity(
    name="rate",
    key="id",
    time_field="created_at",
    default_sort="created_at",
    fields=_fmap(
        Field("id", Kind.STR, max_len=255),
        Field("tenant", Kind.STR, nullable=True, max_len=255),
        Field("prefix", Kind.STR, max_len=50),
        Field("destination", Kind.STR, max_len=255),
        Field("per_minute_micros", Kind.INT),
        Field("connection_fee_micros", Kind.INT),
        Field("initial_seconds", Kind.INT),
        Field("increment_seconds", Kind.INT),
        Field("grace_seconds", Kind.INT),
        Field("minimum_charge_micros", Kind.INT),
        Field("maximum_charge_micros", Kind.INT, nullable=True),
        Field("priority", Kind.INT),
        Field("status", Kind.ENUM, max_len=32, parse=RateStatus.parse),
        Field("direction", Kind.ENUM, max_len=50, parse=Direction.parse),
        Field("valid_from", Kind.TIME, nullable=True),
        Field("valid_until", Kind.TIME, nullable=True),
        Field("source_prefix", Kind.STR, nullable=True, max_len=255),
        Field("tiers", Kind.JSON),
        # The compact form str(Schedule) writes and Schedule.parse reads back exactly.
        Field("schedule", Kind.STR, nullable=True),
        Field("created_at", Kind.TIME),
        Field("updated_at", Kind.TIME),
    ),
    fold_fields=("destination",),
    plain_fields=("prefix",),
    enum_search=(("status", tuple(m.value for m in RateStatus)),),
)


def fold(text: str) -> str:
    """The case-insensitive form searches compare (Unicode case folding, done in Python
    so that every database agrees: SQLite's ``lower()`` folds ASCII only)."""
    return text.casefold()


# -- rows: the storage form every adapter keeps ---------------------------------------------


def to_micros_epoch(dt: datetime) -> int:
    # timedelta // timedelta is exact integer arithmetic, done in C.
    return (dt - _EPOCH) // _ONE_US


def from_micros_epoch(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


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


def unpack_cdr(
    record: Any, position: int | None = None
) -> tuple[CDR, ChargeStatus | None, Reason | None]:
    """Turn what a write method accepts into (CDR, status, reason)."""
    try:
        if isinstance(record, CDR):
            return record, None, None
        if isinstance(record, Charge):
            return record.cdr.with_charge(record), record.status, record.reason
        if isinstance(record, StoredCDR):
            return record.cdr, record.status, record.reason
        if position is not None and isinstance(record, Mapping):
            return CDR.from_mapping(record), None, None
        raise ValidationError("record", record, "a CDR, a Charge or a StoredCDR")
    except ValidationError as e:
        raise _at(e, position) from None


def _at(error: ValidationError, position: int | None) -> ValidationError:
    if position is None:
        return error
    return type(error)(f"records[{position}].{error.field}", error.value, error.expected)


#: The columns of a stored CDR, in table order: :func:`cdr_values` gives them in this order.
CDR_COLUMNS: tuple[str, ...] = (
    "call_id", "started_at_us", "answered_at_us", "ended_at_us", "destination_number",
    "caller_number", "direction", "disposition", "billsec", "duration", "tenant",
    "extension", "currency", "hangup_cause", "queue_id", "agent_id", "cost_micros",
    "status", "reason", "in_progress", "extra", "created_at_us", "updated_at_us",
    "caller_number_fold", "destination_number_fold",
)  # fmt: skip


def cdr_values(
    cdr: CDR,
    status: ChargeStatus | None,
    reason: Reason | None,
    in_progress: bool,
    *,
    created_us: int,
    updated_us: int,
    position: int | None = None,
) -> tuple[Any, ...]:
    """The storage form of a CDR, validated for every database, as a tuple in
    :data:`CDR_COLUMNS` order (timestamps as ``<field>_us`` microseconds, plus the
    case-folded ``*_fold`` columns). Bulk inserts send these tuples as they are."""
    ext = cdr.extra
    try:
        extra = json.dumps(dict(ext), sort_keys=True, ensure_ascii=False) if ext else "{}"
    except (TypeError, ValueError):
        raise _at(
            ValidationError("extra", dict(ext), "JSON-serialisable values"), position
        ) from None
    answered, ended = cdr.answered_at, cdr.ended_at
    call_id, caller, dest = cdr.call_id, cdr.caller_number, cdr.destination_number
    tenant, extension, currency = cdr.tenant, cdr.extension, cdr.currency
    hangup, queue, agent = cdr.hangup_cause, cdr.queue_id, cdr.agent_id
    billsec, duration, cost = cdr.billsec, cdr.duration, cdr.cost_micros
    values = (
        call_id,
        (cdr.started_at - _EPOCH) // _ONE_US,
        (answered - _EPOCH) // _ONE_US if answered is not None else None,
        (ended - _EPOCH) // _ONE_US if ended is not None else None,
        dest,
        caller,
        cdr.direction.value,
        cdr.disposition.value,
        billsec,
        duration,
        tenant,
        extension,
        currency,
        hangup,
        queue,
        agent,
        cost,
        status.value if status is not None else None,
        reason.value if reason is not None else None,
        in_progress,
        extra,
        created_us,
        updated_us,
        caller.casefold(),
        dest.casefold(),
    )
    # The CDR enforced its own limits when it was built; what remains is what a database
    # would refuse mid-batch. One pass over the joined text keeps bulk adds fast; the
    # field-by-field check below runs only to name the culprit.
    joined = "".join(
        [call_id, caller, dest, tenant or "", extension or "", currency or "",
         hangup or "", queue or "", agent or "", extra]
    )  # fmt: skip
    if (
        "\x00" in joined
        or (not joined.isascii() and not _encodes(joined))
        or billsec > _BIGINT_MAX
        or duration > _BIGINT_MAX
        or (cost is not None and cost > _BIGINT_MAX)
        or len(call_id) > 255
    ):
        row = dict(zip(CDR_COLUMNS, values, strict=True))
        try:
            for f in _CDR_CHECKED:
                _check_value(f, row[f.column])
            _check_text("extra", extra, None)
        except ValidationError as e:
            raise _at(e, position) from None
    return values


def cdr_row(
    cdr: CDR,
    status: ChargeStatus | None,
    reason: Reason | None,
    in_progress: bool,
    *,
    created_us: int,
    updated_us: int,
    position: int | None = None,
) -> dict[str, Any]:
    """:func:`cdr_values` as a dict keyed by column name."""
    values = cdr_values(
        cdr, status, reason, in_progress,
        created_us=created_us, updated_us=updated_us, position=position,
    )  # fmt: skip
    return dict(zip(CDR_COLUMNS, values, strict=True))


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_CDR_CHECKED = tuple(f for f in CDR_ENTITY.fields.values() if f.kind is not Kind.JSON)


def stored_cdr(row: Mapping[Any, Any]) -> StoredCDR:
    """The inverse of :func:`cdr_row` (timestamps come back in UTC)."""

    def ts(name: str) -> datetime | None:
        v = row[name]
        return from_micros_epoch(v) if v is not None else None

    extra = row["extra"]
    cdr = CDR(
        call_id=row["call_id"],
        started_at=from_micros_epoch(row["started_at_us"]),
        answered_at=ts("answered_at_us"),
        ended_at=ts("ended_at_us"),
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


def rate_row(
    rate: Rate, created_us: int, updated_us: int, position: int | None = None
) -> dict[str, Any]:
    assert rate.id is not None
    row: dict[str, Any] = {
        "id": rate.id,
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
        "valid_from_us": to_micros_epoch(rate.valid_from) if rate.valid_from else None,
        "valid_until_us": to_micros_epoch(rate.valid_until) if rate.valid_until else None,
        "source_prefix": rate.source_prefix,
        "tiers": json.dumps(
            [[t.after_seconds, t.per_minute_micros, t.increment_seconds] for t in rate.tiers]
        ),
        "schedule": str(rate.schedule) if rate.schedule is not None else None,
        "created_at_us": created_us,
        "updated_at_us": updated_us,
        "destination_fold": fold(rate.destination),
    }
    try:
        for f in _RATE_CHECKED:
            _check_value(f, row[f.column])
    except ValidationError as e:
        raise _at(e, position) from None
    return row


_RATE_CHECKED = tuple(f for f in RATE_ENTITY.fields.values() if f.kind is not Kind.JSON)


def stored_rate(row: Mapping[Any, Any]) -> StoredRate:
    def ts(name: str) -> datetime | None:
        v = row[name]
        return from_micros_epoch(v) if v is not None else None

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
        valid_from=ts("valid_from_us"),
        valid_until=ts("valid_until_us"),
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


_CDR_PATCHABLE = frozenset(f.name for f in attrs.fields(CDR)) - {"call_id"}
_TIME_ATTRS = frozenset({"started_at", "answered_at", "ended_at", "valid_from", "valid_until"})


def patch_cdr(
    stored: StoredCDR, changes: Mapping[str, Any]
) -> tuple[CDR, ChargeStatus | None, Reason | None, bool]:
    """Apply a PATCH to a stored CDR; the result is validated like a new CDR."""
    if not isinstance(changes, Mapping):
        raise ValidationError("changes", changes, "a mapping of field names to new values")
    cdr_changes: dict[str, Any] = {}
    status, reason, in_progress = stored.status, stored.reason, stored.in_progress
    for name, value in changes.items():
        if name == "status":
            status = _charge_status(value) if value is not None else None
        elif name == "reason":
            reason = _reason(value) if value is not None else None
        elif name == "in_progress":
            if not isinstance(value, bool):
                raise ValidationError("in_progress", value, "a bool")
            in_progress = value
        elif name in _CDR_PATCHABLE:
            cdr_changes[name] = parse_timestamp(name, value) if name in _TIME_ATTRS else value
        else:
            expected = "one of " + ", ".join(
                sorted(_CDR_PATCHABLE | {"status", "reason", "in_progress"})
            )
            if name == "call_id":
                expected = "no call_id (it identifies the record; delete and add to rename)"
            raise ValidationError(str(name), value, expected)
    return attrs.evolve(stored.cdr, **cdr_changes), status, reason, in_progress


_RATE_PATCHABLE = frozenset(f.name for f in attrs.fields(Rate)) - {"id"}


def patch_rate(rate: Rate, changes: Mapping[str, Any]) -> Rate:
    if not isinstance(changes, Mapping):
        raise ValidationError("changes", changes, "a mapping of field names to new values")
    out: dict[str, Any] = {}
    for name, given in changes.items():
        if name not in _RATE_PATCHABLE:
            raise ValidationError(str(name), given, "one of " + ", ".join(sorted(_RATE_PATCHABLE)))
        value = given
        if name in _TIME_ATTRS:
            value = parse_timestamp(name, given)
        elif name == "schedule" and isinstance(given, str):
            value = Schedule.parse(given)  # the form to_mapping() writes
        out[name] = value
    return attrs.evolve(rate, **out)


def check_same_tenant(tenant: str | None, record_tenant: str | None) -> None:
    """A write scoped to a tenant may not move a record to another tenant."""
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


def not_found(kind: str, value: str) -> Exception:
    return NotFound(f"no {kind} with id {value!r}")


# -- the Mongo-style filter -----------------------------------------------------------------

# A parsed filter is a small tree of tuples, the same for every adapter:
#   ("and", [node, ...]) | ("or", [node, ...])
#   ("cmp", column, op, value)        op in eq ne gt gte lt lte; value may be None for eq/ne
#   ("in", column, [values], negate)  values may hold None
#   ("exists", column, bool)
#   ("regex", column, pattern)
Node: TypeAlias = tuple[Any, ...]

_CMP = {"$eq": "eq", "$ne": "ne", "$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}


def parse_filter(entity: Entity, spec: Mapping[str, Any], path: str = "where") -> Node:
    """Validate a MongoDB-style filter and bring its values to storage form."""
    if not isinstance(spec, Mapping):
        raise ValidationError(path, spec, "a mapping")
    parts: list[Node] = []
    for key, value in spec.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list | tuple) or not value:
                raise ValidationError(f"{path}.{key}", value, "a non-empty list of filters")
            parts.append(
                (
                    key[1:],
                    [parse_filter(entity, v, f"{path}.{key}[{i}]") for i, v in enumerate(value)],
                )
            )
        elif isinstance(key, str) and key.startswith("$"):
            raise ValidationError(f"{path}.{key}", value, "a field name, '$and' or '$or'")
        else:
            field = _filter_field(entity, key, path)
            parts.extend(_parse_field_ops(field, value, f"{path}.{key}"))
    return ("and", parts)


def _filter_field(entity: Entity, name: Any, path: str) -> Field:
    field = entity.fields.get(name) if isinstance(name, str) else None
    if field is None or field.kind is Kind.JSON:
        names = ", ".join(n for n, f in entity.fields.items() if f.kind is not Kind.JSON)
        raise ValidationError(f"{path}.{name}", name, f"a field name: {names}")
    return field


def _parse_field_ops(field: Field, value: Any, path: str) -> list[Node]:
    col = field.column
    if not (
        isinstance(value, Mapping)
        and value
        and all(isinstance(k, str) and k.startswith("$") for k in value)
    ):
        return [("cmp", col, "eq", _coerce(field, value, path, allow_none=True))]
    out: list[Node] = []
    for op, arg in value.items():
        where = f"{path}.{op}"
        if op in _CMP:
            allow_none = op in ("$eq", "$ne")
            out.append(("cmp", col, _CMP[op], _coerce(field, arg, where, allow_none=allow_none)))
        elif op in ("$in", "$nin"):
            if not isinstance(arg, list | tuple | set | frozenset):
                raise ValidationError(where, arg, "a list of values")
            values = [_coerce(field, v, where, allow_none=True) for v in arg]
            out.append(("in", col, values, op == "$nin"))
        elif op == "$exists":
            if not isinstance(arg, bool):
                raise ValidationError(where, arg, "true or false")
            out.append(("exists", col, arg))
        elif op == "$regex":
            if field.kind not in (Kind.STR, Kind.ENUM):
                raise ValidationError(where, arg, f"no $regex: {field.name} is not text")
            if not isinstance(arg, str):
                raise ValidationError(where, arg, "a regular expression as a str")
            _check_text(where, arg, 1000)
            try:
                re.compile(arg)
            except re.error as e:
                raise ValidationError(where, arg, f"a valid regular expression ({e})") from None
            out.append(("regex", col, arg))
        else:
            raise ValidationError(
                where, arg, "an operator: $eq $ne $gt $gte $lt $lte $in $nin $exists $regex"
            )
    return out


def _coerce(field: Field, value: Any, path: str, *, allow_none: bool) -> Any:
    if value is None:
        if allow_none:
            return None
        raise ValidationError(path, value, "a value (None only with $eq, $ne, $in, $nin)")
    kind = field.kind
    if kind is Kind.STR:
        if not isinstance(value, str):
            raise ValidationError(path, value, "a str")
        _check_text(path, value, None)
        return value
    if kind is Kind.INT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError(path, value, "an int")
        if not -_BIGINT_MAX - 1 <= value <= _BIGINT_MAX:
            raise ValidationError(path, value, "an int that fits 64 bits")
        return value
    if kind is Kind.BOOL:
        if not isinstance(value, bool):
            raise ValidationError(path, value, "true or false")
        return value
    if kind is Kind.TIME:
        dt = parse_timestamp(path, value)
        assert dt is not None
        return to_micros_epoch(dt)
    assert field.parse is not None
    try:
        return field.parse(value).value
    except ValidationError as e:
        raise ValidationError(path, value, e.expected) from None


def evaluate(node: Node, row: Mapping[str, Any]) -> bool:
    """The filter on one storage row, with SQL's meaning (a NULL matches no comparison
    but ``$ne``/``$nin`` match it, as in MongoDB)."""
    tag = node[0]
    if tag == "and":
        return all(evaluate(n, row) for n in node[1])
    if tag == "or":
        return any(evaluate(n, row) for n in node[1])
    v = row[node[1]]
    if tag == "cmp":
        op, arg = node[2], node[3]
        if op == "eq":
            return bool(v == arg) if arg is not None else v is None
        if op == "ne":
            return v is None or v != arg if arg is not None else v is not None
        if v is None:
            return False
        return bool(_ORDER[op](v, arg))
    if tag == "in":
        values, negate = node[2], node[3]
        hit = v in values if v is not None else None in values
        return not hit if negate else hit
    if tag == "exists":
        return (v is not None) is node[2]
    if tag == "regex":
        return v is not None and re.search(node[2], v) is not None
    raise AssertionError(tag)


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


# -- cursors --------------------------------------------------------------------------------


class CursorCodec:
    """Signs and checks cursors with a key the repository holds.

    A cursor carries the position (sort value and id of the row it continues from), the
    direction and a fingerprint of the query that made it; it is signed with
    HMAC-SHA256. A cursor that was altered, signed with another key, or used with a
    different query is refused with a :class:`~cdrrating.ValidationError`. Without a
    ``key`` a random one is drawn: cursors then work only within this repository
    object; pass the same key to every process that serves one API.
    """

    def __init__(self, key: bytes | str | None = None) -> None:
        if key is None:
            key = secrets.token_bytes(32)
        elif isinstance(key, str):
            key = key.encode("utf-8")
        if not isinstance(key, bytes) or len(key) < 16:
            raise ValidationError("cursor_key", key, "bytes or text of at least 16 bytes")
        self._key = key

    def _sign(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:16]

    def encode(self, direction: str, position: tuple[Any, str], fingerprint: str) -> str:
        body = json.dumps(
            [1, direction, list(position), fingerprint], separators=(",", ":")
        ).encode()
        return _b64(body) + "." + _b64(self._sign(body))

    def decode(self, cursor: str, fingerprint: str) -> tuple[str, tuple[Any, str]]:
        bad = "a cursor returned by a page of this same query from this repository"
        try:
            body_text, sig_text = cursor.split(".")
            body, sig = _unb64(body_text), _unb64(sig_text)
        except (ValueError, TypeError):
            raise ValidationError("cursor", cursor, bad) from None
        if not hmac.compare_digest(sig, self._sign(body)):
            raise ValidationError("cursor", cursor, bad + " (signature does not match)")
        version, direction, position, made_for = json.loads(body)
        if version != 1 or made_for != fingerprint:
            raise ValidationError(
                "cursor", cursor, bad + " (it belongs to a query with other filters or sort)"
            )
        return direction, (position[0], position[1])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- compiled queries and page assembly -----------------------------------------------------


@attrs.frozen
class Compiled:
    """A query checked against an entity, in storage terms, ready for an adapter."""

    entity: Entity
    filter: Node  # everything but the cursor: tenant, search, times, where, in-progress
    search: str | None  # folded
    sort_column: str
    descending: bool
    limit: int
    backward: bool  # fetching the page before the cursor
    after: tuple[Any, str] | None  # the position to continue from
    fingerprint: str
    fields: tuple[str, ...] | None

    @property
    def key_column(self) -> str:
        return self.entity.key

    @property
    def scan_descending(self) -> bool:
        """The order to fetch rows in: backward pages read the other way and flip."""
        return self.descending != self.backward


def compile_query(entity: Entity, query: Query | None, codec: CursorCodec) -> Compiled:
    q = query if query is not None else Query()
    if not isinstance(q, Query):
        raise ValidationError("query", q, "a cdrrating.repository.Query")
    parts: list[Node] = []
    if q.tenant is not None:
        parts.append(("cmp", "tenant", "eq", q.tenant))
    time_col = entity.fields[entity.time_field].column
    if q.since is not None:
        parts.append(("cmp", time_col, "gte", to_micros_epoch(q.since)))
    if q.until is not None:
        parts.append(("cmp", time_col, "lt", to_micros_epoch(q.until)))
    if q.updated_since is not None:
        parts.append(("cmp", "updated_at_us", "gte", to_micros_epoch(q.updated_since)))
    if q.updated_before is not None:
        parts.append(("cmp", "updated_at_us", "lt", to_micros_epoch(q.updated_before)))
    if not q.include_in_progress and entity is CDR_ENTITY:
        parts.append(("cmp", "in_progress", "eq", False))
    if q.where:
        parts.append(parse_filter(entity, q.where))
    search = None
    if q.search:
        _check_text("search", q.search, 255)
        search = fold(q.search)
    sort_name = q.sort or entity.default_sort
    field = entity.fields.get(sort_name)
    if field is None or not field.sortable:
        names = ", ".join(n for n, f in entity.fields.items() if f.sortable)
        raise ValidationError("sort", sort_name, f"a field that is never empty: {names}")
    if q.fields is not None:
        known = _record_keys(entity)
        for name in q.fields:
            if name not in known:
                raise ValidationError("fields", name, "field names from: " + ", ".join(known))
    node: Node = ("and", parts)
    fingerprint = hashlib.sha256(
        json.dumps(
            [entity.name, node, search, field.column, q.order], default=str, separators=(",", ":")
        ).encode()
    ).hexdigest()[:24]
    backward, after = False, None
    if q.cursor is not None:
        direction, after = codec.decode(q.cursor, fingerprint)
        backward = direction == "p"
    return Compiled(
        entity=entity,
        filter=node,
        search=search,
        sort_column=field.column,
        descending=q.order == "desc",
        limit=q.limit,
        backward=backward,
        after=after,
        fingerprint=fingerprint,
        fields=q.fields,
    )


def _record_keys(entity: Entity) -> tuple[str, ...]:
    if entity is CDR_ENTITY:
        return (
            *(f.name for f in attrs.fields(CDR)),
            "status",
            "reason",
            "in_progress",
            "created_at",
            "updated_at",
        )
    return tuple(entity.fields)


def search_matches(compiled: Compiled, row: Mapping[str, Any]) -> bool:
    """The search on one storage row (what the SQL adapter's LIKE clauses compute)."""
    needle = compiled.search
    if needle is None:
        return True
    entity = compiled.entity
    if any(needle in row[name + "_fold"] for name in entity.fold_fields):
        return True
    if any(needle in row[name] for name in entity.plain_fields):
        return True
    return any(row[name] in values_matching(needle, values) for name, values in entity.enum_search)


def values_matching(needle: str, values: Sequence[str]) -> tuple[str, ...]:
    """The enum values a folded search needle finds (enums are searched by value set)."""
    return tuple(v for v in values if needle in fold(v))


def build_page(
    compiled: Compiled,
    rows: Sequence[Mapping[Any, Any]],
    codec: CursorCodec,
    make: Callable[[Mapping[Any, Any]], T],
    count: int | None = None,
) -> Page[T]:
    """A page from up to ``limit + 1`` rows fetched in ``compiled.scan_descending`` order
    after ``compiled.after``; the extra row only says that more exist."""
    limit = compiled.limit
    more = len(rows) > limit
    rows = list(rows[:limit])
    if compiled.backward:
        rows.reverse()
    sort, key = compiled.sort_column, compiled.key_column

    def position(row: Mapping[Any, Any]) -> tuple[Any, str]:
        return (row[sort], row[key])

    next_cursor = previous_cursor = None
    if rows:
        if more if not compiled.backward else True:
            next_cursor = codec.encode("n", position(rows[-1]), compiled.fingerprint)
        if (compiled.after is not None) if not compiled.backward else more:
            previous_cursor = codec.encode("p", position(rows[0]), compiled.fingerprint)
    return Page(
        tuple(make(r) for r in rows),
        next_cursor=next_cursor,
        previous_cursor=previous_cursor,
        count=count,
        fields=compiled.fields,
    )


def now_micros(clock: Clock) -> int:
    now = clock()
    if not isinstance(now, datetime) or now.utcoffset() is None:
        raise ValidationError("clock", now, "a callable returning an aware datetime")
    return to_micros_epoch(now)


def prune_cutoff(older_than: datetime | timedelta, clock: Clock) -> int:
    if isinstance(older_than, timedelta):
        return now_micros(clock) - (
            (older_than.days * 86_400 + older_than.seconds) * 1_000_000 + older_than.microseconds
        )
    if isinstance(older_than, datetime) and older_than.utcoffset() is not None:
        return to_micros_epoch(older_than)
    raise ValidationError("older_than", older_than, "an aware datetime or a timedelta (an age)")


def check_batch_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError("batch_size", value, "an int >= 1")
    return value
