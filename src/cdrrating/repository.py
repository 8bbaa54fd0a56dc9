"""Storage ports: repository protocols, the query object, pages and cursors.

Adapters live in :mod:`cdrrating.memory` (in-process) and :mod:`cdrrating.sql`
(SQLAlchemy Core). Nothing here imports a database library: the domain and these
protocols are usable without the ``[sql]`` extra.

A stored CDR is a :class:`StoredCDR`: the immutable :class:`~cdrrating.CDR` plus what
the repository keeps about it (the rating outcome ``status``/``reason``, whether the
call is still ``in_progress``, and ``created_at``/``updated_at`` from the repository's
clock). Rates are stored as :class:`StoredRate` in the same way.

Everything an adapter needs to behave exactly like the others (validation of what is
written, the Mongo-style filter, search and the keyset position compiled into one
filter tree with one evaluator, cursor signing, page assembly) is in this module, so a
third-party adapter only has to translate the tree.
"""

from __future__ import annotations

import base64
import csv
import enum
import hashlib
import hmac
import io
import json
import re
import secrets
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Literal, Protocol, TypeAlias, TypeVar, runtime_checkable

import attrs

from cdrrating.cdr import CDR, Direction, Disposition
from cdrrating.charge import Charge, ChargeStatus, Reason
from cdrrating.errors import (
    Conflict,
    NotFound,
    PlanError,
    StorageError,
    ValidationError,
)
from cdrrating.money import Rounding
from cdrrating.plan import RatePlan
from cdrrating.rates import Rate, RateStatus, Tier
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
    "StorageError",
    "StoredCDR",
    "StoredRate",
    "export",
    "export_lines",
    "iter_records",
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
    ``prefix`` (the prefix of the rate that won) and ``billed_seconds`` are kept from
    the :class:`~cdrrating.charge.Charge` the record was written from, so a stored call
    can be explained later; both are None for a CDR stored unrated.
    """

    cdr: CDR
    status: ChargeStatus | None = None
    reason: Reason | None = None
    prefix: str | None = None
    billed_seconds: int | None = None
    in_progress: bool = False
    created_at: datetime
    updated_at: datetime

    @property
    def call_id(self) -> str:
        return self.cdr.call_id

    def to_mapping(self, fields: Sequence[str] | None = None) -> dict[str, Any]:
        """JSON-ready mapping: the CDR's fields, then status, reason, prefix,
        billed_seconds, in_progress and the two timestamps (ISO 8601). ``fields`` keeps
        only those keys, in that order."""
        out = self.cdr.to_mapping()
        out["status"] = self.status.value if self.status is not None else None
        out["reason"] = self.reason.value if self.reason is not None else None
        out["prefix"] = self.prefix
        out["billed_seconds"] = self.billed_seconds
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


def parse_instant(field: str, value: Any) -> datetime | None:
    """An instant a query, filter or patch names: an aware datetime, ISO 8601 text with
    a UTC offset, or epoch milliseconds (an int or a string of digits). None and blank
    text give None. Naive datetimes and text without an offset are refused (they name
    no instant), and so is anything outside what storage keeps (years 1 to 9999, UTC)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, int) and not isinstance(value, bool):
        return _from_epoch_ms(field, value, value)
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return _from_epoch_ms(field, value, int(value.strip()))
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValidationError(
                field, value, "an ISO 8601 timestamp with a UTC offset, or epoch milliseconds"
            ) from None
    elif isinstance(value, float):
        raise ValidationError(field, value, "epoch milliseconds as an int, not a float")
    else:
        raise ValidationError(
            field, value, "an aware datetime, ISO 8601 text with an offset or epoch milliseconds"
        )
    if dt.utcoffset() is None:
        raise ValidationError(
            field,
            value,
            "a timezone-aware instant (a naive datetime or text without an offset names "
            "no instant: add tzinfo or a UTC offset such as Z)",
        )
    check_instant(field, dt)
    return dt


def _from_epoch_ms(field: str, given: Any, ms: int) -> datetime:
    if not _MIN_US // 1000 <= ms <= _MAX_US // 1000:
        raise ValidationError(
            field, given, f"epoch milliseconds from {_MIN_US // 1000} to {_MAX_US // 1000}"
        )
    return _EPOCH + timedelta(milliseconds=ms)


def check_instant(field: str, dt: datetime) -> int:
    """Microseconds since the epoch of an aware datetime that storage can keep and
    give back: its UTC form must be a datetime (years 1 to 9999)."""
    us = (dt - _EPOCH) // _ONE_US
    if not _MIN_US <= us <= _MAX_US:
        raise ValidationError(
            field, dt, "an instant from 0001-01-01 to 9999-12-31 in UTC (what storage keeps)"
        )
    return us


def _since(value: Any) -> datetime | None:
    return parse_instant("since", value)


def _until(value: Any) -> datetime | None:
    return parse_instant("until", value)


def _updated_since(value: Any) -> datetime | None:
    return parse_instant("updated_since", value)


def _updated_before(value: Any) -> datetime | None:
    return parse_instant("updated_before", value)


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
    - ``with_count``: fill ``Page.count`` (the SQL adapter counts in the same
      statement that reads the page).
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
    with_count: bool = attrs.field(default=False)

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
    of records matching the query (all pages) when the query asked for it
    (``with_count=True``) or the adapter knows it anyway, else None.
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

    A record's identity is ``(tenant, call_id)``: ``tenant=`` on get, replace, update
    and delete names the tenant (None: the records stored without one), so two tenants
    may use one call id without seeing each other. Listings, counts and prunes cover
    every tenant unless scoped with ``Query(tenant=...)`` / ``prune(tenant=...)``.

    Errors: :class:`~cdrrating.NotFound` for an unknown identity,
    :class:`~cdrrating.Conflict` for one already stored,
    :class:`~cdrrating.ValidationError` for anything refused before it is written
    (an error always means nothing was written), :class:`StorageError` when the
    database fails.
    """

    def add(self, record: CDRRecord) -> StoredCDR:
        """Store a new CDR; Conflict if its (tenant, call_id) is stored already."""
        ...

    def add_many(self, records: Iterable[CDRRecord | Mapping[str, Any]]) -> int:
        """Store many new CDRs in one transaction: all or none. Mappings go through
        ``CDR.from_mapping``. An error names the position of the offending record."""
        ...

    def upsert(self, record: CDRRecord, *, in_progress: bool = False) -> StoredCDR:
        """Insert or replace by (tenant, call_id). A start row (``in_progress=True``) never
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
        """PUT: replace the stored CDR with this (tenant, call_id); NotFound if there is
        none. ``tenant``, if given, must be the record's."""
        ...

    def update(
        self, call_id: str, changes: Mapping[str, Any], *, tenant: str | None = None
    ) -> StoredCDR:
        """PATCH: change some fields (CDR fields but the identity, ``status``, ``reason``,
        ``prefix``, ``billed_seconds``, ``in_progress``)."""
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
        """Delete CDRs that started before ``older_than`` (an aware datetime, or an age
        measured back from the repository clock). They are handed to ``archive`` oldest
        first, ``batch_size`` at a time, and deleted only after every batch was
        archived: if ``archive`` raises, nothing is deleted and the error propagates
        (a second run archives them again and completes). Returns how many were
        deleted."""
        ...


@runtime_checkable
class RateRepository(Protocol):
    """Where rate decks are kept. A rate without an ``id`` is given a UUID when added.

    A rate's identity is ``(tenant, id)``, as for CDRs. A write that would make the
    tenant's plan ambiguous (what :class:`~cdrrating.RatePlan` refuses) is refused with
    :class:`~cdrrating.Conflict`, checked in the same transaction as the write.
    """

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
    key: str  # the id field; a record's identity is (tenant, id), see TENANT_KEY
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
        Field("prefix", Kind.STR, nullable=True, max_len=50),
        Field("billed_seconds", Kind.INT, nullable=True),
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
# What a stored instant may be: its UTC form must be a datetime again when read back.
_MIN_US = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _ONE_US
_MAX_US = (datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC) - _EPOCH) // _ONE_US


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
            "float, str, list or such a mapping (no tuples, sets or other types)",
        )
    return text


def _json_exact(value: Any) -> bool:
    # json.loads(...) == value misses a tuple inside a list compared to a list; be exact.
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_exact(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_json_exact(v) for v in value)
    return value is None or isinstance(value, bool | int | float | str)


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
            status = _charge_status(value) if value is not None else None
        elif name == "reason":
            reason = _reason(value) if value is not None else None
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


# -- the Mongo-style filter -----------------------------------------------------------------

# A parsed filter is a small tree of tuples, the same for every adapter:
#   ("and", [node, ...]) | ("or", [node, ...])
#   ("cmp", column, op, value)        op in eq ne gt gte lt lte; value may be None for eq/ne
#   ("in", column, [values], negate)  values may hold None
#   ("exists", column, bool)
#   ("regex", column, pattern)
#   ("contains", column, folded_needle)   a literal substring (search)
# ("and", []) is true and ("or", []) false. Search and the keyset condition are built
# into the same tree (compile_query), so each adapter has one interpreter to write:
# cdrrating.memory evaluates it with evaluate(), cdrrating.sql translates it to SQL.
Node: TypeAlias = tuple[Any, ...]
TRUE: Node = ("and", [])
FALSE: Node = ("or", [])

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
        return [cmp(field, "eq", _coerce(field, value, path, allow_none=True))]
    out: list[Node] = []
    for op, arg in value.items():
        where = f"{path}.{op}"
        if op in _CMP:
            allow_none = op in ("$eq", "$ne")
            out.append(cmp(field, _CMP[op], _coerce(field, arg, where, allow_none=allow_none)))
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
        dt = parse_instant(path, value)
        if dt is None:
            raise ValidationError(path, value, "a timestamp")
        return to_micros_epoch(dt)
    assert field.parse is not None
    try:
        return field.parse(value).value
    except ValidationError as e:
        raise ValidationError(path, value, e.expected) from None


def cmp(field: Field, op: str, value: Any) -> Node:
    """A comparison node. Ordering comparisons of booleans are rewritten as equalities
    (False < True), which every database can evaluate on its boolean column."""
    col = field.column
    if field.kind is Kind.BOOL and op in _ORDER and value is not None:
        below = {"lt": False, "lte": True}.get(op)
        if below is not None:  # col < value, col <= value
            keep = [b for b in (False, True) if b < value or (below and b == value)]
        else:  # col > value, col >= value
            keep = [b for b in (False, True) if b > value or (op == "gte" and b == value)]
        if not keep:
            return FALSE
        if len(keep) == 2:
            return ("exists", col, True)
        return ("cmp", col, "eq", keep[0])
    return ("cmp", col, op, value)


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
    if tag == "contains":
        return v is not None and node[2] in v
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

    def encode(self, direction: str, position: Sequence[Any], fingerprint: str) -> str:
        body = json.dumps([1, direction, list(position), fingerprint], separators=(",", ":"))
        raw = body.encode()
        return _b64(raw) + "." + _b64(self._sign(raw))

    def decode(self, cursor: str, fingerprint: str) -> tuple[str, tuple[Any, ...]]:
        bad = "a cursor returned by a page of this same query from this repository"
        try:
            body_text, sig_text = cursor.split(".")
            body, sig = _unb64(body_text), _unb64(sig_text)
        except (ValueError, TypeError):
            raise ValidationError("cursor", cursor, bad) from None
        # Base64 text has spellings that decode alike (the unused bits of the last
        # character); only the one this codec writes is accepted.
        if _b64(body) != body_text or _b64(sig) != sig_text:
            raise ValidationError("cursor", cursor, bad + " (not in its canonical form)")
        if not hmac.compare_digest(sig, self._sign(body)):
            raise ValidationError("cursor", cursor, bad + " (signature does not match)")
        version, direction, position, made_for = json.loads(body)
        if version != 1 or made_for != fingerprint:
            raise ValidationError(
                "cursor", cursor, bad + " (it belongs to a query with other filters or sort)"
            )
        return direction, tuple(position)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text.isascii():
        raise ValueError(text)
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- compiled queries and page assembly -----------------------------------------------------


@attrs.frozen
class Compiled:
    """A query checked against an entity, in storage terms, ready for an adapter."""

    entity: Entity
    filter: Node  # what count() counts: tenant, search, times, where, in-progress
    keyset: Node  # the rows after the cursor in scan order (TRUE without a cursor)
    order: tuple[str, ...]  # the columns rows are listed by: sort, id, tenant key
    descending: bool
    limit: int
    backward: bool  # fetching the page before the cursor
    after: tuple[Any, ...] | None  # the position to continue from, in ``order`` columns
    fingerprint: str
    fields: tuple[str, ...] | None
    with_count: bool = False

    @property
    def sort_column(self) -> str:
        return self.order[0]

    @property
    def key_column(self) -> str:
        return self.entity.key

    @property
    def page_filter(self) -> Node:
        """The rows a page is read from: the filter and the keyset condition."""
        return ("and", [self.filter, self.keyset])

    @property
    def scan_descending(self) -> bool:
        """The order to fetch rows in: backward pages read the other way and flip."""
        return self.descending != self.backward

    def sort_key(self, row: Mapping[Any, Any]) -> tuple[Any, ...]:
        return tuple(row[c] for c in self.order)


def compile_query(entity: Entity, query: Query | None, codec: CursorCodec) -> Compiled:
    q = query if query is not None else Query()
    if not isinstance(q, Query):
        raise ValidationError("query", q, "a cdrrating.repository.Query")
    parts: list[Node] = []
    if q.tenant is not None:
        # The identity column: the (tenant, started_at, id) index serves the listing.
        parts.append(("cmp", TENANT_KEY, "eq", q.tenant))
    time_col = entity.fields[entity.time_field].column
    if q.since is not None:
        parts.append(("cmp", time_col, "gte", check_instant("since", q.since)))
    if q.until is not None:
        parts.append(("cmp", time_col, "lt", check_instant("until", q.until)))
    if q.updated_since is not None:
        parts.append(
            ("cmp", "updated_at_us", "gte", check_instant("updated_since", q.updated_since))
        )
    if q.updated_before is not None:
        parts.append(
            ("cmp", "updated_at_us", "lt", check_instant("updated_before", q.updated_before))
        )
    if not q.include_in_progress and entity is CDR_ENTITY:
        parts.append(("cmp", "in_progress", "eq", False))
    if q.where:
        parts.append(parse_filter(entity, q.where))
    if q.search:
        _check_text("search", q.search, 255)
        parts.append(search_node(entity, fold(q.search)))
    sort_name = q.sort or entity.default_sort
    field = entity.fields.get(sort_name)
    if field is None or not field.sortable:
        names = ", ".join(n for n, f in entity.fields.items() if f.sortable)
        raise ValidationError("sort", sort_name, f"a field that is never empty: {names}")
    if q.fields is not None:
        known = record_keys(entity)
        for name in q.fields:
            if name not in known:
                raise ValidationError("fields", name, "field names from: " + ", ".join(known))
    node: Node = ("and", parts)
    order = (field.column, entity.key, TENANT_KEY)
    fingerprint = hashlib.sha256(
        json.dumps(
            [entity.name, node, list(order), q.order], default=str, separators=(",", ":")
        ).encode()
    ).hexdigest()[:24]
    backward, after = False, None
    if q.cursor is not None:
        direction, after = codec.decode(q.cursor, fingerprint)
        backward = direction == "p"
        _check_position(q.cursor, after, field)
    descending = q.order == "desc"
    keyset = TRUE if after is None else keyset_node(order, after, descending != backward)
    return Compiled(
        entity=entity,
        filter=node,
        keyset=keyset,
        order=order,
        descending=descending,
        limit=q.limit,
        backward=backward,
        after=after,
        fingerprint=fingerprint,
        fields=q.fields,
        with_count=q.with_count,
    )


def _check_position(cursor: str, after: tuple[Any, ...], field: Field) -> None:
    # A signed cursor holds what this codec wrote; this guards a reused key.
    kinds = {Kind.BOOL: bool, Kind.INT: int, Kind.TIME: int}
    want = kinds.get(field.kind, str)
    ok = len(after) == 3 and isinstance(after[1], str) and isinstance(after[2], str)
    if not ok or type(after[0]) is not want:
        raise ValidationError(
            "cursor", cursor, "a cursor of this query (its position is malformed)"
        )


def keyset_node(order: Sequence[str], after: Sequence[Any], descending: bool) -> Node:
    """Rows strictly after ``after`` in the lexicographic order of ``order`` columns:
    (a, b, c) < (x, y, z) spelt out as comparisons. The leading ``a <= x`` is implied
    by the rest; it lets every planner scan the (a, b, c) index as a range."""
    strict, loose = ("lt", "lte") if descending else ("gt", "gte")
    options: list[Node] = []
    for i, col in enumerate(order):
        equal = [("cmp", order[j], "eq", after[j]) for j in range(i)]
        options.append(("and", [*equal, _cmp_col(col, strict, after[i])]))
    return ("and", [_cmp_col(order[0], loose, after[0]), ("or", options)])


def _cmp_col(column: str, op: str, value: Any) -> Node:
    if isinstance(value, bool):  # a boolean sort column: see cmp()
        return cmp(Field(column, Kind.BOOL), op, value)
    return ("cmp", column, op, value)


def record_keys(entity: Entity) -> tuple[str, ...]:
    """The keys of a stored record's :meth:`to_mapping`, in order."""
    if entity is CDR_ENTITY:
        return (
            *(f.name for f in attrs.fields(CDR)),
            "status",
            "reason",
            "prefix",
            "billed_seconds",
            "in_progress",
            "created_at",
            "updated_at",
        )
    return tuple(entity.fields)


def search_node(entity: Entity, needle: str) -> Node:
    """The search as a filter: a literal substring of a folded text column, or of a
    column stored as written, or an enum whose value contains it."""
    options: list[Node] = [("contains", name + "_fold", needle) for name in entity.fold_fields]
    options.extend(("contains", name, needle) for name in entity.plain_fields)
    for name, values in entity.enum_search:
        found = values_matching(needle, values)
        if found:
            options.append(("in", name, list(found), False))
    return ("or", options)


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
    next_cursor = previous_cursor = None
    if rows:
        if more if not compiled.backward else True:
            next_cursor = codec.encode("n", compiled.sort_key(rows[-1]), compiled.fingerprint)
        if (compiled.after is not None) if not compiled.backward else more:
            previous_cursor = codec.encode("p", compiled.sort_key(rows[0]), compiled.fingerprint)
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


def plan_instant(at: Any) -> int | None:
    """``load_plan``'s ``at`` as storage microseconds (naive datetimes refused)."""
    if at is None:
        return None
    if not isinstance(at, datetime):
        raise ValidationError("at", at, "an aware datetime or None")
    dt = parse_instant("at", at)
    assert dt is not None
    return to_micros_epoch(dt)


def check_batch_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError("batch_size", value, "an int >= 1")
    return value


# -- export: every page of a query, streamed ------------------------------------------------

_EXPORT_FORMATS = ("jsonl", "csv")


def iter_records(repository: Any, query: Query | None = None) -> Iterator[Any]:
    """Every record a query matches, page after page along the keyset cursors, so only
    one page (``query.limit`` records) is held at a time. Works with any repository."""
    q = query if query is not None else Query(limit=MAX_LIMIT)
    if not isinstance(q, Query):
        raise ValidationError("query", q, "a cdrrating.repository.Query")
    while True:
        page = repository.query(q)
        yield from page.items
        if page.next_cursor is None:
            return
        q = q.after(page.next_cursor)


def export_lines(
    repository: Any, query: Query | None = None, *, format: str = "jsonl"
) -> Iterator[str]:
    """The records of a query as lines of text, each ending in a newline: JSON Lines
    (one ``to_mapping()`` object a line), or CSV with a header. ``query.fields`` picks
    the keys; records are read a page at a time."""
    if format not in _EXPORT_FORMATS:
        raise ValidationError("format", format, "one of " + ", ".join(_EXPORT_FORMATS))
    fields = query.fields if query is not None else None
    records = iter_records(repository, query)
    if format == "jsonl":
        for record in records:
            yield json.dumps(record.to_mapping(fields), ensure_ascii=False) + "\n"
        return
    buffer = io.StringIO()
    writer: Any = None
    for record in records:
        mapping = record.to_mapping(fields)
        if writer is None:
            writer = csv.DictWriter(buffer, fieldnames=list(mapping), lineterminator="\n")
            writer.writeheader()
        writer.writerow({k: _csv_cell(v) for k, v in mapping.items()})
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def _csv_cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return value


def export(repository: Any, out: Any, query: Query | None = None, *, format: str = "jsonl") -> int:
    """Write every record of a query to ``out``: a writable text file object (anything
    with ``write``), or a callable taking one line. Returns how many records were
    written; nothing is held beyond one page."""
    write = getattr(out, "write", None) or out
    if not callable(write):
        raise ValidationError("out", out, "a writable text file object or a callable")
    count = 0
    for line in export_lines(repository, query, format=format):
        write(line)  # one record a line (the first CSV line comes with the header)
        count += 1
    return count
