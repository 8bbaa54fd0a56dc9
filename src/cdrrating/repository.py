"""Storage ports: repository protocols, the query object, pages and cursors.

Adapters live in :mod:`cdrrating.memory` (in-process) and :mod:`cdrrating.sql`
(SQLAlchemy Core). Nothing here imports a database library: the domain and these
protocols are usable without the ``[sql]`` extra.

A stored CDR is a :class:`StoredCDR`: the immutable :class:`~cdrrating.CDR` plus what
the repository keeps about it (the rating outcome ``status``/``reason``, whether the
call is still ``in_progress``, and ``created_at``/``updated_at`` from the repository's
clock). Rates are stored as :class:`StoredRate` in the same way, EV-charging sessions
as :class:`StoredSession` (listed the way a charging-CDR list API asks, see
:class:`SessionRepository` and :data:`LIST_API_FIELDS`).

Everything an adapter needs to behave exactly like the others lives in
``cdrrating._storage``, one thing a module: ``records`` (the stored types, the query,
pages), ``entities`` (the fields), ``rows`` (validation of what is written, so that it
reads back equal), ``filters`` (the Mongo-style filter: one tree, one evaluator) and
``paging`` (search and the keyset position compiled into that tree, cursors, page
assembly). A third-party adapter only has to translate the tree.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from cdrrating._storage.paging import (
    CursorCodec,
)
from cdrrating._storage.records import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    CDRRecord,
    Clock,
    Page,
    Query,
    StoredCDR,
    StoredRate,
    system_clock,
)
from cdrrating._storage.sessions import (
    LIST_API_FIELDS,
    StoredSession,
)
from cdrrating.charging import ChargingSession
from cdrrating.errors import (
    StorageError,
    ValidationError,
)
from cdrrating.money import Rounding
from cdrrating.plan import RatePlan
from cdrrating.rates import Rate

__all__ = [
    "DEFAULT_LIMIT",
    "LIST_API_FIELDS",
    "MAX_LIMIT",
    "CDRRecord",
    "CDRRepository",
    "Clock",
    "CursorCodec",
    "Page",
    "Query",
    "RateRepository",
    "SessionRepository",
    "StorageError",
    "StoredCDR",
    "StoredRate",
    "StoredSession",
    "export",
    "export_lines",
    "iter_records",
    "system_clock",
]


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


@runtime_checkable
class SessionRepository(Protocol):
    """Where EV-charging sessions are kept. Every adapter passes
    :mod:`cdrrating.testing.contract`. A session's identity is its ``id``.

    :meth:`query` is a charging-CDR list API's request, one argument per parameter:
    ``filter`` (the MongoDB-style filter of :class:`Query` ``where``, over column names,
    dotted paths and the list API's camelCase names, see :data:`LIST_API_FIELDS`),
    ``sort``/``order`` (default ``updated_at`` ascending; any field; empty values first
    ascending, last descending; ties broken by id), ``since``/
    ``before`` (``updated_at`` in ``[since, before)``), ``include_ongoing`` (sessions
    without an end; default False), ``limit``, ``next_page_cursor`` *or*
    ``previous_page_cursor`` (both: :class:`~cdrrating.ValidationError`), ``fields``.

    Errors as for :class:`CDRRepository`: NotFound, Conflict, ValidationError (nothing
    written), StorageError.
    """

    def add(self, session: ChargingSession) -> StoredSession:
        """Store a new session; Conflict if its id is stored already."""
        ...

    def add_many(self, sessions: Iterable[ChargingSession | Mapping[str, Any]]) -> int:
        """Store many new sessions in one transaction: all or none. Mappings go through
        ``ChargingSession.from_mapping`` (OCPI or the list API's shape); an error names
        the position of the offending record (``records[3].location.country``)."""
        ...

    def upsert(self, session: ChargingSession) -> StoredSession:
        """Insert or replace by id, unless the stored session was updated later (its
        ``updated_at`` is after the incoming one's): a late or repeated update never
        replaces a newer one. Returns what is stored afterwards."""
        ...

    def upsert_many(self, sessions: Iterable[ChargingSession | Mapping[str, Any]]) -> int:
        """:meth:`upsert` for many, in one transaction; returns how many distinct ids were
        given (one given twice: the one updated last wins, the later one on a tie)."""
        ...

    def get(self, session_id: str) -> StoredSession: ...

    def delete(self, session_id: str) -> None: ...

    def query(
        self,
        *,
        filter: Mapping[str, Any] | None = None,
        sort: str | None = None,
        order: str = "asc",
        since: Any = None,
        before: Any = None,
        include_ongoing: bool = False,
        limit: int = DEFAULT_LIMIT,
        next_page_cursor: str | None = None,
        previous_page_cursor: str | None = None,
        fields: Sequence[str] | str | None = None,
        with_count: bool = False,
    ) -> Page[StoredSession]: ...

    def count(
        self,
        *,
        filter: Mapping[str, Any] | None = None,
        since: Any = None,
        before: Any = None,
        include_ongoing: bool = False,
    ) -> int:
        """How many sessions match (no cursor, no limit)."""
        ...


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
