"""What a repository holds and is asked: stored records, the query object, pages (private;
re-exported by :mod:`cdrrating.repository`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, Literal, TypeAlias, TypeVar

import attrs

from cdrrating._storage import paths
from cdrrating.cdr import CDR
from cdrrating.charge import Charge, ChargeStatus, Reason
from cdrrating.errors import (
    ValidationError,
)
from cdrrating.rates import Rate

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
# What a stored instant may be: its UTC form must be a datetime again when read back.
_MIN_US = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _ONE_US
_MAX_US = (datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC) - _EPOCH) // _ONE_US

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
        return pick(out, fields)


def pick(out: dict[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """The keys ``fields`` names, in order. A dotted name (``extra.location.country``)
    keeps the nesting and only that leaf (None when missing), so every record of a
    listing has the same shape; a name already covered by a whole parent is skipped."""
    chosen: dict[str, Any] = {}
    wanted = set(fields)
    for name in fields:
        if name in out:
            chosen[name] = out[name]
            continue
        heads = name.split(".")
        if any(".".join(heads[:i]) in wanted for i in range(1, len(heads))):
            continue
        paths.nest(chosen, name, paths.project(out, name))
    return chosen


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
      ``{"billsec": {"$gte": 60}, "$or": [{"tenant": "a"}, {"tenant": None}]}``, and
      dotted paths into ``extra`` (``{"extra.location.country": "NL"}``), compared by
      JSON type: numbers as numbers, text as text, booleans as booleans.
    - ``updated_since``/``updated_before``: ``updated_at`` in ``[since, before)``.
    - ``sort`` (default ``started_at``; rates ``created_at``) and ``order`` (``"desc"``
      default): any field, or a dotted path into ``extra``; ties are broken by the id
      in the same order, so pages are stable. Empty values (None) sort lowest: first
      ascending, last descending.
    - ``limit``: page size, default 1000, larger values are capped at 10,000.
    - ``cursor``: a ``next_cursor``/``previous_cursor`` from a page of the same query.
    - ``fields``: the keys :meth:`Page.to_records` returns (a dotted path into
      ``extra`` keeps its nesting).
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
